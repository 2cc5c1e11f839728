"""The error every adapter module raises when its library is not installed."""

from __future__ import annotations

from turnout.core.errors import MissingExtraError

__all__ = ["missing_extra"]


def missing_extra(adapter: str, install: str, error: ImportError) -> MissingExtraError:
    """The ``MissingExtraError`` for ``adapter`` (e.g. ``"turnout.integrations.postgres"``).

    ``install`` is the exact command, written out literally in the adapter module (e.g.
    ``'pip install "turnout[postgres]"'``) so a test can check the extra it names exists.
    """
    missing = error.name.partition(".")[0] if error.name else str(error)
    return MissingExtraError(
        f"{adapter} needs the {missing!r} package, which is not installed: {install}"
    )
