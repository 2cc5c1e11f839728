"""Adapters to other libraries, one module per library; nothing in turnout.core imports them."""
