"""Record/replay of model calls with ``turnout_cassette``: record against a FakeOpenAIServer
standing in for the provider, replay with it stopped, fail loudly on a request the cassette
lacks, and never write a credential."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integrations.pytest_plugin_support import run_inner
from turnout.testing import FakeOpenAIServer

pytest_plugins = ["pytester"]
pytest.importorskip("vcr", reason='the cassettes need vcrpy: pip install "turnout[pytest]"')
# Imported here so that each inner run (which restores sys.modules after it) does not import
# the client anew.
pytest.importorskip(
    "openai", reason='the inner tests use the openai client: pip install "turnout[openai]"'
)

API_KEY = "sk-test-very-secret-4242"

CHAT_TEST = """
import os
import openai
import pytest

def client():
    return openai.OpenAI(
        base_url=os.environ["PROVIDER_URL"], api_key=os.environ["PROVIDER_KEY"], max_retries=0
    )

@pytest.mark.turnout_cassette
def test_chat():
    with client() as c:
        reply = c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": os.environ["PROMPT"]}]
        )
        streamed = c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "stream it"}], stream=True
        )
        tokens = [ch.choices[0].delta.content or "" for ch in streamed if ch.choices]
    assert reply.choices[0].message.content == "Hello from the provider"
    assert "".join(tokens) == "streamed words here"
"""


@pytest.fixture
def provider(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeOpenAIServer]:
    """The stand-in for the real provider, its URL and key in the inner test's environment."""
    server = FakeOpenAIServer(replies=["Hello from the provider", "streamed words here"])
    server.start()
    monkeypatch.setenv("PROVIDER_URL", server.base_url)
    monkeypatch.setenv("PROVIDER_KEY", API_KEY)
    monkeypatch.setenv("PROMPT", "say hello")
    pytester.makepyfile(test_chat=CHAT_TEST)
    yield server
    server.stop()


def _cassette(pytester: pytest.Pytester) -> Path:
    return pytester.path / "cassettes" / "test_chat" / "test_chat.json"


def test_record_then_replay_offline_with_the_provider_stopped(
    pytester: pytest.Pytester, provider: FakeOpenAIServer
) -> None:
    run_inner(pytester, "--turnout-record").assert_outcomes(passed=1)
    assert len(provider.requests) == 2
    assert provider.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    cassette = json.loads(_cassette(pytester).read_text(encoding="utf-8"))
    assert len(cassette["interactions"]) == 2
    provider.stop()

    run_inner(pytester).assert_outcomes(passed=1)
    run_inner(pytester).assert_outcomes(passed=1)  # deterministic: every replay the same
    assert len(provider.requests) == 2


def test_no_credential_lands_in_the_cassette(
    pytester: pytest.Pytester, provider: FakeOpenAIServer
) -> None:
    run_inner(pytester, "--turnout-record").assert_outcomes(passed=1)
    text = _cassette(pytester).read_text(encoding="utf-8")
    assert API_KEY not in text
    headers = json.loads(text)["interactions"][0]["request"]["headers"]
    assert headers["authorization"] == ["<redacted>"]


def test_a_request_the_cassette_lacks_fails_naming_it_and_the_cassette(
    pytester: pytest.Pytester, provider: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_inner(pytester, "--turnout-record").assert_outcomes(passed=1)
    provider.stop()
    monkeypatch.setenv("PROMPT", "a prompt never recorded")
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*CassetteMissError: turnout_cassette: 1 request(s) not in the cassette "
            f"{_cassette(pytester)}:",
            f"*POST {provider.base_url}/chat/completions body: *a prompt never recorded*",
            "*--turnout-record*",
        ]
    )


def test_a_miss_fails_the_test_even_when_the_code_swallows_the_error(
    pytester: pytest.Pytester, provider: FakeOpenAIServer
) -> None:
    run_inner(pytester, "--turnout-record").assert_outcomes(passed=1)
    provider.stop()
    pytester.makepyfile(
        test_chat="""
        import os, openai, pytest

        @pytest.mark.turnout_cassette
        def test_chat():
            c = openai.OpenAI(base_url=os.environ["PROVIDER_URL"], api_key="x", max_retries=0)
            try:
                c.chat.completions.create(model="other", messages=[])
            except Exception:
                pass  # an action with a fallback would do this
        """
    )
    result = run_inner(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*not in the cassette*", '*"model":"other"*'])


def test_a_test_without_its_cassette_errors_with_the_command_that_records_it(
    pytester: pytest.Pytester, provider: FakeOpenAIServer
) -> None:
    result = run_inner(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*no cassette at {_cassette(pytester)}; record it once*--turnout-record*"]
    )
    assert provider.requests == []


def test_the_fixture_works_without_the_marker_and_names_the_cassette(
    pytester: pytest.Pytester, provider: FakeOpenAIServer
) -> None:
    pytester.makepyfile(
        test_fixture="""
        import os, openai

        def test_named(turnout_cassette):
            assert turnout_cassette.path.name == "test_named.json"
            with openai.OpenAI(
                base_url=os.environ["PROVIDER_URL"], api_key=os.environ["PROVIDER_KEY"]
            ) as c:
                c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        """
    )
    run_inner(pytester, "--turnout-record").assert_outcomes(passed=2)
    assert (pytester.path / "cassettes" / "test_fixture" / "test_named.json").is_file()


def test_a_secret_the_provider_echoes_back_is_redacted_everywhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_echo="""
        import os, openai, pytest

        @pytest.mark.turnout_cassette
        def test_echo():
            key = os.environ["PROVIDER_KEY"]
            with openai.OpenAI(
                base_url=os.environ["PROVIDER_URL"], api_key=key, max_retries=0,
                default_query={"api_key": key}, default_headers={"x-api-key": key},
            ) as c:
                reply = c.chat.completions.create(model="m", messages=[])
            assert reply.choices[0].message.content == "your key is " + key
        """
    )
    with FakeOpenAIServer(replies=[f"your key is {API_KEY}"]) as server:
        monkeypatch.setenv("PROVIDER_URL", server.base_url)
        monkeypatch.setenv("PROVIDER_KEY", API_KEY)
        run_inner(pytester, "--turnout-record").assert_outcomes(passed=1)
        assert server.requests[0].headers["x-api-key"] == API_KEY
    text = (pytester.path / "cassettes" / "test_echo" / "test_echo.json").read_text()
    assert API_KEY not in text
    assert "your key is <redacted>" in text
    assert "api_key=<redacted>" in text
    result = run_inner(pytester)  # the replayed reply holds the placeholder, not the key
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*your key is <redacted>*"])


