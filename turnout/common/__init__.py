"""Burr's ``burr.common`` package: shared types and async helpers, under Burr's module paths."""
