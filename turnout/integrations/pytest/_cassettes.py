"""Record/replay of a test's HTTP exchanges, over vcrpy.

vcrpy patches the HTTP stacks the model clients use (httpx2 under openai 3.x, httpx, requests,
aiohttp, ...), so every exchange a client makes inside the test is recorded or replayed, whether
it goes through a turnout adapter or not. Cassettes are JSON (vcrpy's json serializer): loading
one is ``json.loads``, which produces values and never calls anything a file names.

Secrets never land in a cassette: headers whose names carry credentials (``Authorization``,
``api-key``, cookies, ...) are replaced by ``<redacted>`` before a request is stored or matched;
their values, and those of ``*_API_KEY``/``*_TOKEN``/``*_SECRET`` environment variables, are
replaced wherever else they appear (URLs, bodies); ``Set-Cookie`` is dropped from responses. A
recorded cassette that still holds a secret is deleted and the test fails.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "REDACTED",
    "CassetteFormatError",
    "CassetteMissError",
    "CassetteSecretError",
    "CassetteSession",
    "cassette_path",
]

REDACTED = "<redacted>"
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|session|password|signature", re.I)
_SECRET_ENV = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD)$", re.I)
_SECRET_QUERY = re.compile(r"^(api[-_]?key|key|access[-_]?token|token|secret|sig|signature)$", re.I)
_MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "body")
_SHOWN_BODY = 400


class CassetteMissError(AssertionError):
    """A replayed test sent a request its cassette does not hold (or has no cassette)."""


class CassetteFormatError(ValueError):
    """A cassette file is not the JSON turnout writes (it is read as data, never run)."""


class CassetteSecretError(AssertionError):
    """A recorded cassette still held a credential; it was deleted."""


def cassette_path(test_file: Path, test_name: str) -> Path:
    """``cassettes/<test module>/<test name>.json`` beside the test's file."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_.") or "cassette"
    return test_file.parent / "cassettes" / test_file.stem / f"{safe}.json"


def _env_secrets() -> dict[str, str]:
    """Credential-like environment values, each with the variable it came from."""
    return {v: f"${k}" for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 6}


class CassetteSession:
    """One test's cassette: replay from ``path``, or with ``record=True`` record it anew.

    Attributes:
        path: the cassette file.
        record: whether the exchanges go to the real server and are written.
        misses: the requests a replay could not answer, described for the error.
    """

    def __init__(self, path: Path, *, record: bool) -> None:
        self.path = path
        self.record = record
        self.misses: list[str] = []
        self._secrets: dict[str, str] = _env_secrets()
        self._context: Any = None
        self.cassette: Any = None

    def __enter__(self) -> CassetteSession:
        try:
            import vcr  # type: ignore[import-untyped]  # vcrpy ships no stubs
        except ImportError as exc:
            from turnout.integrations._guard import missing_extra

            raise missing_extra(
                "turnout.integrations.pytest", 'pip install "turnout[pytest]"', exc
            ) from exc
        if self.record:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)
        elif not self.path.is_file():
            raise CassetteMissError(
                f"turnout_cassette: no cassette at {self.path}; record it once against the real "
                "provider with `pytest --turnout-record <this test>`"
            )
        recorder = vcr.VCR(
            serializer="json",
            record_mode="all" if self.record else "none",
            match_on=_MATCH_ON,
            before_record_request=self._scrub_request,
            before_record_response=self._scrub_response,
            decode_compressed_response=True,
        )
        self._context = recorder.use_cassette(os.fspath(self.path))
        try:
            self.cassette = self._context.__enter__()
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CassetteFormatError(
                f"turnout_cassette: {self.path} is not a cassette turnout wrote ({exc!r}); "
                "delete it and record again with `pytest --turnout-record <this test>`"
            ) from exc
        self._watch_misses(self.cassette)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._context.__exit__(exc_type, exc, tb)
        if self.record and self.path.is_file():
            text = self.path.read_text(encoding="utf-8")
            leaked = sorted({where for value, where in self._secrets.items() if value in text})
            if leaked:
                self.path.unlink()
                raise CassetteSecretError(
                    f"turnout_cassette: the recording held the value of {', '.join(leaked)} in a "
                    f"place turnout does not scrub, so {self.path} was deleted; record with a "
                    "key the provider does not echo back"
                )

    def miss_error(self) -> CassetteMissError:
        """The error naming every request the cassette lacked."""
        lines = "\n".join(f"  {m}" for m in self.misses)
        return CassetteMissError(
            f"turnout_cassette: {len(self.misses)} request(s) not in the cassette {self.path}:\n"
            f"{lines}\nThe test now sends what was not recorded (a changed prompt, model or "
            "parameter, or more calls). Re-record with `pytest --turnout-record <this test>`, "
            "or make the request deterministic."
        )

    def _watch_misses(self, cassette: Any) -> None:
        can_play = cassette.can_play_response_for

        def watched(request: Any) -> bool:
            playable = bool(can_play(request))
            if not playable and cassette.write_protected and cassette.filter_request(request):
                self.misses.append(self._describe(cassette.filter_request(request)))
            return playable

        cassette.can_play_response_for = watched

    def _describe(self, request: Any) -> str:
        body = request.body
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        if len(text) > _SHOWN_BODY:
            text = text[:_SHOWN_BODY] + "..."
        return f"{request.method} {request.uri}" + (f" body: {text}" if text else "")

    def _remember(self, source: str, *values: str) -> None:
        """Note credential values to scrub wherever they appear (not placeholders or stubs)."""
        for value in values:
            if len(value) >= 6 and REDACTED not in value:
                self._secrets.setdefault(value, source)

    def _scrub_text(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def _scrub_request(self, request: Any) -> Any:
        headers = request.headers
        for name in list(headers):
            if _SECRET_HEADER.search(name):
                value = str(headers[name])
                self._remember(f"the {name} header", value, value.partition(" ")[2])
                headers[name] = REDACTED
        request.uri = self._scrub_uri(request.uri)
        body = request.body
        if isinstance(body, bytes) and self._secrets:
            request.body = self._scrub_text(body.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape"
            )
        elif isinstance(body, str):
            request.body = self._scrub_text(body)
        return request

    def _scrub_uri(self, uri: str) -> str:
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(uri)
        if parts.query:
            query = parse_qsl(parts.query, keep_blank_values=True)
            for key, value in query:
                if _SECRET_QUERY.match(key):
                    self._remember(f"the {key} query parameter", value)
            scrubbed = [(k, REDACTED if _SECRET_QUERY.match(k) else v) for k, v in query]
            parts = parts._replace(query=urlencode(scrubbed, safe="<>"))
        return self._scrub_text(urlunsplit(parts))

    def _scrub_response(self, response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers") or {}
        for name in list(headers):
            if name.lower() == "set-cookie":
                del headers[name]
            elif _SECRET_HEADER.search(name):
                headers[name] = [REDACTED]
            else:
                values = headers[name]
                headers[name] = [
                    self._scrub_text(v) if isinstance(v, str) else v
                    for v in (values if isinstance(values, list) else [values])
                ]
        body = response.get("body") or {}
        content = body.get("string")
        if isinstance(content, bytes) and self._secrets:
            with contextlib.suppress(UnicodeDecodeError):
                body["string"] = self._scrub_text(content.decode("utf-8")).encode("utf-8")
        elif isinstance(content, str):
            body["string"] = self._scrub_text(content)
        return response
