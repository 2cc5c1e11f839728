"""First start of ``turnout ui``: how long the demo project takes to generate.

This is a benchmark script, not a test. On an empty tracking directory ``turnout ui`` first
runs the demo applications (``turnout.tracking.demo.generate``): the built-in ones, then one run
of every gallery example whose extra is installed (``gallery=True``). Each measurement runs in a
fresh interpreter, as a first start does, so the examples' imports (openai, LlamaIndex,
FastAPI) are paid in full; the time is taken inside that interpreter from before
``turnout.tracking.demo`` is imported to the end of ``generate``. Reported per variant: the
median and the range over ``--rounds`` rounds (variants interleaved), and for the gallery the
seconds each example took (its import and its run), with the 1-minute load average at each
measurement, because the machine may be shared. Variants: ``built-in`` (``generate``),
``gallery`` (``generate(gallery=True)``, all in one process) and ``first start`` (what
``turnout ui`` does: ``generate``, then ``start_gallery``; the UI starts when it returns, and
the time until the background gallery is done is reported beside it).

    python bench/demo_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys, time
started = time.perf_counter()
from turnout.tracking import demo
from turnout.core.tracking import LocalTracker
variant, background = sys.argv[2], None
demo.generate(sys.argv[1], gallery=variant == "gallery")
if variant == "first start":
    background = demo.start_gallery(sys.argv[1])
seconds = time.perf_counter() - started
if background is not None:
    background.wait()
done = time.perf_counter() - started
rows = []
if variant != "built-in":
    rows = LocalTracker("demo", storage_dir=sys.argv[1]).load(None, "gallery").state["examples"]
print(json.dumps({"seconds": seconds, "done": done, "rows": rows}))
"""


def _measure(variant: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as home:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, home, variant],
            cwd=ROOT, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    result["load"] = os.getloadavg()[0]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    variants = ["built-in", "gallery", "first start"]
    results: dict[str, list[dict[str, object]]] = {variant: [] for variant in variants}
    for number in range(args.rounds):
        for variant in variants[number % 3 :] + variants[: number % 3]:
            results[variant].append(_measure(variant))
    print(
        f"demo generation, fresh interpreter each, {args.rounds} rounds "
        f"(python {sys.version.split()[0]})"
    )
    for variant, runs in results.items():
        times = [float(str(run["seconds"])) for run in runs]
        loads = ", ".join(f"{float(str(run['load'])):.2f}" for run in runs)
        print(
            f"  {variant:11} median {statistics.median(times):5.2f} s  "
            f"(min {min(times):.2f}, max {max(times):.2f})  load average per round: {loads}"
        )
        if variant == "first start":
            done = [float(str(run["done"])) for run in runs]
            print(f"  {'':11} gallery done in background after {statistics.median(done):.2f} s")
    per_example: dict[str, list[float]] = {}
    for run in results["gallery"] + results["first start"]:
        for row in run["rows"]:  # type: ignore[attr-defined]
            label = row["name"] if row["status"] == "ran" else f"{row['name']} ({row['status']})"
            per_example.setdefault(label, []).append(row["seconds"])
    for name, seconds in per_example.items():
        print(f"    {name:28} median {statistics.median(seconds):5.2f} s (import and run)")


if __name__ == "__main__":
    main()
