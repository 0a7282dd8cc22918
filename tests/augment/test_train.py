"""PAS training: label masking, config checks, adapter metadata, and a short LoRA run on the embedded SmolLM2.

The LoRA run uses a one-line system message and short complements so a step costs a few seconds on 2 CPU cores;
the run itself is shared by the tests that reload the adapter.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from prompthone.augment.designs import PAS, Design
from prompthone.augment.pairs import Pair
from prompthone.augment.train import IGNORE_INDEX, LOSSES_FILE, TrainConfig, TrainResult, split_examples
from prompthone.errors import ConfigError
from prompthone.models.adapters import (
    FORMAT,
    FORMAT_VERSION,
    METADATA_FILE,
    AdapterInfo,
    check_base,
    design_of,
    read_adapter_info,
)
from prompthone.models.base import GenerationRequest, file_fingerprint
from prompthone.models.registry import available_models

SHORT = Design(name="pas", system="Add a hint.", replaces=False, max_tokens=16)
PAIRS = [Pair(p, o) for p, o in [
    ("Write a haiku about rain.", "Use 5, 7, 5 syllables."),
    ("Explain gravity to a child.", "Use one simple analogy."),
    ("Sort a list in Python.", "Show sorted() with key=."),
    ("Give a pancake recipe.", "List amounts, then steps."),
    ("Why do seasons change?", "Mention the axial tilt."),
    ("Translate 'hello' to Spanish.", "Add the pronunciation."),
    ("Summarize the French Revolution.", "Use five bullet points."),
    ("How can I sleep better?", "Give five short habits."),
    ("What is a prime number?", "Note that 1 is not prime."),
    ("Plan a day in Rome.", "Group sights by area."),
    ("Count rows in SQL.", "Show COUNT(*) with WHERE."),
    ("Name a good first pet.", "Weigh cost and care time."),
]]
RUN = TrainConfig(max_steps=6, learning_rate=1e-3, batch_size=3, eval_fraction=0.25, lora_dropout=0.0, log_every=1)


def _metadata(directory: Path, **changes: Any) -> Path:
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "design": "pas", "method": "lora",
              "base": {"name": "base", "file": "base.gguf", "fingerprint": "0123456789abcdef"}, **changes}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / METADATA_FILE).write_text(json.dumps(record), encoding="utf-8")
    return directory


# -- pure logic -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "words"), [
    ({"method": "qlora"}, "method"), ({"epochs": 0}, "epochs"), ({"max_steps": 0}, "max_steps"),
    ({"learning_rate": 0.0}, "learning_rate"), ({"batch_size": 0}, "batch_size"), ({"lora_r": 0}, "lora_r"),
    ({"lora_dropout": 1.0}, "lora_dropout"), ({"target_modules": ()}, "target_modules"),
    ({"max_length": 4}, "max_length"), ({"eval_fraction": 0.9}, "eval_fraction"), ({"log_every": 0}, "log_every"),
])
def test_config_rejects_impossible_values(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**changes)


def test_config_learning_rate_defaults_per_method() -> None:
    assert TrainConfig().lr == 2e-4 and TrainConfig(method="full").lr == 2e-5
    assert TrainConfig(learning_rate=1e-3).lr == 1e-3
    assert TrainConfig(target_modules=["q_proj"]).to_dict()["target_modules"] == ["q_proj"]  # type: ignore[arg-type]


def test_held_out_split_is_seeded_and_keeps_a_training_pair() -> None:
    import random

    items: list[Any] = list(range(10))
    train, held = split_examples(items, 0.1, random.Random(3))
    assert (train, held) == split_examples(items, 0.1, random.Random(3))
    assert len(held) == 1 and sorted(train + held) == items
    assert split_examples(items[:1], 0.5, random.Random(0)) == ([0], [])
    assert split_examples(items, 0.0, random.Random(0))[1] == []


def test_missing_or_bad_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_adapter_info(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=f"{METADATA_FILE} is missing"):
        read_adapter_info(tmp_path)
    (tmp_path / METADATA_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        read_adapter_info(tmp_path)
    with pytest.raises(ConfigError, match="format_version"):
        read_adapter_info(_metadata(tmp_path / "v9", format_version=9))
    with pytest.raises(ConfigError, match="unknown method"):
        read_adapter_info(_metadata(tmp_path / "m", method="qlora"))
    info = read_adapter_info(_metadata(tmp_path / "ok", design="rewrite"))
    assert (info.design, info.method, info.base_file) == ("rewrite", "lora", "base.gguf")
    assert design_of(tmp_path / "ok") == "rewrite"


def test_adapter_saved_as_bpo_loads_as_rewrite(tmp_path: Path) -> None:
    """Adapters trained before the rename say design 'bpo' (our own rewriter, not Cheng et al.'s BPO)."""
    info = read_adapter_info(_metadata(tmp_path / "old", design="bpo"))
    assert info.design == "rewrite" and info.metadata["design"] == "bpo"
    assert design_of(tmp_path / "old") == "rewrite"


def test_base_fingerprint_mismatch_names_both_files(tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF not the base")
    info = read_adapter_info(_metadata(tmp_path / "adapter"))
    with pytest.raises(ConfigError, match=r"base\.gguf .*0123456789abcdef.*other\.gguf .*" + file_fingerprint(other)):
        check_base(info, other)
    check_base(replace(info, base_fingerprint=file_fingerprint(other)), other)  # the right base passes


def test_registry_lists_adapter_spec() -> None:
    assert "adapter:<dir>" in [m.spec for m in available_models()]


# -- on the embedded model ----------------------------------------------------------------------------------------
@pytest.mark.torch
def test_torch_model_refuses_adapter_before_loading_weights(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from prompthone.models.torch_model import TorchModel

    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF not the base")
    with pytest.raises(ConfigError, match="is missing"):
        TorchModel(other, adapter=tmp_path)
    with pytest.raises(ConfigError, match=r"was trained on base\.gguf"):
        TorchModel(other, adapter=_metadata(tmp_path / "adapter"))


@pytest.mark.torch
def test_only_target_tokens_carry_labels(torch_model: Any) -> None:
    from prompthone.augment.train import encode_pair, token_nll

    pair = PAIRS[0]
    prompt = torch_model.encode(torch_model.render_chat(PAS.messages(pair.prompt)))
    target = torch_model.encode(pair.output + torch_model.tokenizer.eos_token)
    example = encode_pair(torch_model, PAS, pair, 384)
    assert example is not None and example.input_ids == tuple(prompt + target)
    assert example.labels == (IGNORE_INDEX,) * len(prompt) + tuple(target)
    assert example.target_tokens == len(target) and target[-1] == torch_model.tokenizer.eos_token_id
    cut = encode_pair(torch_model, PAS, pair, len(prompt) + 2)
    assert cut is not None and cut.target_tokens == 2 and len(cut.input_ids) == len(prompt) + 2
    assert encode_pair(torch_model, PAS, pair, len(prompt)) is None  # no room for a target: dropped
    other = encode_pair(torch_model, SHORT, PAIRS[1], 384)
    assert other is not None
    _, count = token_nll(torch_model.module, [example, other], torch_model._pad_id, torch_model.device)
    assert count == example.target_tokens + other.target_tokens  # padding and prompts never count


@pytest.fixture(scope="module")
def trained(torch_model: Any, torch_cache_root: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """One short LoRA run shared by the tests below (torch_model first, so the weights are dequantized once)."""
    pytest.importorskip("peft")
    from prompthone.augment.train import train_augmenter

    records: list[dict[str, Any]] = []
    result = train_augmenter(PAIRS, tmp_path_factory.mktemp("runs") / "pas", design=SHORT, config=RUN,
                             cache_root=torch_cache_root, progress=False, on_step=records.append)
    assert len(records) == len(result.losses) + len(result.eval_losses)
    return result


@pytest.mark.torch
def test_lora_run_lowers_the_loss_and_records_it(trained: TrainResult) -> None:
    assert len(trained.losses) == RUN.max_steps and (trained.train_pairs, trained.eval_pairs) == (9, 3)
    first, last = sum(trained.losses[:2]) / 2, sum(trained.losses[-2:]) / 2
    assert last < first - 0.3, trained.losses
    assert trained.eval_losses[0][0] == 0 and trained.eval_losses[-1][0] == RUN.max_steps
    assert trained.eval_losses[-1][1] < trained.eval_losses[0][1]
    lines = (trained.out_dir / LOSSES_FILE).read_text().splitlines()
    assert [json.loads(x).get("loss") for x in lines if "loss" in json.loads(x)] == trained.losses
    meta = json.loads((trained.out_dir / METADATA_FILE).read_text())
    assert meta["method"] == "lora" and meta["data"]["train_pairs"] == 9 and meta["versions"]["peft"]
    assert (trained.out_dir / "adapter_model.safetensors").is_file()
    assert not list(trained.out_dir.parent.glob(".*partial"))  # staging renamed into place
    with pytest.raises(ConfigError, match="not empty"):
        from prompthone.augment.train import train_augmenter

        train_augmenter(PAIRS, trained.out_dir, config=RUN)


def _mean_nll(model: Any, examples: list[Any]) -> float:
    from prompthone.augment.train import evaluate_loss

    return evaluate_loss(model.module, examples, batch_size=4, pad_id=model._pad_id, device=model.device)


@pytest.mark.torch
def test_reloaded_adapter_prefers_its_training_pairs(trained: TrainResult, torch_model: Any,
                                                     torch_cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prompthone.augment.train import encode_pair
    from prompthone.models.registry import make_model

    monkeypatch.setenv("PROMPTHONE_CACHE_DIR", str(torch_cache_root))  # the dequantized copy is already there
    adapted = make_model(f"adapter:{trained.out_dir}")
    assert isinstance(adapted.adapter, AdapterInfo) and adapted.adapter.design == design_of(trained.out_dir) == "pas"
    assert adapted.id != torch_model.id and "adapter-lora-" in adapted.id
    examples = [encode_pair(torch_model, SHORT, p, 384) for p in PAIRS]
    base_nll, adapted_nll = _mean_nll(torch_model, examples), _mean_nll(adapted, examples)
    assert adapted_nll < base_nll - 0.3, (base_nll, adapted_nll)
    request = GenerationRequest(messages=SHORT.messages(PAIRS[0].prompt), max_tokens=12)
    completion = next(adapted.generate([request]))[1]
    assert completion.completion_tokens >= 1 and isinstance(completion.text, str)


@pytest.mark.torch
@pytest.mark.e2e
def test_prompthone_augment_wraps_the_trained_adapter_around_the_embedded_model(
        trained: TrainResult, torch_cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plug-in end to end: the adapter (torch) writes the complement, SmolLM2 on llama.cpp answers."""
    from typer.testing import CliRunner

    from prompthone.cli import app

    monkeypatch.setenv("PROMPTHONE_CACHE_DIR", str(torch_cache_root))
    prompt = "Write a haiku about rain."
    result = CliRunner().invoke(app, ["augment", prompt, "-c", f"adapter:{trained.out_dir}", "--model", "local",
                                      "--json", "--no-cache"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)  # stdout only: transformers draws a weight-loading bar on stderr
    assert record["prompt"] == prompt and record["output"] and record["answer"]
    assert record["augmented_prompt"] == PAS.apply(prompt, record["output"])  # the adapter's design: appended
    missing = CliRunner().invoke(app, ["augment", prompt, "-c", f"adapter:{trained.out_dir.parent / 'nope'}"])
    assert missing.exit_code == 2 and "not found" in missing.output


@pytest.mark.torch
@pytest.mark.e2e
def test_pas_eval_judges_the_trained_adapters_answers_on_the_embedded_model(
        trained: TrainResult, torch_cache_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`pas eval` end to end with a trained adapter: it writes each complement (torch), SmolLM2 on llama.cpp answers
    with and without it and judges both orders; the report counts every prompt and every call, with references."""
    from typer.testing import CliRunner

    from prompthone.cli import app

    monkeypatch.setenv("PROMPTHONE_CACHE_DIR", str(torch_cache_root))
    heldout = tmp_path / "heldout.jsonl"
    heldout.write_text("".join(json.dumps(r) + "\n" for r in (
        {"prompt": "What is 2 + 3? Answer with a number.", "target": "5"},
        {"prompt": "Name the capital of France.", "target": "Paris"})), encoding="utf-8")
    result = CliRunner().invoke(app, ["pas", "eval", str(heldout), "--pas", f"adapter:{trained.out_dir}",
                                      "--answer-tokens", "24", "--out", str(tmp_path / "eval"), "--no-cache",
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval" / "eval.json").read_text(encoding="utf-8"))
    summary = data["summary"]["pas vs none"]
    assert summary["n"] == 2 and summary["wins"] + summary["ties"] + summary["losses"] == 2
    assert 0.0 <= summary["ci_low"] <= summary["win_rate"] <= summary["ci_high"] <= 1.0
    for record in data["records"]:
        pas_record = record["systems"]["pas"]
        assert pas_record["augmented_prompt"] == PAS.apply(record["prompt"], pas_record["output"])
        assert record["baseline_answer"] and pas_record["answer"]
    # 2 plain answers + 2 complements (the adapter) + 2 augmented answers + 2 prompts × 2 orders of judging
    assert data["spend"]["calls"] == 10
    assert set(data["reference_accuracy"]) == {"none", "pas"}  # the prompts carry references: both are checked
    assert "pas vs none" in (tmp_path / "eval" / "eval.md").read_text(encoding="utf-8")
