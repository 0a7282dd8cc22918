"""The dashboard's JSON API and pages through Starlette's TestClient, over real runs in a real store."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from markupsafe import escape
from starlette.testclient import TestClient
from tests.dashboard.conftest import (
    DEV_SCORES,
    INJECTED,
    SEED_INSTRUCTION,
    DashStore,
    example_counts,
    prompt,
    spend_at,
)

from prompthone.dashboard import create_app
from prompthone.store import RunStore

SPEND_KEYS = ("calls", "new_calls", "cache_hits", "prompt_tokens", "completion_tokens", "tokens", "new_tokens")


@pytest.fixture(scope="module")
def client(dash_store: DashStore) -> Iterator[TestClient]:
    with TestClient(create_app(dash_store.url)) as opened:
        yield opened


@pytest.fixture(scope="module")
def store(dash_store: DashStore) -> Iterator[RunStore]:
    with RunStore(dash_store.url) as opened:
        yield opened


def get_json(client: TestClient, path: str, status: int = 200) -> Any:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_runs_api_lists_every_run_newest_first_and_filters(client: TestClient, store: RunStore,
                                                           dash_store: DashStore) -> None:
    records = {r.id: r for r in store.list_runs()}
    listed = get_json(client, "/api/runs")
    assert [r["id"] for r in listed["runs"]] == [dash_store.running, dash_store.gepa, dash_store.opro]
    running = records[dash_store.running]
    assert listed["runs"][0] == {
        "id": "running-opro", "method": "opro", "task": "fake-sentiment", "status": "running", "seed": 1,
        "best_dev": None, "test": None, "created_at": running.created_at.isoformat(),
        "updated_at": running.updated_at.isoformat(), "finished_at": None}
    for row in listed["runs"][1:]:
        record = records[row["id"]]
        assert record.result is not None and record.finished_at is not None
        assert row == {"id": record.id, "method": record.method, "task": "fake-sentiment", "status": "finished",
                       "seed": {"opro": 3, "gepa": 5}[record.method], "best_dev": record.result["best_dev_score"],
                       "test": record.result["test_score"], "created_at": record.created_at.isoformat(),
                       "updated_at": record.updated_at.isoformat(), "finished_at": record.finished_at.isoformat()}
    assert {k: v for k, v in listed.items() if k != "runs"} == {
        "store": dash_store.url, "filters": {"status": None, "method": None, "task": None},
        "choices": {"status": ["finished", "running"], "method": ["gepa", "opro"], "task": ["fake-sentiment"]},
        "total": 3}
    opro = get_json(client, "/api/runs?method=opro")
    assert [r["id"] for r in opro["runs"]] == [dash_store.running, dash_store.opro]
    assert opro["filters"] == {"status": None, "method": "opro", "task": None} and opro["total"] == 3
    assert [r["id"] for r in get_json(client, "/api/runs?method=opro&status=finished")["runs"]] == [dash_store.opro]
    assert get_json(client, "/api/runs?task=other")["runs"] == []


def test_run_api_of_a_running_run_holds_exactly_what_the_store_holds(client: TestClient, store: RunStore) -> None:
    view = get_json(client, "/api/runs/running-opro")
    record = store.get_run("running-opro")
    search = {k: spend_at(2)[k] for k in SPEND_KEYS}
    assert view["run"] == {
        "id": "running-opro", "method": "opro", "task": "fake-sentiment", "status": "running", "seed": 1,
        "best_dev": 0.75, "test": None, "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(), "finished_at": None,
        "models": ["fake:instructions", "fake:meta"], "stopped_reason": None, "seed_dev": 0.5, "seed_test": None,
        "best_test": None, "steps": 2, "wall_time_s": None, "seed_id": 0, "rank_key": "train", "n_candidates": 3,
        "best": {"id": 1, "final": False, "how": "the method's current best by 'train'"},
        "calls": 20, "tokens": 200, "usd": None, "spend": [{"label": "search", "values": search, "cost": None}]}
    assert view["score_keys"] == ["train", "dev"]
    assert view["candidates"] == [
        {"id": 0, "origin": "seed", "parent": None, "parents": [], "step": 0, "scores": {"dev": 0.5, "train": 0.5},
         "preview": SEED_INSTRUCTION, "system": "", "demos": 0, "is_seed": True, "is_best": False},
        {"id": 1, "origin": "opro", "parent": 0, "parents": [0], "step": 0, "scores": {"dev": 0.75, "train": 0.75},
         "preview": INJECTED, "system": "You are <careful>.", "demos": 0, "is_seed": False, "is_best": True},
        {"id": 2, "origin": "opro", "parent": 1, "parents": [1], "step": 1, "scores": {"train": 0.25, "dev": None},
         "preview": "Decide the label.", "system": "", "demos": 0, "is_seed": False, "is_best": False}]
    assert view["steps"] == [
        {"step": 1, "best_id": 0, "best_score": 0.5, "calls": 10, "elapsed_s": 0.5},
        {"step": 2, "best_id": 1, "best_score": 0.75, "calls": 20, "elapsed_s": 1.0}]
    traces = {t["name"]: t for t in view["figure"]["data"]}
    assert traces["train"]["y"] == [0.5, 0.75, 0.25] and traces["dev"]["y"] == [0.5, 0.75]
    assert traces["method's best (train)"]["x"] == [0, 1] and traces["method's best (train)"]["y"] == [0.5, 0.75]
    assert set(view) == {"run", "score_keys", "candidates", "steps", "figure"}


@pytest.mark.parametrize("method", ["opro", "gepa"])
def test_run_api_of_a_finished_run_matches_its_store_records(client: TestClient, store: RunStore,
                                                             dash_store: DashStore, method: str) -> None:
    run_id = getattr(dash_store, method)
    record, cands, steps = store.get_run(run_id), store.candidates(run_id), store.steps(run_id)
    result = record.result or {}
    view = get_json(client, f"/api/runs/{run_id}")
    run = view["run"]
    assert (run["status"], run["method"], run["steps"], run["n_candidates"]) == ("finished", method, len(steps),
                                                                                 len(cands))
    assert run["best"] == {"id": result["best_candidate_id"], "final": True,
                           "how": "the best on the full dev split at finalization"}
    assert (run["seed_dev"], run["best_dev"], run["seed_test"], run["best_test"], run["test"]) == (
        result["seed_dev_score"], result["best_dev_score"], result["seed_test_score"], result["test_score"],
        result["test_score"])
    assert run["calls"] == result["spend"]["calls"] + result["final_spend"]["calls"]
    assert [s["label"] for s in run["spend"]] == ["search", "final scoring", "total"]
    assert [c["id"] for c in view["candidates"]] == sorted(cands)
    for row in view["candidates"]:
        cand = cands[row["id"]]
        assert row["scores"] == cand["scores"] and row["origin"] == cand["origin"] and row["step"] == cand["step"]
        assert row["preview"] == " ".join(cand["prompt"]["instruction"].split())
        assert row["is_best"] == (row["id"] == result["best_candidate_id"]) and row["is_seed"] == (row["id"] == 0)
    assert [s["step"] for s in view["steps"]] == [s["step"] for s in steps]
    traces = {t["name"]: t for t in view["figure"]["data"]}
    for key in ("dev", "test"):  # every candidate's score under the key is a point of its trace
        assert sorted(traces[key]["y"]) == sorted(c["scores"][key] for c in cands.values() if key in c["scores"])


def test_candidate_api_holds_the_prompt_lineage_and_per_example_outcomes(client: TestClient, store: RunStore) -> None:
    view = get_json(client, "/api/runs/running-opro/candidates/1")
    assert view["run"]["id"] == "running-opro" and view["is_seed"] is False
    assert view["candidate"] == {"id": 1, "origin": "opro", "parent": 0, "parents": [0], "step": 0,
                                 "prompt": prompt(INJECTED, system="You are <careful>."),
                                 "scores": {"dev": 0.75, "train": 0.75}, "n_scored": {"dev": 4, "train": 4},
                                 "data": {}}
    assert view["seed"] == {"id": 0, "scores": {"dev": 0.5, "train": 0.5}, "n_scored": {"dev": 4, "train": 4}}
    assert view["lineage"] == [{"id": 0, "origin": "seed", "step": 0, "parents": [], "missing": False}]
    assert view["children"] == [2]
    [dev] = view["comparisons"]
    rows = dev.pop("rows")
    assert dev == {"key": "dev", "compared": True, "examples": 4, "wins": 2, "losses": 1, "ties": 1, "unpaired": 0,
                   "mean": 0.75, "seed_mean": 0.5}
    assert [(r["index"], r["outcome"], r["score"], r["seed_score"]) for r in rows] == [
        (0, "tie", 1.0, 1.0), (1, "win", 1.0, 0.0), (2, "loss", 0.0, 1.0), (3, "win", 1.0, 0.0)]
    assert rows[1] == {"hash": "h1", "split": "dev", "index": 1, "input": "review 1: <i>fine</i> film",
                       "target": "positive", "prediction": "<ok> by #1", "score": 1.0,
                       "seed_prediction": "<negative> by #0", "seed_score": 0.0, "outcome": "win"}
    assert (dev["wins"], dev["losses"], dev["ties"]) == tuple(
        example_counts(store, "running-opro", 1, "dev")[k] for k in ("wins", "losses", "ties"))
    two = get_json(client, "/api/runs/running-opro/candidates/2")
    assert [a["id"] for a in two["lineage"]] == [0, 1] and two["comparisons"] == [] and two["children"] == []
    assert two["candidate"]["scores"] == {"train": 0.25, "dev": None}  # NaN: never scored, strict JSON
    seed = get_json(client, "/api/runs/running-opro/candidates/0")
    assert seed["is_seed"] is True and seed["lineage"] == [] and seed["children"] == [1]
    assert [(c["key"], c["compared"], c["wins"], c["examples"]) for c in seed["comparisons"]] == [("dev", False, 0, 4)]
    assert [r["outcome"] for r in seed["comparisons"][0]["rows"]] == [None] * len(DEV_SCORES)


@pytest.mark.parametrize("method", ["opro", "gepa"])
def test_wins_and_losses_of_every_candidate_of_a_real_run_are_the_stores(client: TestClient, store: RunStore,
                                                                         dash_store: DashStore, method: str) -> None:
    run_id = getattr(dash_store, method)
    compared = 0
    for cand_id in store.candidates(run_id):
        view = get_json(client, f"/api/runs/{run_id}/candidates/{cand_id}")
        keys = sorted({e["key"] for e in store.evaluations(run_id, cand_id)})
        assert sorted(c["key"] for c in view["comparisons"]) == keys
        for cmp in view["comparisons"]:
            assert len(cmp["rows"]) == cmp["examples"]
            if cand_id == 0:
                assert cmp["compared"] is False
                continue
            counts = example_counts(store, run_id, cand_id, cmp["key"])
            assert {k: cmp[k] for k in counts} == counts
            compared += counts["wins"] + counts["losses"] + counts["ties"]
    assert compared > 0, "no candidate shares per-example scores with the seed: the test proves nothing"


def test_compare_api_puts_each_runs_best_so_far_per_step_next_to_its_final_scores(
        client: TestClient, store: RunStore, dash_store: DashStore) -> None:
    ids = [dash_store.opro, dash_store.gepa, dash_store.running]
    view = get_json(client, "/api/compare?" + "&".join(f"run={i}" for i in [*ids, dash_store.opro]))
    assert [r["id"] for r in view["runs"]] == ids and [r["label"] for r in view["runs"]] == ["R1", "R2", "R3"]
    for row in view["runs"]:
        steps = store.steps(row["id"])
        running_max = [max(s["best_score"] for s in steps[:n + 1]) for n in range(len(steps))]
        assert [p["best"] for p in row["curve"]] == running_max
        assert [p["step"] for p in row["curve"]] == [s["step"] for s in steps]
        assert [p["calls"] for p in row["curve"]] == [s["spend"]["calls"] for s in steps]
        result = store.get_run(row["id"]).result
        if result is None:
            assert (row["best_dev"], row["test"], row["final_calls"], row["search_calls"]) == (None, None, None, 20)
            continue
        assert (row["seed_dev"], row["best_dev"], row["seed_test"], row["test"]) == (
            result["seed_dev_score"], result["best_dev_score"], result["seed_test_score"], result["test_score"])
        assert (row["search_calls"], row["final_calls"], row["steps"]) == (
            result["spend"]["calls"], result["final_spend"]["calls"], result["steps"])
        assert row["tokens"] == result["spend"]["tokens"] + result["final_spend"]["tokens"]
    assert [r["rank_key"] for r in view["runs"]] == ["train", "pareto", "train"]
    traces = view["figure"]["data"]
    assert [t["y"] for t in traces] == [[p["best"] for p in r["curve"]] for r in view["runs"]]
    buttons = view["figure"]["layout"]["updatemenus"][0]["buttons"]
    assert buttons[1]["args"][0]["x"] == [[p["calls"] for p in r["curve"]] for r in view["runs"]]


def test_pages_show_the_runs_a_run_a_candidate_and_a_comparison(client: TestClient, store: RunStore,
                                                                 dash_store: DashStore) -> None:
    runs = client.get("/").text
    for run_id in (dash_store.opro, dash_store.gepa, dash_store.running):
        assert f'<a href="/runs/{run_id}">{run_id}</a>' in runs and f'value="{run_id}"' in runs
    assert runs.count('class="live-dot"') == 1 and 'action="/compare"' in runs
    filtered = client.get("/?status=finished&method=gepa").text
    assert dash_store.gepa in filtered and dash_store.opro not in filtered and "running-opro" not in filtered
    result = store.get_run(dash_store.gepa).result or {}
    page = client.get(f"/runs/{dash_store.gepa}").text
    assert "<title>gepa on fake-sentiment" in page and '<script src="/static/plotly-' in page
    assert page.count("<tr data-cand-id=") == len(store.candidates(dash_store.gepa))
    assert f'{result["seed_dev_score"]:.3f}</span> <span class="arrow">→</span>' in page
    assert 'id="live-banner"' not in page and 'id="run-data"' in page
    assert 'id="live-banner"' in client.get("/runs/running-opro").text
    best = result["best_candidate_id"]
    cand = client.get(f"/runs/{dash_store.gepa}/candidates/{best}").text
    assert f"<h1>Candidate #{best}" in cand and result["best_prompt"]["instruction"] in cand
    assert '<a class="pill" href="/runs/' in cand and 'data-count="wins"' in cand
    compare = client.get(f"/compare?run={dash_store.opro}&run={dash_store.gepa}").text
    assert "Comparing 2 runs" in compare and compare.count("<tr data-run-id=") == 2
    assert client.get("/static/dashboard.js").status_code == 200


def test_unknown_runs_and_candidates_are_404_with_a_clear_message(client: TestClient, dash_store: DashStore) -> None:
    recent = f"most recent: {dash_store.running}, {dash_store.gepa}, {dash_store.opro}"
    no_run = f"no run 'nope' in store {dash_store.url}; {recent}"
    assert get_json(client, "/api/runs/nope", 404) == {"error": no_run}
    assert get_json(client, "/api/runs/nope/candidates/0", 404) == {"error": no_run}
    assert get_json(client, "/api/runs/running-opro/candidates/99", 404) == {
        "error": "run 'running-opro' has no candidate #99: its candidates are #0–#2"}
    assert get_json(client, f"/api/compare?run={dash_store.opro}&run=nope", 404) == {"error": no_run}
    assert get_json(client, f"/api/compare?run={dash_store.opro}", 400) == {
        "error": "pick at least 2 runs to compare (got 1): tick them on the runs page, or pass ?run=ID&run=ID"}
    assert get_json(client, "/api/nothing", 404) == {"error": "no page at /api/nothing"}
    for path, message in (("/runs/nope", no_run), ("/runs/running-opro/candidates/99", "has no candidate #99"),
                          ("/runs/running-opro/candidates/x", "no page at /runs/running-opro/candidates/x")):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
        assert "<h1>Not found</h1>" in response.text and str(escape(message)) in response.text


def test_prompt_text_is_escaped_everywhere(client: TestClient) -> None:
    for path in ("/runs/running-opro", "/runs/running-opro/candidates/1", "/runs/running-opro/candidates/0"):
        page = client.get(path).text
        assert "<script>alert(1)" not in page and "<b>positive</b>" not in page and "<careful>" not in page
        assert "<i>fine</i>" not in page and "<ok>" not in page and "<negative>" not in page
        assert page.count("<script") == page.count("</script>")
        scripts = [s.split(">", 1)[0] for s in page.split("<script")[1:]]
        assert all(' src="/static/' in s or s == ' type="application/json" id="run-data"' for s in scripts), scripts
    candidate = client.get("/runs/running-opro/candidates/1").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Classify the sentiment &amp; answer &lt;b&gt;positive&lt;/b&gt;" \
           " or &#34;negative&#34;." in candidate
    assert "&lt;i&gt;fine&lt;/i&gt;" in candidate and "&lt;ok&gt; by #1" in candidate
    run = client.get("/runs/running-opro").text
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in run  # in the page's JSON: cannot end its block
    figure = get_json(client, "/api/runs/running-opro")["figure"]
    hover = " ".join(text for t in figure["data"] for text in t.get("hovertext") or [] if isinstance(text, str))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hover and "<script>" not in hover


def test_every_response_carries_a_strict_content_security_policy(client: TestClient) -> None:
    for path in ("/", "/runs/running-opro", "/api/runs", "/runs/nope", "/static/dashboard.css"):
        headers = client.get(path).headers
        assert "script-src 'self';" in headers["content-security-policy"]
        assert "connect-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_plotly_js_is_served_from_the_installed_plotly_package(client: TestClient) -> None:
    import plotly
    from plotly.offline import get_plotlyjs_version

    page = client.get("/runs/running-opro").text
    url = f"/static/plotly-{get_plotlyjs_version()}.min.js"
    assert f'<script src="{url}"></script>' in page and "cdn" not in page.lower() and "https://" not in page
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    assert "immutable" in response.headers["cache-control"]
    from pathlib import Path

    assert response.content == (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()


def test_not_a_number_never_reaches_the_json(client: TestClient, dash_store: DashStore) -> None:
    def walk(value: Any) -> None:
        assert not (isinstance(value, float) and not math.isfinite(value))
        for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
            walk(item)

    for path in ("/api/runs", "/api/runs/running-opro", f"/api/runs/{dash_store.gepa}",
                 f"/api/compare?run={dash_store.gepa}&run=running-opro", "/api/runs/running-opro/candidates/2"):
        walk(client.get(path).json())
