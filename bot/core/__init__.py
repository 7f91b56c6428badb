"""The pure core: no Flask, PyGithub, database or environment access in here."""
