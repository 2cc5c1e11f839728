"""``turnout ui`` answers only requests whose Host header names an allowed host (DNS rebinding):
the rule (``host_allowed``), the ASGI middleware, and a real ``turnout ui`` server asked over
HTTP and for a websocket upgrade with good and bad Host headers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("streamlit")

from tests.integrations.streamlit_ui import get, turnout_ui
from turnout.cli import main
from turnout.integrations.streamlit.serve import HostCheck, allowed_hosts, host_allowed

DEFAULT = allowed_hosts("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("127.0.0.1:7241", DEFAULT, True),
        ("localhost", DEFAULT, True),
        ("LOCALHOST:80", DEFAULT, True),
        ("[::1]:7241", DEFAULT, True),
        ("evil.example", DEFAULT, False),
        ("evil.example:7241", DEFAULT, False),
        ("127.0.0.1.evil.example", DEFAULT, False),
        ("localhost@evil.example", DEFAULT, False),
        ("localhost:notaport", DEFAULT, False),
        ("localhost/x", DEFAULT, False),
        ("", DEFAULT, False),
        (None, DEFAULT, False),
        ("ui.example:443", allowed_hosts("127.0.0.1", ["ui.example"]), True),
        ("anything.example", allowed_hosts("127.0.0.1", ["*"]), True),
        ("192.168.1.5:7241", allowed_hosts("192.168.1.5"), True),
        ("192.168.1.5:7241", allowed_hosts("0.0.0.0"), False),
    ],
    ids=[
        "ip-with-port", "localhost", "case-insensitive", "ipv6-loopback", "foreign",
        "foreign-with-port", "loopback-prefix", "userinfo", "bad-port", "path", "empty",
        "missing", "allowed-by-option", "star", "bound-address", "wildcard-bind-names-nothing",
    ],
)  # fmt: skip
def test_host_allowed(host: str | None, allowed: tuple[str, ...], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected


def test_the_default_hosts_are_this_machine_and_the_bound_address() -> None:
    assert allowed_hosts("127.0.0.1") == ("127.0.0.1", "localhost", "::1")
    assert allowed_hosts("[::]") == ("127.0.0.1", "localhost", "::1")
    assert allowed_hosts("10.0.0.2", [" UI.Example. ", ""]) == (
        "127.0.0.1",
        "localhost",
        "::1",
        "10.0.0.2",
        "ui.example",
    )


def _call(scope_type: str, host: str) -> tuple[list[dict[str, Any]], bool]:
    """Run ``HostCheck`` on one request; what it sent and whether the app behind it ran."""
    reached = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": scope_type, "headers": [(b"host", host.encode())]}
    asyncio.run(HostCheck(app, allowed=DEFAULT)(scope, receive, send))
    return sent, bool(reached)


def test_the_middleware_refuses_a_foreign_host_and_passes_a_local_one() -> None:
    sent, reached = _call("http", "evil.example")
    assert not reached
    assert sent[0]["status"] == 403
    assert b"--allow-host" in sent[1]["body"]
    assert b"'evil.example'" in sent[1]["body"]
    sent, reached = _call("websocket", "evil.example:1")
    assert not reached
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert _call("http", "127.0.0.1:8000") == ([], True)
    assert _call("websocket", "localhost") == ([], True)


def _upgrade(port: int, host: str) -> int:
    """The status of a websocket handshake on Streamlit's stream endpoint."""
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Origin": f"http://{host}",
    }
    return get(port, "/_stcore/stream", host, headers)


@pytest.fixture(scope="module")
def ui_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real ``turnout ui`` on a free port, allowing one proxy name besides the defaults."""
    root = tmp_path_factory.mktemp("serve")
    with turnout_ui(root / "tracking", root / "ui.log", "--allow-host", "proxy.example") as port:
        yield port


@pytest.mark.parametrize("path", ["/", "/_stcore/health"])
def test_turnout_ui_refuses_a_foreign_host_over_http(ui_port: int, path: str) -> None:
    assert get(ui_port, path, "evil.example") == 403
    assert get(ui_port, path, f"evil.example:{ui_port}") == 403
    assert get(ui_port, path, f"127.0.0.1:{ui_port}") == 200
    assert get(ui_port, path, f"localhost:{ui_port}") == 200
    assert get(ui_port, path, "proxy.example") == 200  # --allow-host proxy.example


def test_turnout_ui_refuses_a_foreign_host_on_the_websocket(ui_port: int) -> None:
    assert _upgrade(ui_port, f"evil.example:{ui_port}") == 403
    assert _upgrade(ui_port, f"127.0.0.1:{ui_port}") == 101


def test_turnout_ui_without_st_app_run_names_the_streamlit_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import streamlit

    class OldApp:  # Streamlit 1.55-1.58: st.App without run()
        pass

    monkeypatch.setattr(streamlit, "App", OldApp)
    monkeypatch.setattr(os, "execv", lambda *args: pytest.fail("started without a Host check"))
    assert main(["ui", "--dir", str(tmp_path), "--no-demo"]) == 1
    assert 'pip install -U "streamlit>=1.59"' in capsys.readouterr().err
