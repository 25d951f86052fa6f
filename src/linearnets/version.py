"""The package version (one place; the model card and `linearnets --version` read it)."""

__version__ = "0.1.0"
