"""fastka.ipvs."""
