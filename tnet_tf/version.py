"""The package version (one place: records and setup.py read it)."""
__version__ = "0.1.0"
