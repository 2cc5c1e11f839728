"""The probe behind each adapter's "without its library, the import names the extra" test."""

from __future__ import annotations

import subprocess
import sys


def import_without(library: str, adapter: str) -> str:
    """Imports ``adapter`` in a fresh interpreter where ``library`` is not installed; returns what
    it printed: the ImportError's type name and message."""
    code = (
        f"import sys; sys.modules[{library!r}] = None\n"
        f"try:\n    import {adapter}\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout
