"""What loading turnout's pytest plugin adds to pytest's start: the import of
``turnout.integrations.pytest`` against ``import pytest, turnout`` (which any pytest run with
turnout installed pays anyway), each in a fresh interpreter, alternated, medians and their ratio.

    python bench/pytest_plugin_import.py [rounds]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

BASELINE = "import pytest, turnout"
PLUGIN = "import pytest, turnout.integrations.pytest"


def _once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    base: list[float] = []
    plugin: list[float] = []
    for _ in range(rounds):
        base.append(_once(BASELINE))
        plugin.append(_once(PLUGIN))
    b, p = statistics.median(base), statistics.median(plugin)
    print(f"load average {os.getloadavg()}")
    print(f"{BASELINE!r}: median {b * 1000:.0f} ms over {rounds}")
    print(f"{PLUGIN!r}: median {p * 1000:.0f} ms over {rounds}")
    print(f"ratio plugin/baseline {p / b:.3f} (extra {1000 * (p - b):+.0f} ms)")
    code = "import sys, turnout.integrations.pytest; print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = [m for m in ("vcr", "openai", "httpx", "httpx2", "yaml") if f"'{m}'" in out.stdout]
    print(f"third-party modules the plugin imports besides pytest: {heavy or 'none'}")


if __name__ == "__main__":
    main()
