"""fastka.check."""
