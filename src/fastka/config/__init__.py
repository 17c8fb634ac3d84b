"""fastka.config."""
