"""The version, in one place (the root package and run directories read it)."""

__version__ = "0.1.0"
