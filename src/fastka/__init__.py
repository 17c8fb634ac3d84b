"""fastka: Keepalived rebuilt as a Python package with a compiled core."""

from fastka._version import __version__

__all__ = ["__version__"]
