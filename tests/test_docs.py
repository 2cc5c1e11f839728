"""The Python code in README.md and the docs pages runs, page by page.

Every ```python block of a page runs in order in one namespace of its own, so a later block can
use what an earlier one defined. A block preceded by a line holding only ``<!-- skip-test -->``
is left out; keep those rare and say on the page why the block cannot run.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The library each adapter's page and example need, and the extra that installs it.
ADAPTER_LIBRARIES = {
    "langchain": ("langchain_core", "langchain"),
    "hamilton": ("hamilton", "hamilton"),
    "llamaindex": ("llama_index.core", "llamaindex"),
    "haystack": ("haystack", "haystack"),
    "pydantic": ("pydantic", "pydantic"),
    "pandas": ("pandas", "pandas"),
    "serve": ("fastapi", "serve"),
    "plots": ("matplotlib", "plots"),
    "sklearn": ("sklearn", "sklearn"),
    "streamlit": ("streamlit", "streamlit"),
    "ui": ("jinja2", "ui"),
}
NEEDS_ADAPTER = {
    "docs/integrations/langchain.md": "langchain",
    "docs/integrations/hamilton.md": "hamilton",
    "docs/integrations/llamaindex.md": "llamaindex",
    "docs/integrations/haystack.md": "haystack",
    "docs/concepts/typed-state.md": "pydantic",
    "examples/langchain_agent": "langchain",
    "examples/hamilton_features": "hamilton",
    "examples/hamilton_dataframe": "hamilton",
    "docs/concepts/serde.md": "pandas",
    "examples/llamaindex_rag": "llamaindex",
    "examples/haystack_rag": "haystack",
    "examples/typed_chat": "pydantic",
    "docs/serving.md": "serve",
    "docs/integrations/streamlit.md": "streamlit",
    "docs/ui.md": "ui",
    "examples/email_assistant_served": "serve",
    "examples/chatbot_served": "serve",
    "examples/forecast_simulation": "plots",
    "examples/hyperparameter_tuning": "sklearn",
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package of a dotted name is missing
        return False


def skip_without_adapter_library(relative: str) -> None:
    """Skip a page or example whose adapter's library is not installed, naming the extra.

    With ``CI=true`` nothing is skipped: CI installs every extra, so a missing one must fail.
    """
    adapter = NEEDS_ADAPTER.get(relative)
    if adapter is None or os.environ.get("CI") == "true":
        return
    module, extra = ADAPTER_LIBRARIES[adapter]
    if not _installed(module):
        pytest.skip(f'{relative} needs {module!r}: pip install "turnout[{extra}]"')


SKIP_MARKER = "<!-- skip-test -->"
_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced Python block: the line its code starts on (1-based) and its code."""

    line: int
    code: str


def python_blocks(text: str) -> list[CodeBlock]:
    """The ```python blocks of a Markdown text, in order, without those marked to skip."""
    lines = text.splitlines()
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        is_python = opening["info"].lower() in {"python", "py", "python3"}
        skipped = i > 0 and lines[i - 1].strip() == SKIP_MARKER
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            # Fenced blocks nested in admonitions or tabs carry the fence's indentation.
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if is_python and not skipped:
            blocks.append(CodeBlock(line=i + 2, code="\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _pages() -> list[Path]:
    pages = sorted((ROOT / "docs").rglob("*.md"))
    readme = ROOT / "README.md"
    if readme.is_file():
        pages.insert(0, readme)
    return [p for p in pages if python_blocks(p.read_text(encoding="utf-8"))]


PAGES = _pages()


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_page_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Python block of the page runs, in order, sharing one fresh namespace."""
    monkeypatch.chdir(tmp_path)  # anything a page writes lands in a throw-away directory
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    relative = page.relative_to(ROOT).as_posix()
    skip_without_adapter_library(relative)
    for block in python_blocks(page.read_text(encoding="utf-8")):
        # Padding with blank lines makes tracebacks point at the page's own line numbers.
        source = "\n" * (block.line - 1) + block.code
        exec(compile(source, relative, "exec", dont_inherit=True), namespace)


def test_python_blocks_finds_python_fences_only() -> None:
    """Only python fences count; other languages, skip-marked and closed fences do not leak."""
    text = "\n".join(
        [
            "```bash",
            "pip install turnout",
            "```",
            "```python",
            "x = 1",
            "```",
            SKIP_MARKER,
            "```python",
            "raise SystemExit",
            "```",
            "!!! note",
            "    ```python",
            "    y = x + 1",
            "    ```",
            "````markdown",
            "```python",
            "z = 3",
            "```",
            "````",
        ]
    )
    assert python_blocks(text) == [CodeBlock(5, "x = 1\n"), CodeBlock(13, "y = x + 1\n")]


def test_docs_have_python_examples() -> None:
    """The page discovery found the docs; an empty list would make the main test vacuous."""
    assert any(p.parent.name == "concepts" for p in PAGES)
