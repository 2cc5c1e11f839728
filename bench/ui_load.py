"""Tracking UI load times in a headless browser: ``turnout ui`` against large traces.

This is a benchmark script, not a test. It measures the targets issue 5 sets for the UI, on the
data shapes Burr's UI was measured with (docs/ui.md, "Measured"):

``start``
    Wall time from starting ``turnout ui --no-demo`` (a subprocess) to its health endpoint
    (``/_stcore/health``) answering, polled every 20 ms; target: within 3 s. Also the time from
    the same start to the projects page being drawn in the browser (its table's first cell).
``first rows``
    A generated application of ``--steps`` steps (5,000 by default) whose state holds a list that
    grows by one int every step, tracked with ``LocalTracker`` (default settings). Time from
    ``page.goto`` of its URL (a fresh browser context each time) to the first row of the steps
    table being drawn; target: under 2 s.
``step click``
    On that application's page, a click on a row of the steps table (the row's "open" button, in
    the grid's pinned first column), timed until the chosen step's view is up to date (its heading
    shows the step and no element of the previous run is left stale). Median of ``--clicks``
    clicks (10); target: under 300 ms. Also timed: the same through the "Step" select box
    (target: under 300 ms) and by selecting the row with its marker (no target: Streamlit's grid
    sends a selection to the server only after a 150 ms debounce).
``1,000 apps``
    A project of ``--apps`` small applications (1,000; three steps each). Time from ``page.goto``
    of the project's URL to the applications table and its count being drawn; target: under 2 s.

Page loads are reported three ways. "First visit": a fresh browser context (no HTTP cache, as
Burr's UI was measured) and a server that has not read that log or project yet; this is the figure
compared with the target. "Again, fresh browser": the median of ``--repeat`` more visits, each in a
fresh context (server warm). "Again, cached browser": the median of ``--repeat`` visits in one
context after an untimed one (Streamlit's JavaScript already in the browser's cache, as in a tab
a user keeps open). A control application of 12 steps shows what a page costs with almost no data.
Every timed condition is polled inside the page every 10 ms. The server, the browser and the data
generation all run on this machine; the data are written under ``--dir`` (a temporary directory by
default, deleted afterwards). Exit status 1 when a target is missed.

``--store postgresql`` (or ``both``) runs the same pages against a PostgreSQL tracking store
(``turnout ui --store DSN``): the data are tracked with ``PostgresTracker`` into tables of a
fresh prefix (dropped afterwards) on ``--dsn``. Issue 17's run: ``--steps 100000 --apps 10000
--shape count --store both --clicks 0`` (the ``count`` shape keeps a 100,000-step log at
~30 MB; ``grow``'s list would make it gigabytes). The load average is printed beside the
figures: other processes share the machine.

Needs the ``dev`` extra (Playwright and Streamlit) and Debian's Chromium at ``/usr/bin/chromium``
(``--chromium`` to change; Playwright's own browser downloads are never used).

    python bench/ui_load.py                  # Markdown table
    python bench/ui_load.py --json           # the same as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from turnout import ApplicationBuilder, State, action, default, expr
from turnout.core.tracking import LocalTracker

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LARGE_PROJECT = "large_trace"
MANY_PROJECT = "many_apps"
TIMEOUT_MS = 120_000
# st.dataframe's grid: header and rows are 35 px high; the row marker column is at the left,
# the steps table's pinned column of "open" buttons right after it (its label's middle at 68 px).
GRID_ROW_PX = 35
GRID_MARKER_X = 12
GRID_OPEN_X = 68
STEPS_SEQ_COLUMN = 2  # the steps table's columns: marker 0, "open" 1, seq 2
# Every element of the previous script run is marked stale until the new run replaces it.
STALE = '[data-stale="true"]'
# The control app: as small as the steps table allows, to show the page's cost without data.
CONTROL_STEPS = 12
POLL_MS = 10
STEPS_PER_PAGE = 200  # the UI's steps table shows the page of the chosen step


# -- data -----------------------------------------------------------------------------------------


@action(reads=["count", "items"], writes=["count", "items"])
def grow(state: State) -> State:
    """One more int in the list: step n runs on a state holding n items."""
    return state.update(count=state["count"] + 1).append(items=state["count"])


@action(reads=["count"], writes=["count"])
def bump(state: State) -> State:
    return state.update(count=state["count"] + 1)


@action(reads=["count"], writes=[])
def finish(state: State) -> tuple[dict[str, int], State]:
    return {"count": state["count"]}, state


@action(reads=["count"], writes=["count"])
def grow_count(state: State) -> State:
    """The ``count`` shape: only a counter grows (a 100,000-step log stays small)."""
    return state.update(count=state["count"] + 1)


def large_app_id(steps: int) -> str:
    return f"grow-{steps}"


@dataclass
class Store:
    """Where a run tracks to and what ``turnout ui`` is told to read."""

    kind: str  # "files" or "postgresql"
    root: Path
    dsn: str = ""
    prefix: str = ""

    def tracker(self, project: str) -> Any:
        if self.kind == "files":
            return LocalTracker(project, storage_dir=self.root)
        from turnout.integrations.postgres_tracking import PostgresTracker

        return PostgresTracker(self.dsn, project=project, table_prefix=self.prefix)

    def ui_options(self) -> list[str]:
        if self.kind == "files":
            return ["--dir", str(self.root)]
        return ["--store", self.dsn, "--table-prefix", self.prefix, "--dir", str(self.root)]

    def drop(self) -> None:
        if self.kind == "postgresql":
            import psycopg

            with psycopg.connect(self.dsn, autocommit=True) as conn:
                for table in ("records", "apps"):
                    conn.execute(f"DROP TABLE IF EXISTS {self.prefix}_{table}")
                conn.execute(f"DROP FUNCTION IF EXISTS {self.prefix}_ui_touch()")


def generate_large(store: Store, steps: int, shape: str = "grow") -> float:
    """The ``grow-N`` application: N steps of ``grow``; returns the seconds it took."""
    start = time.perf_counter()
    tracker = store.tracker(LARGE_PROJECT)
    step = grow if shape == "grow" else grow_count
    try:
        app = (
            ApplicationBuilder()
            .with_actions(grow=step)
            .with_transitions(("grow", "grow"))
            .with_state(count=0, items=[])
            .with_entrypoint("grow")
            .with_tracker(tracker)
            .with_identifiers(app_id=large_app_id(steps))
            .build()
        )
        for _ in range(steps):
            app.step()
    finally:
        tracker.close(timeout=600) if store.kind == "postgresql" else tracker.close()
    return time.perf_counter() - start


def generate_many(store: Store, apps: int) -> float:
    """``apps`` applications of three steps each in one project; returns the seconds it took."""
    start = time.perf_counter()
    tracker = store.tracker(MANY_PROJECT)
    try:
        for number in range(apps):
            (
                ApplicationBuilder()
                .with_actions(bump, finish)
                .with_transitions(("bump", "bump", expr("count < 2")), ("bump", "finish", default))
                .with_state(count=0)
                .with_entrypoint("bump")
                .with_tracker(tracker)
                .with_identifiers(app_id=f"app-{number:05d}", partition_key=f"user-{number % 7}")
                .build()
                .run(halt_after=["finish"])
            )
    finally:
        tracker.close(timeout=600) if store.kind == "postgresql" else tracker.close()
    return time.perf_counter() - start


# -- server ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def turnout_ui(store: Store, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "turnout.cli", "ui", "--no-demo",
        "--port", str(port), "--host", "127.0.0.1", *store.ui_options(),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- browser measurements -------------------------------------------------------------------------


def grid_cell(page: Page, column: int, row: int, table: int = 0) -> Any:
    """A cell of the ``table``-th st.dataframe (drawn on a canvas, mirrored in an a11y table)."""
    return (
        page.get_by_test_id("stDataFrame")
        .nth(table)
        .locator(f'[data-testid="glide-cell-{column}-{row}"]')
    )


def wait_js(page: Page, condition: str, arg: Any = None) -> None:
    """Until the JS ``condition`` (a function of ``arg``) holds, checked every 10 ms in the page.

    Playwright's ``expect`` retries at growing intervals (up to a second), too coarse to time
    with; this polls in the page itself.
    """
    page.wait_for_function(condition, arg=arg, timeout=TIMEOUT_MS, polling=POLL_MS)


def first_cell(column: int = 1) -> str:
    """JS: the text of the first row's ``column`` cell of the first st.dataframe, or null."""
    return (
        "document.querySelector("
        f'\'[data-testid="stDataFrame"] [data-testid="glide-cell-{column}-0"]\')'
        "?.textContent ?? null"
    )


