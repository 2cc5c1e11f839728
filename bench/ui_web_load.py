"""The web UI's load times in headless Chromium: ``turnout ui --web`` against large traces.

A benchmark script, not a test. It measures issue 18's first targets for the web UI
(``turnout.integrations.fastapi.ui``), on the data shapes of bench/ui_load.py (the Streamlit UI's
bench), so the two can be put side by side:

``start``
    Wall time from starting ``turnout ui --web --no-demo`` (a subprocess) to its API answering
    ``/api/v1/projects``, polled every 20 ms; target: under 1 s.
``first rows``
    The ``grow-N`` application (``--steps``, 5,000 by default: its state holds a list that grows
    by one int every step). Time from ``page.goto`` of its page, in a fresh browser context, to
    the first row of the steps table (the newest step) being in the page; target: under 500 ms.
``step click``
    On that page, a click on a step's link until the step panel's heading names it (an htmx
    swap; the URL is pushed), timed inside the page. Median of ``--clicks`` clicks; target:
    under 100 ms.
``1,000 apps``
    A project of ``--apps`` small applications (three steps each). Time from ``page.goto`` of the
    project's page to its first application row; target: under 500 ms.
``projects``
    Time from ``page.goto`` of ``/`` to the projects table's first link; target: under 300 ms.

``--store postgresql`` (or ``both``) measures the same pages on a PostgreSQL store
(``turnout ui --web --store DSN``): the data are tracked with ``PostgresTracker`` into tables of
a fresh prefix on ``--dsn`` (dropped afterwards), as bench/ui_load.py does.

"First visit" is a fresh context and a server that has not read that log or project yet (the
figure compared with the target); "again" is the median of ``--repeat`` more visits, each in a
fresh context; "server alone" is the median of plain HTTP GETs of the same URL (no browser),
the server's share of the figure. ``--background-load N`` runs N busy processes (pure Python
loops, stopped at the end) during the measurements, to see the figures with busy cores. The load
average is printed beside the figures. Exit status 1 when a target is missed.

Needs the ``dev`` extra (Playwright, FastAPI, Jinja2) and Debian's Chromium at
``/usr/bin/chromium``; Playwright's own browser downloads are never used.

    python bench/ui_web_load.py                 # Markdown table
    python bench/ui_web_load.py --json
    python bench/ui_web_load.py --background-load 2
    python bench/ui_web_load.py --store both
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ui_load import (  # the Streamlit bench's data, for figures side by side
    CHROMIUM_ARGS,
    LARGE_PROJECT,
    MANY_PROJECT,
    Store,
    free_port,
    generate_large,
    generate_many,
    large_app_id,
)

TIMEOUT_MS = 60_000
POLL_MS = 5
TARGETS = {
    "start": 1.0,
    "projects": 0.3,
    "first rows": 0.5,
    "step click": 0.1,
    "1,000 apps": 0.5,
}


def _busy(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        sum(i * i for i in range(10_000))


@contextlib.contextmanager
def background_load(processes: int, seconds: float) -> Iterator[None]:
    """``processes`` CPU-bound processes, each stopping after ``seconds`` (or at exit)."""
    stop_at = time.monotonic() + seconds
    workers = [multiprocessing.Process(target=_busy, args=(stop_at,)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.terminate()
            worker.join(timeout=10)


def answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/projects", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def web_ui(store: Store, port: int, log: Path) -> Iterator[tuple[str, float]]:
    """``turnout ui --web`` over ``store``; its URL and the seconds it took to answer."""
    command = [
        sys.executable, "-m", "turnout.cli", "ui", "--web", "--no-demo",
        "--port", str(port), "--host", "127.0.0.1", *store.ui_options(),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not answering(url):
            if process.poll() is not None:
                raise RuntimeError(f"turnout ui --web exited; see {log}")
            if time.perf_counter() - start > 60:
                raise RuntimeError(f"turnout ui --web did not answer in 60 s; see {log}")
            time.sleep(0.02)
        yield url, time.perf_counter() - start
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def timed_visit(context: BrowserContext, url: str, condition: str) -> float:
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_function(condition, timeout=TIMEOUT_MS, polling=POLL_MS)
        return time.perf_counter() - start
    finally:
        page.close()


# htmx has taken over the step links (before that, a click is a full page load).
BOOSTED = "() => !!document.querySelector('a.steplink')?.['htmx-internal-data']?.boosted"
CLICK_JS = """
async ([seq, timeout]) => {
  const link = document.querySelector(`#step-${seq} a.steplink`);
  // htmx takes over links swapped in on its settle step, ~20 ms on: a person cannot click
  // sooner, and a click before it would be a full page load.
  while (!link['htmx-internal-data']?.boosted) await new Promise((r) => setTimeout(r, 1));
  const start = performance.now();
  link.click();
  while (!document.querySelector('#step-panel h2')?.textContent.startsWith(`Step ${seq} `)) {
    if (performance.now() - start > timeout) throw new Error(`step ${seq} never showed`);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return performance.now() - start;
}
"""


def step_clicks(context: BrowserContext, url: str, newest: int, clicks: int) -> list[float]:
    """Seconds from a step link's click (in the page) to the panel's heading naming the step."""
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function(BOOSTED, timeout=TIMEOUT_MS)
        return [
            page.evaluate(CLICK_JS, [newest - 1 - number % 20, TIMEOUT_MS]) / 1000
            for number in range(clicks)
        ]
    finally:
        page.close()


def server_time(url: str, repeat: int) -> float:
    """The median seconds of a plain HTTP GET of ``url`` (no browser): the server's share."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as response:
            response.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(args: argparse.Namespace, store: Store) -> dict[str, Any]:
    figures: dict[str, Any] = {"store": store.kind, "load before": os.getloadavg()}
    port = free_port()
    app_url = f"/projects/{LARGE_PROJECT}/apps/{large_app_id(args.steps)}"
    first_row = "() => !!document.querySelector('#steps tbody tr')"
    first_app = "() => !!document.querySelector('#apps tbody tr a')"
    first_project = "() => !!document.querySelector('#projects a.projectlink')"
    visits: list[tuple[str, str, str]] = [
        ("projects", "/", first_project),
        ("first rows", app_url, first_row),
        ("1,000 apps", f"/projects/{MANY_PROJECT}", first_app),
    ]
    with (
        web_ui(store, port, store.root.parent / f"ui-{store.kind}.log") as (url, started),
        sync_playwright() as playwright,
    ):
        figures["start"] = {"first": started}
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            for name, path, condition in visits:

                def fresh(path: str = path, condition: str = condition) -> float:
                    context = browser.new_context()
                    try:
                        return timed_visit(context, url + path, condition)
                    finally:
                        context.close()

                first = fresh()
                again = [fresh() for _ in range(args.repeat)]
                figures[name] = {
                    "first": first,
                    "again": statistics.median(again),
                    "server": server_time(url + path, args.repeat),
                }
            context = browser.new_context()
            try:
                clicks = step_clicks(context, url + app_url, args.steps - 1, args.clicks)
            finally:
                context.close()
            figures["step click"] = {
                "first": clicks[0],
                "again": statistics.median(clicks),
                # A step of the first page: a long app opens on its tail, and older steps
                # answer 404 until "Read all steps" (see docs/ui.md).
                "server": server_time(url + app_url + f"/steps/{args.steps - 10}", args.repeat),
            }
        finally:
            browser.close()
    figures["load after"] = os.getloadavg()
    return figures


def report(figures: dict[str, Any], args: argparse.Namespace) -> tuple[str, bool]:
    met = True
    lines = [
        f"turnout web UI on {figures['store']}, {args.steps:,}-step app, "
        f"{args.apps:,}-app project; "
        f"background load: {args.background_load} busy process(es)",
        "",
        "| measure | first visit | again (median) | server alone (median) | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, target in TARGETS.items():
        row = figures[name]
        ok = row["first"] <= target if name != "step click" else row["again"] <= target
        met = met and ok
        again = f"{row['again'] * 1000:.0f} ms" if "again" in row else ""
        server = f"{row['server'] * 1000:.0f} ms" if "server" in row else ""
        lines.append(
            f"| {name} | {row['first'] * 1000:.0f} ms | {again} | {server} | "
            f"< {target * 1000:.0f} ms | {'yes' if ok else 'NO'} |"
        )
    before = " ".join(f"{x:.2f}" for x in figures["load before"])
    after = " ".join(f"{x:.2f}" for x in figures["load after"])
    lines += ["", f"load average (1, 5, 15 min): before {before}; after {after}"]
    return "\n".join(lines), met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--background-load", type=int, default=0, metavar="N")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--store", choices=["files", "postgresql", "both"], default="files",
        help="the tracking store the UI reads (files)",
    )  # fmt: skip
    parser.add_argument(
        "--dsn", default=os.environ.get("TURNOUT_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL for --store postgresql (tables of a fresh prefix, dropped after)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    base = Path(args.dir or tempfile.mkdtemp(prefix="ui-web-load-"))
    kinds = ("files", "postgresql") if args.store == "both" else (args.store,)
    met = True
    try:
        for kind in kinds:
            store = Store(kind=kind, root=base / kind / "tracking", dsn=args.dsn,
                          prefix=f"bench_{uuid.uuid4().hex[:10]}")  # fmt: skip
            store.root.mkdir(parents=True)
            try:
                generated: dict[str, Callable[[], float]] = {
                    "large": lambda store=store: generate_large(store, args.steps),
                    "many": lambda store=store: generate_many(store, args.apps),
                }
                for generate in generated.values():
                    generate()
                with background_load(args.background_load, seconds=600):
                    figures = measure(args, store)
            finally:
                store.drop()
            text, ok = report(figures, args)
            met = met and ok
            print(json.dumps(figures, indent=2) if args.json else text + "\n", flush=True)
        return 0 if met else 1
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
