# cython: language_level=3
"""Compiled VRRP codec (placeholder until the codec lands)."""
