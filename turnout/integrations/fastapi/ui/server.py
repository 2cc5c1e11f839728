"""``turnout ui``: the web UI over a tracking store, served by uvicorn.

The store is a tracking directory or, when ``$TURNOUT_UI_STORE`` holds a ``postgresql://``
connection string (``turnout ui --store`` sets it, with ``$TURNOUT_UI_TABLE_PREFIX``: the
password stays off the command line), the tables a
``PostgresTracker`` writes. On a directory with no tracked application the demo applications
are run into it first, unless ``demo=False``. The server binds
``host`` (127.0.0.1 by default) and answers only requests whose ``Host`` names this machine,
the bound address or one of ``allow_hosts`` (``*``: any), so another site's page cannot reach
it through DNS rebinding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from turnout.integrations.fastapi.ui import _source
from turnout.integrations.fastapi.ui.app import create_ui_app
from turnout.integrations.fastapi.ui.prices import load_prices

__all__ = ["PRICES_ENV", "STORE_ENV", "TABLE_PREFIX_ENV", "allowed_hosts", "prepare", "run_ui"]

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
STORE_ENV = "TURNOUT_UI_STORE"
TABLE_PREFIX_ENV = "TURNOUT_UI_TABLE_PREFIX"
PRICES_ENV = "TURNOUT_UI_PRICES"


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> list[str]:
    """The Host names answered: this machine's, the bound address, ``extra`` and the
    comma-separated names in ``$TURNOUT_UI_ALLOW_HOSTS``."""
    names = [*LOCAL_NAMES, host, *extra, *os.environ.get("TURNOUT_UI_ALLOW_HOSTS", "").split(",")]
    return sorted({name.strip() for name in names if name.strip()})


def prepare(storage_dir: Path, *, demo: bool) -> None:
    """Create ``storage_dir`` and, when it holds nothing yet and ``demo``, run the demo apps."""
    storage_dir.mkdir(parents=True, exist_ok=True)
    if demo and _source.is_empty(storage_dir):
        print(f"turnout: no tracked applications in {storage_dir}; running the demo apps…")
        _source.generate_demo(storage_dir)


def run_ui(
    storage_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 7241,
    demo: bool = True,
    allow_hosts: Sequence[str] = (),
    artifacts: Path | None = None,
    serve_url: str | None = None,
    prices: Path | None = None,
) -> None:
    """Serve the web UI until interrupted: over the PostgreSQL store named by
    ``$TURNOUT_UI_STORE`` if set, else over ``storage_dir``; ``artifacts``, ``serve_url`` and
    ``prices`` (default ``$TURNOUT_UI_PRICES``) are passed to ``create_ui_app``."""
    price_file = prices or os.environ.get(PRICES_ENV) or None
    options: dict[str, Any] = {
        "artifacts": artifacts,
        "serve_url": serve_url,
        "prices": load_prices(price_file),  # a bad file stops here, before any work
    }
    dsn = os.environ.get(STORE_ENV)
    if dsn:
        prefix = os.environ.get(TABLE_PREFIX_ENV) or _source.DEFAULT_PREFIX
        app = create_ui_app(
            dsn, table_prefix=prefix, allowed_hosts=allowed_hosts(host, allow_hosts), **options
        )
    else:
        prepare(storage_dir, demo=demo)
        app = create_ui_app(storage_dir, allowed_hosts=allowed_hosts(host, allow_hosts), **options)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
