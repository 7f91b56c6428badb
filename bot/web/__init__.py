"""HTTP layer: verify, parse, enqueue, answer."""
