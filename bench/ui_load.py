"""The tracking UI's load times in headless Chromium: ``turnout ui`` against large traces.

A benchmark script, not a test. It measures issue 18's speed targets for the web UI
(``turnout.integrations.fastapi.ui``) on generated data (``_ui_data``):

``start``
    Wall time from starting ``turnout ui --no-demo`` (a subprocess) to its API answering
    ``/api/v1/projects``, polled every 20 ms; target: under 1 s.
``projects``
    The projects page (``/``) until its table's first link is drawn; target: under 300 ms.
``first rows``
    The ``grow-N`` application (``--steps``, 5,000 by default: its state holds a list that grows
    by one int every step) until the first row of its steps table (the newest step) is drawn;
    target: under 500 ms (under 1 s past 5,000 steps: issue 18's 100,000-step target).
``step click``
    On that page, a click on a step's link until the step panel's heading names it (an htmx
    swap; the URL is pushed), timed inside the page. Median of ``--clicks`` clicks; target:
    under 100 ms.
``apps``
    A project of ``--apps`` small applications (three steps each) until its first application
    row is drawn; target: under 500 ms (under 1 s past 1,000 applications).
``server RSS``
    The server process's resident memory (``VmRSS`` of ``/proc/PID/status``) after the visits
    above, the large application open; its peak (``VmHWM``) beside it; target: under 150 MB.

A page visit is a fresh browser context (no HTTP cache) and ``page.goto``; "drawn" is timed
inside the page, from the navigation's start (``performance.timeOrigin``) to the first
animation frame after the awaited element entered the document (an init script watches the
document; a frame waits for the render-blocking stylesheet). "First visit" is the first such
visit after the server started (it has not read that log or project yet): the figure compared
with the target. "Again" is the median of ``--repeat`` more visits; "server alone" the median of
plain HTTP GETs of the same URL (no browser); "wall" the first visit's time as the driver sees
it (from ``page.goto`` to Playwright noticing the element: its own round trips included).

``--background-load N`` runs N busy processes (pure Python loops, stopped at the end) during
the measurements; ``--compare-load N`` measures each store twice, without and then with N busy
processes, and reports the ratio (target: at most 2x). ``--store postgresql`` (or ``both``)
measures the same pages on a PostgreSQL store (``turnout ui --store DSN``): the data are
tracked with ``PostgresTracker`` into tables of a fresh prefix on ``--dsn``, dropped afterwards.
The load average is printed beside the figures. Exit status 1 when a target is missed.

Needs the ``dev`` extra (Playwright, FastAPI, Jinja2) and Debian's Chromium at
``/usr/bin/chromium``; Playwright's own browser downloads are never used.

    python bench/ui_load.py                                     # Markdown table
    python bench/ui_load.py --store both --compare-load 2
    python bench/ui_load.py --steps 100000 --apps 10000 --store both
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, sync_playwright

from turnout.core.tracksource import INDEX_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ui_data import (
    CHROMIUM_ARGS,
    LARGE_PROJECT,
    MANY_PROJECT,
    Store,
    free_port,
    generate_large,
    generate_many,
    large_app_id,
)

TIMEOUT_MS = 120_000
POLL_MS = 5
MB = 1024 * 1024
RSS_TARGET = 150 * MB


def targets(args: argparse.Namespace) -> dict[str, float]:
    """Seconds per measure (issue 18: the larger shapes get 1 s)."""
    return {
        "start": 1.0,
        "projects": 0.3,
        "first rows": 0.5 if args.steps <= 5000 else 1.0,
        "step click": 0.1,
        "apps": 0.5 if args.apps <= 1000 else 1.0,
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
        # A long timeout: on a busy machine the first answer may take seconds, and a poll
        # given up and sent again would only pile requests on the server.
        with urllib.request.urlopen(f"{url}/api/v1/projects", timeout=60) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def web_ui(store: Store, port: int, log: Path) -> Iterator[tuple[str, float, int]]:
    """``turnout ui`` over ``store``: its URL, the seconds it took to answer, its pid."""
    command = [
        sys.executable, "-m", "turnout.cli", "ui", "--no-demo",
        "--port", str(port), "--host", "127.0.0.1", *store.ui_options(),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not answering(url):
            if process.poll() is not None:
                raise RuntimeError(f"turnout ui exited; see {log}")
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"turnout ui did not answer in 300 s; see {log}")
            time.sleep(0.02)
        yield url, time.perf_counter() - start, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def memory(pid: int) -> dict[str, int]:
    """The process's resident set now and at its peak, in bytes (from /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) * 1024
    return out


