"""Applications served over HTTP: ``serve(factory, persister=...)`` returns a FastAPI
``APIRouter``; ``turnout serve module:factory --db URL`` runs one with uvicorn.

Built on FastAPI (routes and OpenAPI), uvicorn (the server and its workers) and sse-starlette
(Server-Sent Events). See docs/serving.md.
"""

from __future__ import annotations

from turnout.integrations._guard import missing_extra

try:
    import fastapi  # noqa: F401
    import sse_starlette  # noqa: F401
except ImportError as _error:
    raise missing_extra(
        "turnout.integrations.fastapi", 'pip install "turnout[serve]"', _error
    ) from _error

from turnout.integrations.fastapi.builder import Factory, ServedBuilder
from turnout.integrations.fastapi.errors import ActionFailed, ErrorBody
from turnout.integrations.fastapi.policies import OnBusy
from turnout.integrations.fastapi.relay import LocalRelay, Relay
from turnout.integrations.fastapi.resources import AppView, StepView, SuspensionView
from turnout.integrations.fastapi.router import serve

__all__ = [
    "ActionFailed",
    "AppView",
    "ErrorBody",
    "Factory",
    "LocalRelay",
    "OnBusy",
    "Relay",
    "ServedBuilder",
    "StepView",
    "SuspensionView",
    "serve",
]
