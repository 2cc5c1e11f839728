"""Names on disk for tracking logs: which project names and app ids can be a directory name as
they are, and the safe directory of any other app id."""

from __future__ import annotations

import hashlib
import re

__all__ = ["app_dir_name", "is_safe_name"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,199}")


def is_safe_name(name: object) -> bool:
    """Whether ``name`` can be one directory name as it is: letters, digits and ``_.:@+=-``,
    starting with a letter or digit, no ``..``, at most 200 characters (the rule for project
    names, and for app ids that name their directory)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and ".." not in name


def app_dir_name(app_id: str) -> str:
    """The directory an app's log lives in: the app id itself when it is a safe directory name
    (letters, digits, ``_.:@+=-``, starting with a letter or digit, no ``..``, at most 200
    characters), else ``~<its safe characters>~<hash>``, which no safe id can equal. The app
    line inside keeps the real id; nothing of it is lost."""
    if is_safe_name(app_id):
        return app_id
    digest = hashlib.sha256(app_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    readable = re.sub(r"[^A-Za-z0-9_.:@+=-]+", "_", app_id)[:60].replace("..", "_")
    return f"~{readable}~{digest}"