FIRST_CELL = first_cell()
FIRST_SEQ = first_cell(STEPS_SEQ_COLUMN)
SETTLED = f"document.querySelector('{STALE}') === null"


def heading_starts(prefix: str) -> str:
    return (
        "[...document.querySelectorAll('h1, h2, h3')]"
        f".some(h => h.textContent.startsWith({json.dumps(prefix)}))"
    )


PROJECTS_TABLE_CELL = "document.querySelector('[data-testid=\"stTable\"] td')"


def time_projects_page(page: Page, url: str) -> None:
    page.goto(url, wait_until="commit")
    wait_js(page, f"() => {heading_starts('turnout · projects')} && !!({PROJECTS_TABLE_CELL})")


def time_first_rows(context: BrowserContext, url: str, steps: int) -> float:
    page = context.new_page()
    try:
        # The chosen step is the last one, so the table shows the last page of steps.
        first_on_page = (steps - 1) // STEPS_PER_PAGE * STEPS_PER_PAGE
        start = time.perf_counter()
        page.goto(f"{url}/?project={LARGE_PROJECT}&app={large_app_id(steps)}", wait_until="commit")
        wait_js(page, f"(want) => ({FIRST_SEQ}) === want", str(first_on_page))
        return time.perf_counter() - start
    finally:
        page.close()


