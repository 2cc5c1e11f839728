"""Burr's serde plugins: codecs registered on turnout.core.serde's Burr API."""