# Installed in every new document of a context: notes when the awaited element entered the
# document and when the first animation frame after that ran (a frame is produced only once
# the render-blocking stylesheet is in), from the navigation's start.
WATCH = """
(() => {
  const selector = SELECTOR;
  const check = () => {
    if (window.__found !== undefined || !document.querySelector(selector)) return;
    window.__found = performance.now();
    observer.disconnect();
    requestAnimationFrame(() => { window.__drawn = performance.now(); });
  };
  const observer = new MutationObserver(check);
  observer.observe(document, { childList: true, subtree: true });
})();
"""


def timed_visit(browser: Browser, url: str, selector: str) -> tuple[float, float]:
    """A visit in a fresh context: seconds to the element drawn (in the page), and the wall
    time from ``page.goto`` to Playwright noticing the element."""
    context = browser.new_context()
    try:
        context.add_init_script(WATCH.replace("SELECTOR", json.dumps(selector)))
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_function(
            f"() => !!document.querySelector({json.dumps(selector)})",
            timeout=TIMEOUT_MS,
            polling=POLL_MS,
        )
        wall = time.perf_counter() - start
        page.wait_for_function("() => window.__drawn !== undefined", timeout=TIMEOUT_MS)
        drawn = float(page.evaluate("window.__drawn")) / 1000
        return drawn, wall
    finally:
        context.close()


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
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=120) as response:
            response.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(args: argparse.Namespace, store: Store, busy: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"store": store.kind, "busy": busy, "load before": os.getloadavg()}
    port = free_port()
    app_url = f"/projects/{LARGE_PROJECT}/apps/{large_app_id(args.steps)}"
    visits = [
        ("projects", "/", "#projects a.projectlink"),
        ("first rows", app_url, "#steps tbody tr"),
        ("apps", f"/projects/{MANY_PROJECT}", "#apps tbody tr a"),
    ]
    if store.kind == "files":  # every run is the first visit ever: no summary index yet
        (store.root / MANY_PROJECT / INDEX_NAME).unlink(missing_ok=True)
    with (
        background_load(busy, seconds=1800),
        web_ui(store, port, store.root.parent / f"ui-{store.kind}.log") as (url, started, pid),
        sync_playwright() as playwright,
    ):
        figures["start"] = {"first": started}
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        try:
            for name, path, selector in visits:
                first, wall = timed_visit(browser, url + path, selector)
                again = [timed_visit(browser, url + path, selector)[0] for _ in range(args.repeat)]
                figures[name] = {
                    "first": first,
                    "wall": wall,
                    "again": statistics.median(again) if again else None,
                    "server": server_time(url + path, args.repeat),
                }
            if args.clicks:
                context = browser.new_context()
                try:
                    clicks = step_clicks(context, url + app_url, args.steps - 1, args.clicks)
                finally:
                    context.close()
                figures["step click"] = {
                    "first": clicks[0],
                    "again": statistics.median(clicks),
                    # A step of the first page: a long app opens on its tail.
                    "server": server_time(url + app_url + f"/steps/{args.steps - 10}", args.repeat),
                }
            figures["memory"] = memory(pid)
        finally:
            browser.close()
    figures["load after"] = os.getloadavg()
    return figures


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:,.0f} ms"


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, bool]:
    """A Markdown table of one store's runs (the first without background load when compared)."""
    met = True
    goals = targets(args)
    base = runs[0]
    lines = [
        f"turnout web UI on {base['store']}: {args.steps:,}-step app, {args.apps:,}-app project",
        "",
    ]
    for run in runs:
        compared = run is not base
        lines += [
            f"background load: {run['busy']} busy process(es)",
            "",
            "| measure | first visit (drawn) | wall (driver) | again (median) "
            "| server alone (median) | target | met |"
            + (" x no load | <= 2x |" if compared else ""),
            "| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if compared else ""),
        ]
        for name, target in goals.items():
            row = run.get(name)
            if row is None:
                continue
            figure = row["again"] if name == "step click" else row["first"]
            ok = figure <= target
            extra = ""
            if compared:
                ratio = figure / max(
                    base[name]["again"] if name == "step click" else base[name]["first"], 1e-9
                )
                ok = ok and ratio <= 2
                extra = f" {ratio:.2f}x | {'yes' if ratio <= 2 else 'NO'} |"
            met = met and figure <= target
            lines.append(
                f"| {name} | {_ms(row['first'])} | {_ms(row.get('wall'))} | "
                f"{_ms(row.get('again'))} | {_ms(row.get('server'))} | < {_ms(target)} | "
                f"{'yes' if figure <= target else 'NO'} |{extra}"
            )
            if compared and not ok:
                met = False
        rss = run["memory"].get("VmRSS", 0)
        peak = run["memory"].get("VmHWM", 0)
        ok = rss <= RSS_TARGET
        met = met and ok
        lines.append(
            f"| server RSS (peak) | {rss / MB:.0f} MB ({peak / MB:.0f} MB) | | | | "
            f"< {RSS_TARGET // MB} MB | {'yes' if ok else 'NO'} |" + (" | |" if compared else "")
        )
        before = " ".join(f"{x:.2f}" for x in run["load before"])
        after = " ".join(f"{x:.2f}" for x in run["load after"])
        lines += ["", f"load average (1, 5, 15 min): before {before}; after {after}", ""]
    return "\n".join(lines), met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument(
        "--shape", choices=["grow", "count"], default="grow",
        help="the large app's state: a growing list (grow) or a counter",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=10)
    parser.add_argument("--background-load", type=int, default=0, metavar="N")
    parser.add_argument(
        "--compare-load", type=int, default=0, metavar="N",
        help="measure without, then with N busy processes; report the ratio",
    )  # fmt: skip
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data")
    parser.add_argument(
        "--reuse", metavar="PREFIX", default=None,
        help="measure the data an earlier run left: files under --dir/files/tracking, tables "
        "PREFIX_* (generated by a run with --dir and --keep); nothing is generated or dropped",
    )  # fmt: skip
    parser.add_argument(
        "--keep", metavar="PREFIX", default=None,
        help="generate into tables PREFIX_* (and --dir) and keep them, for --reuse",
    )  # fmt: skip
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
    base = Path(args.dir or tempfile.mkdtemp(prefix="ui-load-"))
    kinds = ("files", "postgresql") if args.store == "both" else (args.store,)
    loads = [args.background_load] if not args.compare_load else [0, args.compare_load]
    met = True
    try:
        for kind in kinds:
            prefix = args.reuse or args.keep or f"bench_{uuid.uuid4().hex[:10]}"
            store = Store(kind=kind, root=base / kind / "tracking", dsn=args.dsn, prefix=prefix)
            try:
                if args.reuse is None:
                    store.root.mkdir(parents=True)
                    generate_large(store, args.steps, args.shape)
                    generate_many(store, args.apps)
                runs = [measure(args, store, busy) for busy in loads]
            finally:
                if args.reuse is None and args.keep is None:
                    store.drop()
            text, ok = report(runs, args)
            met = met and ok
            print(json.dumps(runs, indent=2) if args.json else text, flush=True)
        print(f"command: python bench/ui_load.py {' '.join(argv or sys.argv[1:])}")
        return 0 if met else 1
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
