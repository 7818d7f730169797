"""Training recipes: the built-in CNNs (``builtin``)."""
