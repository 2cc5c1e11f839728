"""A dataclass kept in tracked state by tests/test_testing.py, loaded by ``turnout test-case
--register-module tests.cli_types`` in a fresh process."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    x: int
    y: int