@pytest.mark.parametrize(
    "content",
    [
        # YAML asking a full loader to run a command: JSON parsing reads it as nothing at all.
        'interactions:\n- request: !!python/object/apply:os.system ["touch {flag}"]\n',
        '{"interactions": [{"request": "!!python/object/apply:os.system"}], "version": 1}',
        '{"interactions": 7, "version": 1}',
    ],
)
def test_a_cassette_is_read_as_data_and_a_foreign_one_is_refused(
    pytester: pytest.Pytester, provider: FakeOpenAIServer, content: str
) -> None:
    flag = pytester.path / "ran"
    _cassette(pytester).parent.mkdir(parents=True)
    _cassette(pytester).write_text(content.replace("{flag}", str(flag)), encoding="utf-8")
    result = run_inner(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*CassetteFormatError: turnout_cassette: {_cassette(pytester)} is not a cassette*"]
    )
    assert not flag.exists()
    assert provider.requests == []


def test_the_docs_page_tests_pass_under_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """docs/integrations/pytest.md's Python blocks, as one test module: fixtures, cases written
    by `turnout test-case`, and the cassette test recorded against a stand-in provider, then
    replayed with it stopped and another key."""
    from tests.test_docs import ROOT, python_blocks
    from turnout import ApplicationBuilder
    from turnout.cli import test_case_command as write_test_case

    page = (ROOT / "docs" / "integrations" / "pytest.md").read_text(encoding="utf-8")
    code = "\n\n".join(block.code for block in python_blocks(page))
    pytester.makepyfile(test_bot=code)
    namespace: dict[str, object] = {}
    exec(compile(code, "pytest.md", "exec"), namespace)  # the page's own count_up
    app = (
        ApplicationBuilder()
        .with_actions(count_up=namespace["count_up"])
        .with_transitions(("count_up", "count_up"))
        .with_state(count=0)
        .with_entrypoint("count_up")
        .with_tracker("local", project="pytest", params={"storage_dir": tmp_path})
        .with_identifiers(app_id="counter")
        .build()
    )
    app.step(inputs={"step": 4})
    write_test_case(tmp_path, "pytest", "counter", 0, None, pytester.path / "cases.json", ())

    with FakeOpenAIServer(replies=["Hi! How can I help?"]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
        run_inner(pytester, "--turnout-record", "-k", "real_model").assert_outcomes(passed=1)
    monkeypatch.setenv("OPENAI_API_KEY", "replay")
    result = run_inner(pytester, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_count_up?counter-0-count_up? PASSED*"])
    assert len(server.requests) == 1


def test_async_clients_are_recorded_and_replayed_too(
    pytester: pytest.Pytester, provider: FakeOpenAIServer
) -> None:
    pytester.makepyfile(
        test_chat="""
        import asyncio, os, openai, pytest

        async def ask():
            async with openai.AsyncOpenAI(
                base_url=os.environ["PROVIDER_URL"], api_key=os.environ["PROVIDER_KEY"],
                max_retries=0,
            ) as c:
                reply = await c.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "async hello"}]
                )
            return reply.choices[0].message.content

        @pytest.mark.turnout_cassette
        def test_async():
            assert asyncio.run(ask()) == "Hello from the provider"
        """
    )
    run_inner(pytester, "--turnout-record").assert_outcomes(passed=1)
    provider.stop()
    run_inner(pytester).assert_outcomes(passed=1)
    assert len(provider.requests) == 1


def test_cassettes_without_vcrpy_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.core.errors import MissingExtraError
    from turnout.integrations.pytest._cassettes import CassetteSession

    monkeypatch.setitem(sys.modules, "vcr", None)  # what an environment without vcrpy imports
    session = CassetteSession(tmp_path / "c.json", record=True)
    with pytest.raises(MissingExtraError, match=r'pip install "turnout\[pytest\]"'):
        session.__enter__()
