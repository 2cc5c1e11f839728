"""Examples that need an extra say so in their README, and without the extra's library fail
with ``MissingExtraError`` naming the install command (not a bare ``ModuleNotFoundError``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integrations.missing_extra import import_without

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# example -> (a library it needs, the extras that library comes with)
NEEDS = {
    "adventure_game": ("openai", {"openai"}),
    "langchain_agent": ("langchain_core", {"langchain"}),
    "llamaindex_rag": ("llama_index", {"llamaindex"}),
    "haystack_rag": ("haystack", {"haystack"}),
    "hamilton_dataframe": ("pandas", {"hamilton", "pandas"}),
    "hamilton_features": ("hamilton", {"hamilton"}),
    "hyperparameter_tuning": ("sklearn", {"sklearn"}),
    "typed_chat": ("pydantic", {"pydantic"}),
    "email_assistant_served": ("fastapi", {"serve"}),
    "forecast_simulation": ("matplotlib", {"plots"}),
    "multi_agent": ("openai", {"openai"}),
    "openai_agent": ("openai", {"openai"}),
    "openai_chatbot": ("openai", {"openai"}),
}


def _readme_extras(example: str) -> set[str]:
    text = (EXAMPLES / example / "README.md").read_text()
    found: set[str] = set()
    for group in re.findall(r'pip install [^\n`]*?"turnout\[([a-z,]+)\]"', text):
        found |= set(group.split(","))
    return found


@pytest.mark.parametrize("example", sorted(NEEDS))
def test_the_readme_names_the_extra_to_install(example: str) -> None:
    _library, extras = NEEDS[example]
    assert extras <= _readme_extras(example), f"examples/{example}/README.md"


@pytest.mark.parametrize("example", sorted(NEEDS))
def test_without_its_library_the_example_names_the_extra(example: str) -> None:
    library, extras = NEEDS[example]
    printed = import_without(library, f"examples.{example}.application")
    assert printed.startswith("MissingExtraError"), printed
    named = set(re.findall(r'"turnout\[([a-z]+)\]"', printed))
    assert named & extras, printed
