"""How failures become HTTP answers: one JSON body shape, never a traceback.

Every error answer is ``{"error": <kind>, "message": ..., ...}``. A failing action answers
``424`` with ``ActionFailed`` (the request was valid; the application's own code raised); the
step is stored as failed, so the next run retries that action. The route class
(``route.limited_route``) answers a body over ``max_body_bytes`` with ``413``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from turnout.core.errors import (
    AnswerValidationError,
    ConcurrencyError,
    GraphSetupError,
    InvalidInputsError,
    StateValidationError,
    SuspensionError,
    TurnoutError,
    UnknownActionError,
    UnsupportedOperationError,
)

__all__ = [
    "ActionFailed",
    "ErrorBody",
    "ServeError",
    "error_response",
]

logger = logging.getLogger("turnout.serve")


class ErrorBody(BaseModel):
    """Every error answer's body."""

    error: str
    message: str
    sequence_id: int | None = None
    path: str | None = None


class ActionFailed(ErrorBody):
    """An action raised (HTTP 424): which one, its exception type and message, and the sequence
    id of the failed step. The application stays usable; its next run runs that action again."""

    action: str
    error_type: str


class ServeError(Exception):
    """An error answer decided by the router itself."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON answer for ``exc`` (an unexpected one is logged with its traceback here and
    answered ``500`` with its type only)."""
    if isinstance(exc, ServeError):
        return JSONResponse(exc.body, status_code=exc.status)
    if isinstance(exc, ConcurrencyError):
        return _answer(409, "conflict", exc, sequence_id=exc.sequence_id)
    if isinstance(exc, AnswerValidationError):
        return _answer(422, "invalid_answer", exc, path=exc.path)
    if isinstance(exc, SuspensionError):
        return _answer(409, "not_waiting", exc)
    if isinstance(exc, (UnknownActionError, InvalidInputsError, StateValidationError)):
        return _answer(422, "invalid_request", exc)
    if isinstance(exc, UnsupportedOperationError):
        return _answer(501, "unsupported", exc)
    if isinstance(exc, GraphSetupError):
        logger.error("the served application cannot be built: %s", exc)
        return _answer(500, "application_setup", exc)
    if isinstance(exc, TurnoutError):
        return _answer(400, "turnout_error", exc)
    logger.exception("unexpected error while serving a request", exc_info=exc)
    return JSONResponse(
        {"error": "internal", "message": f"the server failed ({type(exc).__name__}); see its log"},
        status_code=500,
    )


def _answer(status: int, error: str, exc: BaseException, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": str(exc), **extra}, status_code=status)
