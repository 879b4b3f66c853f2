"""The package version (a leaf: imports nothing), as written into parameter files."""

__version__ = "0.1.0"
