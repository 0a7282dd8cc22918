"""`prompthone pas ...` and `prompthone augment`: bad input gets one line naming file, line and field, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prompthone.cli import app


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_help_lists_the_pas_commands() -> None:
    code, output = _run("pas", "--help")
    assert code == 0 and all(c in output for c in ("build-data", "train", "eval"))
    code, output = _run("--help")
    assert code == 0 and "augment" in output


def test_module_entry_point_imports_cleanly() -> None:
    """`python -m prompthone.cli` runs cli.py as __main__; a command module importing it back must not break it."""
    proc = subprocess.run([sys.executable, "-m", "prompthone.cli", "pas", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "build-data" in proc.stdout


def test_build_data_names_the_bad_corpus_line(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"prompt": "Explain how rainbows form."}\n{"text": 3}\n', encoding="utf-8")
    code, output = _run("pas", "build-data", str(tmp_path / "out"), "--corpus", str(corpus), "-q")
    assert code == 2 and "corpus.jsonl:2: field 'text'" in output


def test_build_data_refuses_unknown_design_and_bad_golden_option(tmp_path: Path) -> None:
    code, output = _run("pas", "build-data", str(tmp_path), "--design", "opro")
    assert code == 2 and "unknown augmentation design 'opro'" in output
    code, output = _run("pas", "build-data", str(tmp_path), "--golden", "pas.jsonl")
    assert code == 2 and "DESIGN=FILE" in output


def test_train_names_missing_pairs_and_designs(tmp_path: Path) -> None:
    code, output = _run("pas", "train", str(tmp_path), str(tmp_path / "adapter"))
    assert code == 2 and "pairs.jsonl" in output and "file not found" in output
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "p", "output": "o", "design": "pas"}\n', encoding="utf-8")
    code, output = _run("pas", "train", str(tmp_path), str(tmp_path / "adapter"), "--design", "rewrite")
    assert code == 2 and "no pairs for design 'rewrite'" in output and "deprecated" not in output


def test_deprecated_bpo_spellings_mean_rewrite_and_warn(tmp_path: Path) -> None:
    """`--design bpo` and `pas eval --bpo` (the old names of `rewrite`) still work, with a warning on stderr."""
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "p", "output": "o", "design": "pas"}\n', encoding="utf-8")
    code, output = _run("pas", "train", str(tmp_path), str(tmp_path / "adapter"), "--design", "bpo")
    assert code == 2 and "no pairs for design 'rewrite'" in output
    assert "--design bpo is deprecated, use --design rewrite" in output
    code, output = _run("pas", "eval", str(tmp_path / "missing.jsonl"), "--bpo", "adapter:adapters/old")
    assert code == 2 and "--bpo is deprecated, use --rewrite" in output and "missing.jsonl" in output
    code, output = _run("pas", "eval", str(tmp_path), "--bpo", "adapter:a", "--rewrite", "adapter:b")
    assert code == 2 and "give only --rewrite" in output
    code, output = _run("pas", "eval", "--help")
    assert code == 0 and "--rewrite" in output and "--bpo" not in output


def test_eval_needs_a_system_and_readable_prompts(tmp_path: Path) -> None:
    prompts = tmp_path / "heldout.jsonl"
    prompts.write_text('{"prompt": "Explain tides."}\n{"prompt": ""}\n', encoding="utf-8")
    code, output = _run("pas", "eval", str(prompts))
    assert code == 2 and "heldout.jsonl:2: field 'prompt'" in output
    prompts.write_text('{"prompt": "Explain tides."}\n', encoding="utf-8")
    pytest.importorskip("llama_cpp")
    code, output = _run("pas", "eval", str(tmp_path), "-q")
    assert code == 2 and "give --pas and/or --rewrite" in output
