"""Served chat throughput: ``turnout serve`` over PostgreSQL with 1, 2 and 4 workers, and the
same workload through Burr's documented FastAPI pattern around its PostgreSQL persister.

This is a benchmark script, not a test. Each configuration starts a real uvicorn server on
127.0.0.1 (``--workers N``, its output to a file), then ``--clients`` concurrent sessions each
drive their own chat over their own HTTP/1.1 keep-alive connection: ``--turns`` requests, each
one step (a user message in, a reply appended to the history, the step saved to PostgreSQL,
the application halting after it). The client is a lean one of its own (``_Connection``:
requests encoded before the clock starts, answers read by their ``Content-Length``), so that
it takes little of the CPU the servers share with it. Reported per configuration: requests/s
(all turns over the wall time), p50 and p99 of one request's latency, CPU time per request
of the server (all its processes, from ``/proc``: a figure that other load on the machine
disturbs less than requests/s), of its PostgreSQL sessions (named through ``PGAPPNAME``) and
of the client, and the 1-minute load average before and after; then turnout's requests/s over
Burr's per worker count. The event loop and HTTP parser uvicorn picks (uvloop and httptools
when installed) are printed for each Python.

``turnout``: ``python -m turnout.cli serve _serve_chat:factory --db <dsn> --workers N``; each
session is created first (``POST /apps``, untimed), each turn is ``POST /apps/{id}/run``
with ``halt_after``. ``burr``: ``bench/_serve_chat.py``'s FastAPI app under uvicorn with the
same number of workers: a sync endpoint (FastAPI runs it in its thread pool) builds the
application with ``initialize_from(persister, resume_at_next_action=True)``, runs it to its
halt and returns the state; one ``PostgreSQLPersister`` (psycopg2) per worker, created when the
module loads, as Burr's examples do. It runs only when ``--burr-python`` (default: this
Python) can import burr, fastapi, uvicorn and psycopg2; otherwise the report says it was
skipped.

Usage: python bench/serve.py [--clients 16] [--turns 25] [--workers 1 2 4]
       [--burr-python /tmp/burrvenv/bin/python] [--dsn postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    """A uvicorn server process, ready once each worker says its startup is complete and its
    socket accepts connections. Its output goes to a file (as a server's log would), not to a
    pipe this process must keep reading: a full pipe would block the server's access log."""

    def __init__(self, command: list[str], env: dict[str, str], workers: int, port: int) -> None:
        self.port = port
        # PostgreSQL names the server's sessions after this (libpq reads PGAPPNAME), so
        # that the database's CPU spent on them can be counted (db_cpu_seconds).
        self.name = f"bench-serve-{uuid.uuid4().hex[:8]}"
        # Kept open for the server's life, closed (and removed) by stop().
        self._output = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=BENCH, env={**os.environ, **env, "PGAPPNAME": self.name},
            stdout=self._output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.started = dt.datetime.now(dt.UTC)
        try:
            self._wait(workers, port)
        except BaseException:
            self.stop()  # a server that did not start must not keep its connections
            raise

    def _wait(self, workers: int, port: int) -> None:
        deadline = time.monotonic() + 300  # four workers start slowly on a loaded machine
        while "".join(self.log).count("Application startup complete") < workers:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the server did not start: {''.join(self.log)}")
            time.sleep(0.05)
        # A single uvicorn process reports its startup before it binds its socket.
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"the server does not listen: {''.join(self.log)}") from None
                time.sleep(0.05)

    @property
    def log(self) -> list[str]:
        """The server's output so far, in lines."""
        text = Path(self._output.name).read_bytes().decode(errors="replace")
        return text.splitlines(keepends=True)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server and its worker processes so far (Linux)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:  # the process ended meanwhile
                continue
            pid, ppid = int(stat.parent.name), int(fields[1])
            if self.process.pid in (pid, ppid):
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def db_cpu_seconds(self, dsn: str) -> float:
        """CPU time of the PostgreSQL sessions serving this server (its pool's, and its
        relay's, which name themselves), when PostgreSQL runs on this machine."""
        import psycopg

        try:
            conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError:  # e.g. too many clients: the figure goes missing
            return float("nan")
        with conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s OR "
                "(application_name LIKE 'turnout-relay-%%' AND backend_start >= %s)",
                [self.name, self.started],
            ).fetchall()
        return sum(_cpu(pid) for (pid,) in rows)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._output.close()


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _turnout(dsn: str, table: str, workers: int) -> _Server:
    port = _free_port()
    command = [
        sys.executable, "-m", "turnout.cli", "serve", "_serve_chat:factory", "--db", dsn,
        "--table", table, "--workers", str(workers), "--port", str(port),
    ]  # fmt: skip
    pythonpath = os.pathsep.join([str(BENCH), str(ROOT), *sys.path])
    return _Server(command, {"PYTHONPATH": pythonpath}, workers, port)


