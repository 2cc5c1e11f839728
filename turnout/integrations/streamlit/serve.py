"""The process ``turnout ui`` becomes: the tracking UI script served by Streamlit, with every
request whose ``Host`` header names a host not allowed refused before Streamlit sees it.

A page on any web site can make the browser talk to ``127.0.0.1`` through a domain of its own
that resolves there (DNS rebinding); such a request carries that domain in its ``Host`` header.
So by default only ``127.0.0.1``, ``localhost``, ``::1`` and the bound address (any port) are
served; ``--allow-host NAME`` (repeatable), or ``$TURNOUT_UI_ALLOW_HOSTS`` (comma-separated),
adds the names a reverse proxy forwards, and ``*`` allows any. A refused HTTP request gets a
403 that names the option; a refused websocket handshake is closed before it is accepted (403).

The check is an ASGI middleware given to Streamlit's public ``st.App(script, middleware=...)``,
run with ``App.run(config=...)``: the documented way to wrap a Streamlit server, so no
Streamlit internal is patched.

Usage: ``python -m turnout.integrations.streamlit.serve --port P --host H --dir DIR
[--allow-host NAME ...] [--artifacts DIR]`` (``turnout ui`` builds this command). The script
reads ``--dir`` and ``--artifacts`` from the process's arguments, and a PostgreSQL store from
``$TURNOUT_UI_STORE`` (``turnout ui --store`` sets it: a password stays off the command line).
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from turnout.core.errors import MissingExtraError
from turnout.integrations.streamlit.params import shown

__all__ = [
    "ALLOW_HOSTS_ENV",
    "LOCAL_HOSTS",
    "HostCheck",
    "allowed_hosts",
    "check_streamlit",
    "host_allowed",
    "main",
]

ALLOW_HOSTS_ENV = "TURNOUT_UI_ALLOW_HOSTS"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_ANY_ADDRESS = ("", "0.0.0.0", "::")  # a wildcard bind names no host a browser would use

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def check_streamlit() -> None:
    """Raise ``MissingExtraError`` unless Streamlit has ``st.App(...).run`` (Streamlit 1.59)."""
    import streamlit as st

    if not callable(getattr(getattr(st, "App", None), "run", None)):
        raise MissingExtraError(
            f"turnout ui serves the UI with st.App(...).run, which Streamlit "
            f"{getattr(st, '__version__', '?')} does not have (it came with 1.59): "
            'pip install -U "turnout[start]" (or pip install -U "streamlit>=1.59").'
        )


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The host names served: this machine's, the bound address and ``extra`` (names from
    ``--allow-host`` or ``$TURNOUT_UI_ALLOW_HOSTS``; ``*`` allows any)."""
    names = [*LOCAL_HOSTS]
    if bound.strip("[]") not in _ANY_ADDRESS:
        names.append(bound)
    names.extend(extra)
    cleaned = (name.strip().strip("[]").lower().rstrip(".") for name in names)
    return tuple(dict.fromkeys(name for name in cleaned if name))


def host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Whether a request's ``Host`` header (``name`` or ``name:port``) names an allowed host."""
    if "*" in allowed:
        return True
    if not host:
        return False
    try:
        parts = urllib.parse.urlsplit(f"//{host}")
        name, _port = parts.hostname, parts.port  # reading .port checks it is a number
    except ValueError:
        return False
    if name is None or parts.username is not None or parts.path or parts.query:
        return False
    return name.rstrip(".") in allowed


class HostCheck:
    """ASGI middleware: requests (HTTP and websocket) for a host not in ``allowed`` are refused."""

    def __init__(self, app: ASGIApp, *, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if host_allowed(host, self.allowed):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with a 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (
            f"turnout ui: Host {shown(host or '')} is not served (allowed: "
            f"{', '.join(self.allowed)}). Behind a proxy, start it with "
            f"`turnout ui --allow-host NAME` or set {ALLOW_HOSTS_ENV}=NAME.\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m turnout.integrations.streamlit.serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", required=True, help="address to bind")
    parser.add_argument("--dir", required=True, help="tracking directory (read by app.py)")
    parser.add_argument("--allow-host", action="append", default=[], dest="allow_hosts")
    parser.add_argument("--artifacts", default=None, help="artifact store directory (app.py)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the tracking UI (blocks until the server stops)."""
    import streamlit as st
    from starlette.middleware import Middleware

    check_streamlit()
    args = _parser().parse_args(argv)
    allowed = allowed_hosts(args.host, args.allow_hosts)
    app = st.App(
        Path(__file__).with_name("app.py"),
        middleware=[Middleware(HostCheck, allowed=allowed)],
    )
    app.run(
        config={
            "server.port": args.port,
            "server.address": args.host,
            "server.headless": True,
            "browser.gatherUsageStats": False,
            # A served UI never edits its own script: skip the file watcher's start-up scan.
            "server.fileWatcherType": "none",
            "client.toolbarMode": "minimal",
        }
    )


if __name__ == "__main__":
    main()
