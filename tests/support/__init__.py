"""Test support: a live server on port 0 and a BLAB protocol client."""