def time_step_clicks(
    context: BrowserContext, url: str, steps: int, clicks: int, via: str = "table"
) -> tuple[list[float], list[float]]:
    """Per click: seconds to the step's heading, and to the whole view being up to date.

    ``via="table"`` clicks the "open" button of the step's row in the steps table;
    ``via="marker"`` selects the row by its marker (left of the row; Streamlit's grid sends a
    selection after a 150 ms debounce); ``via="select"`` picks the step in the "Step" select box
    (opened and filtered before the clock starts: the click on the option is timed).
    """
    page = context.new_page()
    try:
        chosen = steps // 2
        page.goto(f"{url}/?project={LARGE_PROJECT}&app={large_app_id(steps)}&step={chosen}")
        first_on_page = chosen // STEPS_PER_PAGE * STEPS_PER_PAGE
        wait_js(page, f"(want) => ({FIRST_SEQ}) === want", str(first_on_page))
        wait_js(page, f"() => {heading_starts(f'Step {chosen} · ')} && {SETTLED}")
        table = page.get_by_test_id("stDataFrame").first
        headings, settled = [], []
        for number in range(clicks):
            row = number % 10
            if first_on_page + row == chosen:
                row = 10
            seq = first_on_page + row
            if via == "select":
                combobox = page.get_by_role("combobox", name="Step", exact=True)
                combobox.click()
                combobox.fill(f"{seq} · ")
                option = page.get_by_role("option", name=f"{seq} · grow · completed", exact=True)
                option.wait_for(timeout=TIMEOUT_MS)
                start = time.perf_counter()
                option.click()
            else:
                box = table.bounding_box()
                assert box is not None
                start = time.perf_counter()
                page.mouse.click(
                    box["x"] + (GRID_OPEN_X if via == "table" else GRID_MARKER_X),
                    box["y"] + GRID_ROW_PX * (row + 1) + GRID_ROW_PX // 2,
                )
            wait_js(page, f"() => {heading_starts(f'Step {seq} · grow')}")
            headings.append(time.perf_counter() - start)
            wait_js(page, f"() => {SETTLED}")
            settled.append(time.perf_counter() - start)
            chosen = seq
        return headings, settled
    finally:
        page.close()


def time_app_list(context: BrowserContext, url: str, apps: int) -> float:
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(f"{url}/?project={MANY_PROJECT}", wait_until="commit")
        wait_js(
            page,
            f"(want) => document.body.innerText.includes(want) "
            f"&& /^app-\\d{{5}}$/.test(({FIRST_CELL}) ?? '')",
            f"{apps} of {apps} applications",
        )
        return time.perf_counter() - start
    finally:
        page.close()


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    target: str
    limit_s: float | None  # None: a control row, no target
    value_s: float
    warm_median_s: float | None = None  # later visits, fresh browser context each
    cached_median_s: float | None = None  # later visits, one context (browser cache warm)
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.limit_s is None else self.value_s < self.limit_s


