"""Cost and token insights in the web UI (``turnout.integrations.fastapi.ui.insights``): the
JSON routes sum the recorded ``gen_ai.usage.*`` tokens per model, action, step, application and
project and price them from the table (the dated defaults, or a user's file that is checked);
the pages chart them as SVG with every traced name escaped (PostgreSQL:
``test_fastapi_ui_features_postgres``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")
from fastapi.testclient import TestClient

from tests.integrations.fastapi_ui_tokens import (
    ASK_IN,
    ASK_OUT,
    ASKS,
    HOSTILE,
    PROJECT,
    SNAPSHOT,
    SUM_IN,
    SUM_OUT,
    write_token_runs,
)
from turnout.core.tracking import LocalTracker
from turnout.integrations.fastapi.ui import create_ui_app
from turnout.integrations.fastapi.ui._charts import bars, columns, nice_top
from turnout.integrations.fastapi.ui.insights_routes import fmt_cost
from turnout.integrations.fastapi.ui.prices import (
    DEFAULT_PRICES,
    PriceTableError,
    load_prices,
    parse_prices,
)

API = f"/api/v1/projects/{PROJECT}"
GPT4O_COST = ASKS * (ASK_IN * 2.5 + ASK_OUT * 10.0) / 1_000_000


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("costs") / "tracking"
    write_token_runs(LocalTracker(PROJECT, storage_dir=root))
    return root


@pytest.fixture(scope="module")
def client(storage: Path) -> Iterator[TestClient]:
    with TestClient(create_ui_app(storage)) as client:
        yield client


def test_an_apps_tokens_are_summed_per_model_and_priced_by_the_snapshots_base_name(
    client: TestClient,
) -> None:
    view = client.get(f"{API}/apps/chat/insights").json()
    assert view["totals"] == {
        "steps": ASKS + 1,
        "input_tokens": ASKS * ASK_IN + SUM_IN,
        "output_tokens": ASKS * ASK_OUT + SUM_OUT,
        "cost": pytest.approx(GPT4O_COST),
        "unpriced_tokens": SUM_IN + SUM_OUT,
    }
    models = {m["model"]: m for m in view["models"]}
    # The response model names the snapshot; the table's gpt-4o prices it.
    assert models[SNAPSHOT]["priced"] is True
    assert (models[SNAPSHOT]["input_price"], models[SNAPSHOT]["output_price"]) == (2.5, 10.0)
    assert models[SNAPSHOT]["steps"] == ASKS
    assert models[HOSTILE] == {
        "model": HOSTILE, "steps": 1, "input_tokens": SUM_IN, "output_tokens": SUM_OUT,
        "priced": False, "input_price": None, "output_price": None, "cost": None,
    }  # fmt: skip
    actions = {a["action"]: a for a in view["actions"]}
    assert actions["ask"]["steps"] == ASKS
    assert actions["ask"]["cost"] == pytest.approx(GPT4O_COST)
    assert actions["summarise"]["input_tokens"] == SUM_IN
    assert actions["summarise"]["unpriced_tokens"] == SUM_IN + SUM_OUT
    assert actions["ask"]["unpriced_tokens"] == 0
    assert actions["ask"]["mean_duration"] > 0
    assert actions["ask"]["p50_duration"] <= actions["ask"]["p95_duration"]
    assert [(s["seq"], s["action"], s["input_tokens"]) for s in view["steps"]] == [
        *((i, "ask", ASK_IN) for i in range(ASKS)),
        (ASKS, "summarise", SUM_IN),
    ]
    assert view["steps"][0]["models"] == [SNAPSHOT]


def test_the_steps_listed_are_the_last_ones_and_the_rest_is_counted(client: TestClient) -> None:
    view = client.get(f"{API}/apps/chat/insights?limit=2").json()
    assert [s["seq"] for s in view["steps"]] == [ASKS - 1, ASKS]
    assert view["steps_left_out"] == ASKS - 1
    assert view["totals"]["steps"] == ASKS + 1  # the totals still cover every step


def test_a_projects_insights_cover_its_apps_over_time(client: TestClient) -> None:
    view = client.get(f"{API}/insights").json()
    assert (view["apps_read"], view["apps_total"]) == (2, 2)
    assert [(a["app_id"], a["steps"]) for a in view["apps"]] == [("chat", ASKS + 1), ("quiet", 1)]
    assert view["apps"][1]["input_tokens"] == 0
    assert view["totals"]["cost"] == pytest.approx(GPT4O_COST)
    assert sum(b["steps"] for b in view["over_time"]) == ASKS + 2
    assert sum(b["input_tokens"] for b in view["over_time"]) == ASKS * ASK_IN + SUM_IN
    starts = [b["start"] for b in view["over_time"]]
    assert all(s % view["bucket_seconds"] == 0 for s in starts)
    only_one = client.get(f"{API}/insights?limit=1").json()
    assert (only_one["apps_read"], only_one["apps_total"]) == (1, 2)


def test_insights_of_what_is_not_there_are_404s_that_say_so(client: TestClient) -> None:
    answer = client.get(f"{API}/apps/ghost/insights")
    assert answer.status_code == 404
    assert "'ghost' is not tracked" in answer.json()["detail"]
    assert client.get("/api/v1/projects/none-such/insights").status_code == 404
    assert client.get(f"{API}/apps/chat/insights?limit=0").status_code == 422


def test_the_price_table_is_dated_and_says_where_it_comes_from(client: TestClient) -> None:
    table = client.get("/api/v1/prices").json()
    assert table["as_of"] == DEFAULT_PRICES.as_of
    assert "list prices" in table["source"]
    assert table["path"] is None
    assert {"model": "gpt-4o", "input": 2.5, "output": 10.0, "origin": "default"} in table["models"]
    page = client.get("/prices").text
    assert f"as of <b>{DEFAULT_PRICES.as_of}</b>" in page
    assert "<code>gpt-4o-mini</code>" in page


def test_a_users_price_file_adds_models_and_overrides_defaults(
    storage: Path, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "as_of": "2026-01-15",
                "source": "our <contract>",
                "models": {
                    "gpt-4o": {"input": 5, "output": 20},
                    HOSTILE: {"input": 1, "output": 2},
                },
            }
        )
    )
    with TestClient(create_ui_app(storage, prices=prices)) as client:
        view = client.get(f"{API}/apps/chat/insights").json()
        expected = ASKS * (ASK_IN * 5 + ASK_OUT * 20) / 1e6 + (SUM_IN * 1 + SUM_OUT * 2) / 1e6
        assert view["totals"]["cost"] == pytest.approx(expected)
        assert view["totals"]["unpriced_tokens"] == 0
        assert view["prices_as_of"] == "2026-01-15"
        table = client.get("/api/v1/prices").json()
        assert table["path"] == str(prices)
        mine = {m["model"]: m for m in table["models"]}
        assert mine["gpt-4o"]["origin"] == "file"
        assert mine["gpt-4o-mini"]["origin"] == "default"  # the other defaults stay
        page = client.get("/prices").text
        assert "our &lt;contract&gt;" in page
        assert HOSTILE not in page
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;model" in page


def test_replace_defaults_keeps_only_the_files_models() -> None:
    table = parse_prices({"replace_defaults": True, "models": {"mine": {"input": 1, "output": 1}}})
    assert [p.model for p in table.models] == ["mine"]
    assert table.find("gpt-4o") is None


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("[1, 2]", "the document is a list, not an object"),
        ("{not json", "not JSON"),
        ('{"models": {}}', "'models' must be an object with at least one model"),
        ('{"modles": {"a": {"input": 1, "output": 1}}}', "unknown keys ['modles']"),
        ('{"models": {"a": {"input": -1, "output": 1}}}', "models['a'].input is -1"),
        ('{"models": {"a": {"input": 1, "output": "9"}}}', "models['a'].output is '9'"),
        ('{"models": {"a": {"input": 1, "output": true}}}', "models['a'].output is True"),
        ('{"models": {"a": {"input": 1}}}', "models['a'] must be an object with exactly"),
        ('{"models": {"a": {"input": 1, "output": 1, "x": 2}}}', "exactly 'input' and"),
        ('{"models": {" ": {"input": 1, "output": 1}}}', "model name ' ' must be"),
        ('{"models": {"a\\nb": {"input": 1, "output": 1}}}', "printable characters"),
        ('{"currency": "EUR", "models": {"a": {"input": 1, "output": 1}}}', "'EUR'"),
        ('{"models": {"a": {"input": 1e999, "output": 1}}}', "models['a'].input is inf"),
    ],
    ids=[
        "not-object", "not-json", "no-models", "unknown-key", "negative", "text", "bool",
        "missing-output", "extra-key", "blank-name", "control-char", "currency", "infinite",
    ],
)  # fmt: skip
def test_a_price_file_that_does_not_fit_is_refused_naming_the_entry(
    tmp_path: Path, storage: Path, content: str, named: str
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(content)
    with pytest.raises(PriceTableError) as caught:
        load_prices(prices)
    assert named in str(caught.value)
    assert str(prices) in str(caught.value)
    assert '"models"' in str(caught.value)  # the format is shown
    with pytest.raises(PriceTableError):
        create_ui_app(storage, prices=prices)


def test_a_missing_price_file_says_how_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match=r"cannot be read .*--prices PATH"):
        load_prices(tmp_path / "nope.json")


def test_a_dated_snapshot_takes_the_longest_matching_name() -> None:
    table = DEFAULT_PRICES
    found = table.find("gpt-4o-mini-2024-07-18")
    assert found is not None
    assert found.model == "gpt-4o-mini"
    assert table.find("gpt-4o2") is None  # a prefix must end at a dash
    assert table.find(None) is None
    assert table.cost("o1", 1_000_000, 0) == 15.0


def test_the_pages_chart_the_insights_and_escape_model_names(client: TestClient) -> None:
    page = client.get(f"/projects/{PROJECT}/apps/chat/insights").text
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;model" in page
    assert 'id="tokens-per-step"' in page
    assert page.count('<g class="col">') == 2 * (ASKS + 1)  # tokens and duration per step
    assert 'id="unpriced"' in page
    assert f"4,500 · {fmt_cost(GPT4O_COST)}</text>" in page  # ask's tokens, with their cost
    assert "· p95 " in page
    assert f'id="total-cost">{fmt_cost(GPT4O_COST)}<' in page
    assert '<a class="on" href="/projects/costs/apps/chat/insights" aria-current="page">' in page
    project = client.get(f"/projects/{PROJECT}/insights").text
    assert HOSTILE not in project
    assert 'id="tokens-over-time"' in project
    assert "time in buckets of 1 minute (UTC)" in project  # the run took seconds
    assert f'$0 <span class="muted">+ {SUM_IN + SUM_OUT} unpriced tokens</span>' in project
    assert 'href="/projects/costs/apps/chat/insights">chat</a>' in project
    assert 'id="insights-link"' in client.get(f"/projects/{PROJECT}").text
    assert 'id="insights-tab"' in client.get(f"/projects/{PROJECT}/apps/chat").text


def test_a_hostile_project_and_app_name_are_escaped_in_the_insights(tmp_path: Path) -> None:
    hostile_app = "<svg onload=alert(2)>"
    from tests.integrations.fastapi_ui_tokens import summarise
    from turnout import ApplicationBuilder

    tracker = LocalTracker(PROJECT, storage_dir=tmp_path)
    (
        ApplicationBuilder()
        .with_actions(**{"<b>act</b>": summarise})
        .with_transitions()
        .with_state(asked=1)
        .with_entrypoint("<b>act</b>")
        .with_tracker(tracker)
        .with_identifiers(app_id=hostile_app)
        .build()
        .run(halt_after=["<b>act</b>"])
    )
    tracker.close()
    with TestClient(create_ui_app(tmp_path)) as client:
        for url in (
            f"/projects/{PROJECT}/insights",
            f"/projects/{PROJECT}/apps/%3Csvg%20onload%3Dalert(2)%3E/insights",
        ):
            page = client.get(url)
            assert page.status_code == 200, url
            assert hostile_app not in page.text
            assert "<b>act</b>" not in page.text
            assert "&lt;b&gt;act&lt;/b&gt;" in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]


def test_chart_geometry_scales_to_a_round_top() -> None:
    assert [nice_top(v) for v in (0, 0.7, 1, 1.2, 3, 7, 4500)] == [1, 1, 1, 2, 5, 10, 5000]
    chart = columns([("a", 10, "a"), ("b", 40, "b")], str)
    assert chart is not None
    assert chart.top == 50
    first, second = chart.columns
    assert second.height == pytest.approx(chart.height * 40 / 50)
    assert first.y == pytest.approx(chart.height - chart.height * 10 / 50)
    assert first.x < second.x
    assert columns([], str) is None
    rows = bars([("x", 2.0), ("y", 4.0), ("z", 0.0)], lambda v: f"{v:g}")
    assert [(b.share, b.text) for b in rows] == [(50.0, "2"), (100.0, "4"), (0.0, "0")]


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "not priced"), (0, "$0"), (12.345, "$12.35"), (0.0225, "$0.0225"),
     (0.00042, "$0.000420")],
    ids=["none", "zero", "dollars", "cents", "fraction"],
)  # fmt: skip
def test_costs_show_the_digits_a_small_cost_needs(value: float | None, text: str) -> None:
    assert fmt_cost(value) == text


def test_turnout_ui_refuses_a_bad_price_file_before_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from turnout.cli import main

    bad = tmp_path / "prices.json"
    bad.write_text('{"models": {"m": {"input": 1, "output": -2}}}')
    home = ["--dir", str(tmp_path / "runs"), "--no-demo", "--port", "1"]
    assert main(["ui", "--prices", str(bad), *home]) == 2
    assert "models['m'].output is -2" in capsys.readouterr().err
    monkeypatch.setenv("TURNOUT_UI_PRICES", str(tmp_path / "missing.json"))
    assert main(["ui", *home]) == 2
    assert "missing.json: cannot be read" in capsys.readouterr().err


def test_the_price_file_is_edited_through_the_api_with_the_write_protections(
    storage: Path, tmp_path: Path
) -> None:
    from turnout.integrations.fastapi.ui.annotations import WRITE_HEADER

    prices = tmp_path / "prices.json"
    prices.write_text('{"models": {"gpt-4o": {"input": 5, "output": 20}}}')
    table = {"as_of": "2026-02-01", "models": {"gpt-4o": {"input": 1, "output": 2}}}
    with TestClient(create_ui_app(storage, prices=prices)) as client:
        refused = client.put("/api/v1/prices", json=table)  # no header a form cannot send
        assert refused.status_code == 403
        foreign = client.put(
            "/api/v1/prices", json=table, headers={WRITE_HEADER: "1", "Origin": "http://evil.test"}
        )
        assert foreign.status_code == 403
        bad = {"models": {"gpt-4o": {"input": -1, "output": 2}}}
        wrong = client.put("/api/v1/prices", json=bad, headers={WRITE_HEADER: "1"})
        assert wrong.status_code == 422
        assert "models['gpt-4o'].input is -1" in wrong.json()["detail"]
        assert json.loads(prices.read_text())["models"]["gpt-4o"]["input"] == 5  # untouched
        saved = client.put("/api/v1/prices", json=table, headers={WRITE_HEADER: "1"})
        assert saved.status_code == 200, saved.text
        assert json.loads(prices.read_text()) == table
        view = client.get(f"{API}/apps/chat/insights").json()
        assert view["prices_as_of"] == "2026-02-01"
        assert view["totals"]["cost"] == pytest.approx(ASKS * (ASK_IN * 1 + ASK_OUT * 2) / 1e6)
        form = client.post(
            "/prices", data={"table": '{"models": {"x": 1}}'}, headers={"HX-Request": "true"}
        )
        assert form.status_code == 200
        assert 'id="price-problem"' in form.text
        assert "models[&#39;x&#39;] must be an object" in form.text
        assert json.loads(prices.read_text()) == table
    assert [p.name for p in tmp_path.iterdir()] == ["prices.json"]  # no temporary file left
    with TestClient(create_ui_app(storage)) as client:
        without = client.put("/api/v1/prices", json=table, headers={WRITE_HEADER: "1"})
        assert without.status_code == 409
        assert "--prices FILE" in without.json()["detail"]
        assert 'id="price-readonly"' in client.get("/prices").text
