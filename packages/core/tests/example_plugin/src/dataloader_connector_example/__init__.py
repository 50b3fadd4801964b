"""An example third-party connector: numbers in, JSON lines out."""
