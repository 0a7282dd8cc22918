"""`augment`'s complement model defaults as a meta model does (`api.default_meta_model`): the strongest embedded
model installed for an embedded target, else the target itself; an explicit one wins; each answer records it."""

from __future__ import annotations

import json

import pytest
from tests.conftest import fake_instruction_model
from tests.optimizers.test_checkpoint_resume import InstructionModel
from typer.testing import CliRunner

from prompthone.augment.api import augment


@pytest.mark.parametrize(("complement", "writer"), [(None, "qwen-1.5b"), ("qwen-0.5b", "qwen-0.5b")])
def test_an_embedded_target_gets_the_strongest_embedded_complement_model_unless_one_is_named(
        embedded_fakes: dict[str, InstructionModel], complement: str | None, writer: str) -> None:
    [answer] = augment(["Write a haiku about rain."], complement_model=complement, target_model="local", cache=False)
    assert answer.complement_model == f"fake:{writer}" and answer.output and answer.answer
    assert embedded_fakes[writer].calls == 1 and embedded_fakes["local"].calls == 1  # one complement, one answer
    assert all(m.calls == 0 for spec, m in embedded_fakes.items() if spec not in ("local", writer))


def test_a_target_that_is_not_embedded_writes_its_own_complement(embedded_fakes: dict[str, InstructionModel]) -> None:
    target = fake_instruction_model("fake:server")
    [answer] = augment(["Write a haiku about rain."], target_model=target, cache=False)
    assert answer.complement_model == "fake:server" and target.calls == 2
    assert all(m.calls == 0 for m in embedded_fakes.values())


def test_cli_augment_says_which_complement_model_it_chose(embedded_fakes: dict[str, InstructionModel]) -> None:
    from prompthone.cli import app

    result = CliRunner().invoke(app, ["augment", "Write a haiku about rain.", "--model", "local", "--no-cache"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "complement model: qwen-1.5b (the strongest embedded model installed; --complement-model chooses another)" \
        in said
    quiet = CliRunner().invoke(app, ["augment", "Write a haiku about rain.", "-c", "qwen-0.5b", "--no-cache",
                                     "--json"])
    assert quiet.exit_code == 0 and not quiet.stderr
    assert json.loads(quiet.stdout)["complement_model"] == "fake:qwen-0.5b"