@dataclass
class Report:
    date: str
    machine: str
    steps: int
    apps: int
    clicks: int
    large_log_mb: float
    generate_large_s: float
    generate_many_s: float
    rows: list[Row] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)


def measure(args: argparse.Namespace, base: Path) -> Report:
    """Generate the data in each store asked for and time the pages on each."""
    report: Report | None = None
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            for kind in ("files", "postgresql") if args.store == "both" else (args.store,):
                store = Store(kind=kind, root=base / kind, dsn=args.dsn,
                              prefix=f"bench_{uuid.uuid4().hex[:10]}")  # fmt: skip
                store.root.mkdir(parents=True)
                try:
                    report = measure_store(args, store, browser, report)
                finally:
                    store.drop()
        finally:
            browser.close()
    assert report is not None
    return report


def measure_store(
    args: argparse.Namespace, store: Store, browser: Browser, report: Report | None
) -> Report:
    root = store.root
    tag = f"[{store.kind}] "
    print(f"{tag}generating {args.steps}-step app and {args.apps} apps ...", file=sys.stderr)
    large_s = generate_large(store, args.steps, args.shape)
    generate_large(store, CONTROL_STEPS)
    generate_large(store, CONTROL_STEPS * 2)
    many_s = generate_many(store, args.apps)
    log_file = root / LARGE_PROJECT / large_app_id(args.steps) / "log.jsonl"
    log_mb = log_file.stat().st_size / 1e6 if log_file.exists() else 0.0
    if report is None:
        report = Report(
            date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            machine=f"{platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
            steps=args.steps,
            apps=args.apps,
            clicks=args.clicks,
            large_log_mb=round(log_mb, 2),
            generate_large_s=round(large_s, 2),
            generate_many_s=round(many_s, 2),
        )
    report.generated.append(
        f"{store.kind}: {args.steps:,}-step app in {large_s:.1f} s"
        + (f" ({log_mb:.1f} MB log)" if log_mb else "")
        + f", {args.apps:,} apps in {many_s:.1f} s"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A page opened before the server starts: the browser's own start-up is not timed.
    first = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = first.new_page()
    page.goto("about:blank")
    print("starting turnout ui ...", file=sys.stderr)
    start = time.perf_counter()
    with turnout_ui(store, port, root.parent / f"turnout-ui-{store.kind}.log") as process:
        while not healthy(url):
            if process.poll() is not None:
                raise SystemExit(f"turnout ui exited with {process.returncode}")
            if time.perf_counter() - start > TIMEOUT_MS / 1000:
                raise SystemExit("turnout ui never answered")
            time.sleep(0.02)
        health_s = time.perf_counter() - start
        time_projects_page(page, url)
        projects_s = time.perf_counter() - start
        first.close()
        report.rows.append(
            Row(tag + "`turnout ui` answers (health endpoint)", "within 3 s of start",
                3.0, health_s)
        )  # fmt: skip
        report.rows.append(
            Row(tag + "projects page drawn", "within 3 s of start", 3.0, projects_s,
                note="from the same start; browser already running")
        )  # fmt: skip

        def fresh() -> BrowserContext:
            return browser.new_context(viewport={"width": 1400, "height": 1000})

        def visits(visit: Callable[[BrowserContext], float]) -> tuple[float, ...]:
            """Cold visit, then medians of fresh-context and cached-context visits."""
            fresh_runs, cached_runs = [], []
            for _ in range(1 + args.repeat):
                context = fresh()
                fresh_runs.append(visit(context))
                context.close()
            context = fresh()
            visit(context)  # fills the browser's HTTP cache; not timed
            cached_runs = [visit(context) for _ in range(args.repeat)]
            context.close()
            warm, cached = _median(fresh_runs[1:]), _median(cached_runs)
            return fresh_runs[0], warm or fresh_runs[0], cached or fresh_runs[0]

        print("first rows ...", file=sys.stderr)
        cold, warm, cached = visits(lambda c: time_first_rows(c, url, args.steps))
        report.rows.append(
            Row(tag + f"{args.steps:,}-step app: first rows of the steps table", "< 2 s",
                2.0, cold, warm, cached,
                note=(f"log {log_mb:.1f} MB; " if log_mb else "")
                + f"shape {args.shape}; load {_load()}")
        )  # fmt: skip
        cold, warm, cached = visits(lambda c: time_first_rows(c, url, CONTROL_STEPS))
        report.rows.append(
            Row(tag + f"control: {CONTROL_STEPS}-step app, first rows", "-", None, cold,
                warm, cached, note="the page's fixed cost, whatever the data")
        )  # fmt: skip

        print("step clicks ...", file=sys.stderr)
        for steps, limit, via in (
            ()
            if args.clicks < 1
            else (
                (args.steps, 0.3, "table"),
                (args.steps, 0.3, "select"),
                (args.steps, None, "marker"),
                (CONTROL_STEPS * 2, None, "table"),
            )
        ):
            context = fresh()
            headings, clicks = time_step_clicks(context, url, steps, args.clicks, via)
            context.close()
            where = {
                "table": "a steps-table row's open button",
                "select": "the Step select box",
                "marker": "selecting a steps-table row by its marker",
            }[via]
            name = (
                f"step click ({where}) updates the step view (median of {args.clicks})"
                if steps == args.steps
                else f"control: {CONTROL_STEPS * 2}-step app, step click ({where})"
            )
            report.rows.append(
                Row(tag + name, "< 300 ms" if limit else "-", limit, statistics.median(clicks),
                    note=f"min {min(clicks) * 1000:.0f} ms, "
                    f"max {max(clicks) * 1000:.0f} ms; the step's heading after "
                    f"{statistics.median(headings) * 1000:.0f} ms (median)")
            )  # fmt: skip

        print("application list ...", file=sys.stderr)
        cold, warm, cached = visits(lambda c: time_app_list(c, url, args.apps))
        report.rows.append(
            Row(tag + f"project of {args.apps:,} apps: applications page lists", "< 2 s",
                2.0, cold, warm, cached, note=f"50 per page; load {_load()}")
        )  # fmt: skip
    return report


def _load() -> str:
    """The load averages (1, 5, 15 min): other processes share the machine."""
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _verdict(met: bool | None) -> str:
    return "-" if met is None else "met" if met else "**missed**"


def markdown(report: Report) -> str:
    lines = [
        f"`python bench/ui_load.py` on {report.date} ({report.machine}); "
        f"generated: {'; '.join(report.generated)}. Load average at the end: {_load()}.",
        "",
        "| measure | target | measured | again, fresh browser | again, cached browser "
        "| met? | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report.rows:
        lines.append(
            f"| {row.measure} | {row.target} | {_fmt(row.value_s)} | {_fmt(row.warm_median_s)} "
            f"| {_fmt(row.cached_median_s)} | {_verdict(row.met)} | {row.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=5000, help="steps of the large app (5000)")
    parser.add_argument("--apps", type=int, default=1000, help="apps in the big project (1000)")
    parser.add_argument("--clicks", type=int, default=10, help="step clicks to time (10)")
    parser.add_argument("--repeat", type=int, default=3, help="warm visits after the cold one (3)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data (temp)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument(
        "--store", choices=["files", "postgresql", "both"], default="files",
        help="the tracking store the UI reads (files)",
    )  # fmt: skip
    parser.add_argument(
        "--dsn", default=os.environ.get("TURNOUT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL for --store postgresql (tables of a fresh prefix, dropped after)",
    )  # fmt: skip
    parser.add_argument(
        "--shape", choices=["grow", "count"], default="grow",
        help="the large app's state: a list growing every step, or a counter (grow)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not Path(args.chromium).is_file():
        parser.error(f"no Chromium at {args.chromium} (apt-get install chromium)")
    base = Path(tempfile.mkdtemp(prefix="turnout-ui-load-", dir=args.dir))
    try:
        report = measure(args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        data = asdict(report)
        for row, raw in zip(report.rows, data["rows"], strict=True):
            raw["met"] = row.met
        print(json.dumps(data, indent=2))
    else:
        print(markdown(report))
    return 0 if all(row.met is not False for row in report.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
