# cython: language_level=3
"""Compiled event loop (placeholder until the event core lands)."""
