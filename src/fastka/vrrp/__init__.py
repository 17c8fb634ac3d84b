"""fastka.vrrp."""
