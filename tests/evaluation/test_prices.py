"""Spend in money and money budgets: price arithmetic, the prices file and option, a run's cost counted call by
call (fake models count tokens exactly), a money budget stopping a run cleanly, and no money without a price."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.fake_model import CountingModel, ReplyingModel
from typer.testing import CliRunner

import prompthone as ph
from prompthone.cli import app
from prompthone.errors import ConfigError, InputError
from prompthone.evaluation.budget import Budget
from prompthone.evaluation.prices import Price, load_prices, money_text, parse_price
from prompthone.optimizers.opro import OPRO
from prompthone.run.config import RunConfig
from prompthone.run.driver import run_optimization
from prompthone.tasks.example import Example, Task

LABELS = ("yes", "no")
#: a dollar per prompt token and two per completion token: a run's cost is then its token counts, exactly
PER_TOKEN = Price(1_000_000, 2_000_000)


def _task() -> Task:
    examples = [Example(f"case {i}", LABELS[i % 2]) for i in range(24)]
    return Task("t", tuple(examples[:12]), tuple(examples[12:20]), tuple(examples[20:]), metric="label_accuracy",
                labels=LABELS, instruction="Decide.")


def _meta() -> ReplyingModel:
    return ReplyingModel(lambda text, n: f"<START>Decide carefully, variant {n}.<END>")


def test_a_price_is_dollars_per_million_tokens() -> None:
    assert Price(0.15, 0.60).cost(1_000_000, 500_000) == pytest.approx(0.45)
    assert parse_price("openai:http://h/v1/m=0.15,0.6") == ("openai:http://h/v1/m", Price(0.15, 0.6))
    for bad in ("local", "local=0.1", "local=a,b", "=0.1,0.2", "local=-1,0"):
        with pytest.raises(InputError, match="MODEL=INPUT,OUTPUT") as info:
            parse_price(bad)
        assert info.value.field == "--price"
    assert money_text({"calls": 3}) == "" and money_text({"usd": 1.5, "new_usd": 0.5}) == ", $1.5000 ($0.5000 new)"


def test_a_prices_file_is_read_and_its_errors_name_file_and_model(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("local: {input: 0, output: 0}\nopenai:http://h/v1/m: {input: 0.15, output: 0.6}\n")
    assert load_prices(path) == {"local": Price(0, 0), "openai:http://h/v1/m": Price(0.15, 0.6)}
    for text, field in (("m: {input: 1}\n", "m"), ("m: {input: cheap, output: 1}\n", "m"),
                        ("m: {input: -1, output: 1}\n", "m"), ("- m\n", None)):
        path.write_text(text)
        with pytest.raises(InputError) as info:
            load_prices(path)
        assert info.value.path == str(path) and info.value.field == field
    with pytest.raises(InputError, match="not found"):
        load_prices(tmp_path / "none.yaml")


def test_a_priced_run_counts_every_call_at_its_price_and_an_unpriced_one_shows_no_money(tmp_path: Path) -> None:
    task, model = _task(), CountingModel()
    priced = run_optimization(task, OPRO(steps=2, num_generated_instructions=2, score_examples=4), task_model=model,
                              meta_model=_meta(), prices={"task": PER_TOKEN}, run_root=tmp_path, progress=False)
    spend = priced.spend
    # the meta model (a fake proposing apart) has no price: only the task model's tokens are money
    task_tokens = spend["by_role"]["task"] * 10  # CountingModel scores: 10 prompt tokens a call
    assert spend["usd"] == pytest.approx(task_tokens) and spend["new_usd"] == pytest.approx(task_tokens)
    plain = run_optimization(task, OPRO(steps=2, num_generated_instructions=2, score_examples=4),
                             task_model=CountingModel(), meta_model=_meta(), run_root=None, progress=False)
    assert "usd" not in plain.spend and "new_usd" not in plain.spend and "usd" not in plain.final_spend


def test_the_report_and_the_dashboard_show_a_priced_runs_money(tmp_path: Path) -> None:
    from prompthone.dashboard.compare import compare_view
    from prompthone.report.data import RunData
    from prompthone.report.summary import spend
    from prompthone.store.db import RunStore

    result = run_optimization(_task(), OPRO(steps=1, num_generated_instructions=1, score_examples=2),
                              task_model=CountingModel(), meta_model=_meta(), prices={"task": PER_TOKEN},
                              run_root=tmp_path, progress=False)
    rows = spend(RunData.from_run_dir(Path(result.run_dir or ""))).rows
    assert [r.label for r in rows] == ["search", "final scoring", "total"]
    assert rows[0].cost == pytest.approx(result.spend["usd"]) and rows[-1].cost == pytest.approx(
        result.spend["usd"] + result.final_spend["usd"])
    with RunStore(tmp_path / "prompthone.sqlite") as store:
        (view,) = compare_view(store, [store.list_runs()[0].id])["runs"]
    assert view["usd"] == pytest.approx(rows[-1].cost)


def test_a_money_budget_stops_the_run_cleanly_and_a_resume_keeps_the_prices(tmp_path: Path) -> None:
    task = _task()
    result = run_optimization(task, OPRO(steps=50, num_generated_instructions=2, score_examples=4),
                              task_model=CountingModel(), meta_model=_meta(), budget=Budget(usd=300.0),
                              prices={"task": PER_TOKEN, "meta": PER_TOKEN}, run_root=tmp_path, progress=False)
    assert result.stopped_reason == "budget" and 0 < result.steps < 50
    assert 300.0 <= result.spend["usd"] < 300.0 + 2 * 10 + 2 * 5  # stops within a call of the limit (1 in flight)
    config = RunConfig.from_dict(RunConfig(method="opro", budget=Budget(usd=300.0),
                                           prices={"task": PER_TOKEN}).to_dict())
    assert config.budget.usd == 300.0 and config.prices == {"task": PER_TOKEN}
    assert "prices" not in RunConfig(method="opro").to_dict()  # a run without prices is recorded as before


def test_a_money_budget_without_the_task_models_price_is_refused() -> None:
    with pytest.raises(ConfigError, match="money budget needs a price for the task model"):
        run_optimization(_task(), OPRO(steps=1), task_model=CountingModel(), budget=Budget(usd=1.0),
                         run_root=None, progress=False)


def test_the_api_takes_prices_by_model_spec_or_id(tmp_path: Path) -> None:
    result = ph.optimize(_task(), method="opro", model=CountingModel(), meta_model=_meta(),
                         options={"steps": 1, "num_generated_instructions": 1, "score_examples": 2},
                         prices={"fake:counting": PER_TOKEN}, run_dir=tmp_path, cache=False, progress=False)
    assert result.spend["usd"] > 0


def test_cli_price_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["optimize", "--task", "gen:sentiment_templates", "--price", "local=cheap",
                                      "--budget-usd", "1", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--price" in result.stderr and "MODEL=INPUT,OUTPUT" in result.stderr


def test_compare_shows_each_methods_cost_beside_its_tokens(tmp_path: Path) -> None:
    from prompthone.compare import compare, summarize, tokens_cell

    rows, path = compare(_task(), ["seed", "opro:steps=1,num_generated_instructions=1,score_examples=2"],
                         model=CountingModel(), meta_model=_meta(), task_calls=40, seeds=(0,), run_dir=tmp_path,
                         cache=False, progress=False, prices={"fake:counting": PER_TOKEN})
    seed, opro = summarize(rows, _task())
    assert seed["usd"] is None and opro["usd"] == pytest.approx(rows[1].usd) and rows[1].usd > 0
    assert tokens_cell(opro).endswith(f"· ${opro['usd']:.4f}") and "· $" not in tokens_cell(seed)
    assert f"${opro['usd']:.4f}" in (path / "compare.md").read_text()
