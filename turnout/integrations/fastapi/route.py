"""The route class of ``serve()``'s routes: a body-size limit, errors answered as JSON, and a
short path for the hot routes.

Every route refuses a body over ``max_body_bytes`` (``413``) before anything parses it and
answers every error of its endpoint with ``errors.error_response`` (an ``APIRouter`` cannot
carry exception handlers).

The routes that drive an application (``run``, ``step``) are most of a server's requests.
When they depend on nothing but their body (no router ``dependencies``, a constant partition
key), ``serve()`` registers them in ``fast``: a JSON body that fits the route's model is
parsed and validated in one call (``model_validate_json``, pydantic's Rust parser) and the
endpoint called directly, without FastAPI's per-request dependency solving. Anything else (a
body that is not JSON, does not fit, another content type, no body) goes through FastAPI's own
handler, so every error answer stays FastAPI's (``422`` naming the field) and the OpenAPI schema
is FastAPI's in every case: the route is declared as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from turnout.integrations.fastapi.errors import error_response

__all__ = ["FastPath", "limited_route"]

_JSON_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})


@dataclass(frozen=True, kw_only=True, slots=True)
class FastPath:
    """How to call an endpoint without FastAPI's dependency solving: its body model, the name
    of its body parameter and the values of its other (constant) parameters; path parameters
    come from the matched path."""

    model: type[BaseModel]
    body: str = "body"
    constants: tuple[tuple[str, Any], ...] = ()


def limited_route(
    max_body_bytes: int, fast: dict[Callable[..., Any], FastPath] | None = None
) -> type[APIRoute]:
    """A route class refusing bodies over ``max_body_bytes``, answering every error of its
    endpoint with ``error_response``, and calling the endpoints in ``fast`` (filled in before
    the routes are added) by their short path."""
    shortcuts = {} if fast is None else fast

    class LimitedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            shortcut = shortcuts.get(self.endpoint)
            endpoint = self.endpoint

            async def limited(request: Request) -> Response:
                declared = request.headers.get("content-length")
                if declared is not None and (
                    not declared.isdigit() or int(declared) > max_body_bytes
                ):
                    return _too_large(declared, max_body_bytes)
                body = b""
                if request.method in ("POST", "PUT", "PATCH"):
                    # Starlette keeps the body it read: the endpoint reads this same copy.
                    body = await request.body()
                    if len(body) > max_body_bytes:
                        return _too_large(str(len(body)), max_body_bytes)
                try:
                    if shortcut is not None and body:
                        answer = await _short(request, body, shortcut, endpoint)
                        if answer is not None:
                            return answer
                    return await handler(request)
                except (RequestValidationError, HTTPException):
                    raise  # FastAPI's own answers (a 422 naming the field, auth's 401)
                except Exception as exc:
                    return error_response(exc)

            return limited

    return LimitedRoute


async def _short(
    request: Request, body: bytes, shortcut: FastPath, endpoint: Callable[..., Any]
) -> Response | None:
    """The endpoint's answer, or ``None``: not a JSON body that fits (FastAPI's handler then
    parses it again and answers as it always does)."""
    if request.headers.get("content-type", "").lower() not in _JSON_TYPES:
        return None
    try:
        parsed = shortcut.model.model_validate_json(body)
    except ValidationError:
        return None
    kwargs: dict[str, Any] = {**request.path_params, **dict(shortcut.constants)}
    kwargs[shortcut.body] = parsed
    answer: Response = await endpoint(**kwargs)
    return answer


def _too_large(size: str, limit: int) -> JSONResponse:
    return JSONResponse(
        {
            "error": "body_too_large",
            "message": f"the request body ({size} bytes) is over the limit of {limit} bytes "
            f"(serve(max_body_bytes=...))",
        },
        status_code=413,
    )
