"""Job handlers: what the worker does for each kind of accepted delivery."""