def _burr(python: str, dsn: str, table: str, workers: int) -> _Server:
    port = _free_port()
    command = [
        python, "-m", "uvicorn", "_serve_chat:app", "--workers", str(workers),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = {"BENCH_BURR_TABLE": table, "BENCH_PG_DSN": dsn, "PYTHONPATH": str(BENCH)}
    return _Server(command, env, workers, port)


class _Connection:
    """One HTTP/1.1 keep-alive connection speaking just what this benchmark needs: a request
    sent as prepared bytes, an answer read by its ``Content-Length``. A lean client, so that
    the load it puts on the machine (which the servers share) stays small and alike for both."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        found = _LENGTH.search(head)
        if found is None:  # both servers answer JSON with a Content-Length, never chunked
            raise RuntimeError(f"an answer without Content-Length: {head!r}")
        return status, await self.reader.readexactly(int(found.group(1)))

    def close(self) -> None:
        self.writer.close()


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _post(port: int, path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def _drive(
    server: _Server, clients: int, turns: int, create: bool, dsn: str
) -> dict[str, Any]:
    latencies: list[float] = []
    port = server.port

    def requests(index: int) -> tuple[str, bytes | None, list[bytes]]:
        """A session's app id, its creation request (turnout) and its turns, all encoded."""
        app_id = f"bench-{index}-{uuid.uuid4().hex[:6]}"
        made = _post(port, "/apps", {"app_id": app_id}) if create else None
        out = []
        for turn in range(turns):
            message = f"message {turn} of session {index}, about the weather"
            body = (
                {"halt_after": ["respond"], "inputs": {"message": message}}
                if create
                else {"message": message}
            )
            out.append(_post(port, f"/apps/{app_id}/run", body))
        return app_id, made, out

    async def session(connection: _Connection, turns_sent: list[bytes]) -> None:
        answer = b""
        for request in turns_sent:
            began = time.perf_counter()
            status, answer = await connection.send(request)
            latencies.append(time.perf_counter() - began)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {answer[:500]!r}")
        assert json.loads(answer)["state"]["turns"] == turns

    async def round_() -> tuple[float, float, float, float]:
        # New connections each round: uvicorn closes one idle for 5 s (its keep-alive).
        connections = [await _Connection.open(port) for _ in range(clients)]
        try:
            return await timed(connections, [requests(i) for i in range(clients)])
        finally:
            for connection in connections:
                connection.close()

    async def timed(
        connections: list[_Connection], sessions: list[tuple[str, bytes | None, list[bytes]]]
    ) -> tuple[float, float, float, float]:
        for connection, (_, made, _) in zip(connections, sessions, strict=True):
            if made is not None:  # sessions exist before the clock starts
                status, answer = await connection.send(made)
                if status != 201:
                    raise RuntimeError(f"HTTP {status}: {answer[:500]!r}")
        latencies.clear()
        db = server.db_cpu_seconds(dsn)
        began, cpu, own = time.perf_counter(), server.cpu_seconds(), time.process_time()
        pairs = zip(connections, sessions, strict=True)
        await asyncio.gather(*(session(c, turns_sent) for c, (_, _, turns_sent) in pairs))
        wall, cpu, own = (
            time.perf_counter() - began,
            server.cpu_seconds() - cpu,
            time.process_time() - own,
        )
        return wall, cpu, own, server.db_cpu_seconds(dsn) - db

    await round_()  # warm-up, untimed
    wall, cpu, own, db = await round_()
    ordered = sorted(latencies)
    return {
        "rps": len(ordered) / wall,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "requests": len(ordered),
        "cpu": cpu * 1000 / len(ordered),
        "client_cpu": own * 1000 / len(ordered),
        "db_cpu": db * 1000 / len(ordered),
    }


def _burr_missing(python: str) -> str | None:
    try:
        probe = subprocess.run(
            [python, "-c", "import burr, fastapi, uvicorn, psycopg2"],
            capture_output=True, text=True,
        )  # fmt: skip
    except OSError as exc:
        return str(exc)
    return None if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


def _drop(dsn: str, tables: list[str]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def _uvicorn_impl(python: str, env: dict[str, str]) -> str:
    """The event loop and HTTP parser uvicorn picks by itself (``auto``) in ``python``."""
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u; print("
         "'uvloop' if u.find_spec('uvloop') else 'asyncio', "
         "'httptools' if u.find_spec('httptools') else 'h11')"],
        capture_output=True, text=True, env={**os.environ, **env},
    )  # fmt: skip
    return probe.stdout.strip().replace(" ", "+") or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--turns", type=int, default=25)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--burr-python", default=sys.executable)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    missing = _burr_missing(args.burr_python)
    systems = ["turnout"] + ([] if missing else ["burr"])
    impl = {"turnout": _uvicorn_impl(sys.executable, {})}
    if not missing:
        impl["burr"] = _uvicorn_impl(args.burr_python, {"PYTHONPATH": str(BENCH)})
    print(f"{args.clients} concurrent clients, {args.turns} turns each (after as many untimed), "
          f"{os.cpu_count()} CPUs; uvicorn's loop+http: "
          f"{', '.join(f'{k} {v}' for k, v in impl.items())}\n")  # fmt: skip
    if len(set(impl.values())) > 1:
        print("warning: the servers run different uvicorn implementations; install the same "
              "(uvloop, httptools) in both Pythons to compare the libraries\n")  # fmt: skip
    print("| system | workers | requests/s | p50 ms | p99 ms | server CPU ms/request | "
          "db CPU ms/request | client CPU ms/request | load before | load after |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for workers in args.workers:
        outs: dict[str, dict[str, Any]] = {}
        for system in systems:
            table = f"bench_serve_{uuid.uuid4().hex[:8]}"
            load_before = os.getloadavg()[0]
            if system == "turnout":
                server = _turnout(args.dsn, table, workers)
            else:
                server = _burr(args.burr_python, args.dsn, table, workers)
            try:
                out = asyncio.run(
                    _drive(
                        server, args.clients, args.turns, create=system == "turnout", dsn=args.dsn
                    )
                )
            except Exception:
                print("".join(server.log[-60:]), file=sys.stderr)
                raise
            finally:
                server.stop()
                names = [table] if system == "burr" else [
                    f"{table}_{s}" for s in ("steps", "apps", "meta", "journal")
                ]  # fmt: skip
                _drop(args.dsn, names)
            outs[system] = out
            print(f"| {system} | {workers} | {out['rps']:.0f} | {out['p50']:.1f} | "
                  f"{out['p99']:.1f} | {out['cpu']:.2f} | {out['db_cpu']:.2f} | "
                  f"{out['client_cpu']:.2f} | {load_before:.2f} | {os.getloadavg()[0]:.2f} |",
                  flush=True)  # fmt: skip
        if len(outs) == 2:
            ours, theirs = outs["turnout"], outs["burr"]
            ratios.append(
                f"{workers} worker(s): turnout/burr requests/s {ours['rps'] / theirs['rps']:.2f}x, "
                f"p99 {ours['p99']:.1f} vs {theirs['p99']:.1f} ms, server CPU/request "
                f"{ours['cpu']:.2f} vs {theirs['cpu']:.2f} ms, db CPU/request "
                f"{ours['db_cpu']:.2f} vs {theirs['db_cpu']:.2f} ms"
            )
    if ratios:
        print("\n" + "\n".join(ratios))
    if missing:
        print(f"\nburr: skipped ({args.burr_python} cannot import it: {missing})")


if __name__ == "__main__":
    main()
