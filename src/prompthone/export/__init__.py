"""Export a found prompt where users deploy it (`prompthone export`, `ph.export`), and check the export scores the same.

Forms (`FORMATS`): OpenAI-style chat messages (`openai`), a Jinja2 template with its settings (`jinja`), a promptfoo
configuration with the task's test split as test cases (`promptfoo`), the state a DSPy `Predict` loads (`dspy`),
and an entry of MLflow's Prompt Registry (`mlflow`, extra `mlflow`). `forms` says what each carries and why demos
stay in the user turn; `verify` checks a written form against prompthone's own predictions.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, InputError
from prompthone.export import forms
from prompthone.models.base import Message, Model
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Task

FORMATS = ("openai", "jinja", "promptfoo", "dspy", "mlflow")
#: the forms `verify` can render back offline (DSPy renders its own prompt; MLflow's entry is the openai messages)
VERIFIABLE = ("openai", "jinja", "promptfoo", "mlflow")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote (file role → path), MLflow's registered name and version, and the notes."""

    form: str
    files: dict[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    registered: str | None = None
    renderer: Callable[[str], tuple[Message, ...]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def export(prompt: Prompt, form: str, task: Task, *, out_dir: str | Path, scoring: str = "labels",
           model_spec: str | None = None, mlflow: str | None = None, name: str | None = None,
           tags: dict[str, str] | None = None) -> ExportResult:
    """Write `prompt` as `form` into `out_dir` (or register it in MLflow at `mlflow`, as `name`, with `tags`).

    `scoring` is how the run read answers ("labels" or "generate"); `model_spec` the task model, named as the
    provider of a promptfoo configuration when it is a server. Every form but DSPy's carries the exact text
    prompthone sends, with one slot for the input; the returned notes say what a client must apply itself.
    """
    if form not in FORMATS:
        raise InputError(f"unknown format {form!r}; expected one of {', '.join(FORMATS)}", field="--format")
    parts = forms.parts_of(prompt, task, scoring=scoring)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if form == "openai":
        files = {"messages": _write_json(out / "prompt.openai.json", forms.openai_messages(parts))}
        return read_back(ExportResult(form, files, parts.notes))
    if form == "jinja":
        files = {"template": _write(out / "prompt.jinja", forms.jinja_template(parts)),
                 "settings": _write_json(out / "prompt.settings.json", forms.jinja_settings(parts))}
        return read_back(ExportResult(form, files, parts.notes))
    if form == "promptfoo":
        return _promptfoo(parts, task, scoring, model_spec, out)
    if form == "dspy":
        note = ("DSPy renders its own prompt from the instruction and demos (its adapter's wording), so scores in "
                "DSPy can differ from prompthone's; load it with dspy.Predict('input -> answer').load_state(...)")
        return ExportResult(form, {"state": _write_json(out / "prompt.dspy.json", forms.dspy_state(prompt, task))},
                            (*parts.notes, note))
    return _mlflow(parts, mlflow, name or "prompthone-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", task.name).strip("-"),
                   tags or {})


def _promptfoo(parts: forms.PromptParts, task: Task, scoring: str, model_spec: str | None,
               out: Path) -> ExportResult:
    import yaml

    config = forms.promptfoo_config(task, scoring, model_spec)
    files = {"config": _write(out / "promptfooconfig.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True,
                                                                            width=10**6)),
             "prompt": _write_json(out / "prompt.json", forms.promptfoo_prompt(parts)),
             "settings": _write_json(out / "prompt.settings.json", {"settings": parts.settings,
                                                                   "notes": list(parts.notes)})}
    note = "promptfoo grades the generated reply's text (its assertions); prompthone's label scores are not read"
    return read_back(ExportResult("promptfoo", files, (*parts.notes, note)))


def read_back(result: ExportResult) -> ExportResult:
    """`result` with the renderer and settings of its form read back from the files it wrote (what `verify` sends:
    the files, not what the export held in memory)."""
    read = {role: path.read_text(encoding="utf-8") for role, path in result.files.items()}
    if result.form == "openai":
        document = json.loads(read["messages"])
        renderer, settings = (lambda text: forms.render_openai(document, text)), document["settings"]
    elif result.form == "jinja":
        saved = json.loads(read["settings"])
        renderer, settings = (lambda text: forms.render_jinja(read["template"], saved, text)), saved["settings"]
    else:
        messages = json.loads(read["prompt"])
        renderer = lambda text: forms.render_promptfoo(messages, text)  # noqa: E731 - one expression
        settings = json.loads(read["settings"])["settings"]
    return replace(result, renderer=renderer, settings=settings)


def _mlflow(parts: forms.PromptParts, uri: str | None, name: str, tags: dict[str, str]) -> ExportResult:
    """Register the chat messages (MLflow's `{{input}}` variable) with the settings and run facts as tags."""
    if uri is None:
        raise InputError("the mlflow form needs a tracking URI (--mlflow URI)", field="--mlflow")
    from prompthone.tracking.mlflow_logger import _import_mlflow
    from prompthone.tracking.redact import mask_secrets

    mlflow = _import_mlflow()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # as the run tracker does
    document = forms.openai_messages(parts)
    if sum(m["content"].count("{{") for m in document["messages"]) != 1:
        raise ConfigError("the prompt's own text holds '{{', which MLflow's prompt registry reads as a variable: "
                          "export it as openai or jinja instead")
    mlflow.set_tracking_uri(uri)
    try:
        version = mlflow.genai.register_prompt(
            name=name, template=document["messages"], commit_message="exported by prompthone",
            tags={**{k: mask_secrets(str(v)) for k, v in tags.items()},
                  "prompthone.settings": json.dumps(parts.settings), "prompthone.notes": " | ".join(parts.notes)})
        registered = f"prompts:/{name}/{version.version}"
        loaded = mlflow.genai.load_prompt(registered)  # what verify sends: the registry's copy, formatted by MLflow
    except mlflow.exceptions.MlflowException as exc:
        raise ConfigError(f"MLflow at {mask_secrets(uri)} refused the prompt {name!r}: "
                          f"{mask_secrets(str(exc)).strip()}") from None

    def renderer(text: str) -> tuple[Message, ...]:
        return tuple(Message(m["role"], m["content"]) for m in loaded.format(**{forms.VARIABLE: text}))

    return ExportResult("mlflow", {}, parts.notes, registered=registered, renderer=renderer,
                        settings=json.loads(loaded.tags["prompthone.settings"]))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_json(path: Path, data: Any) -> Path:
    return _write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def verify_export(result: ExportResult, prompt: Prompt, task: Task, model: Model, *, cache: Any = None) -> Any:
    """`verify.verify` of a written form (`VERIFIABLE`), rendered back from what the export holds."""
    from prompthone.export.verify import verify

    if result.renderer is None:
        raise ConfigError(f"the {result.form} form cannot be checked here: {result.notes[-1]}")
    return verify(result.form, prompt, task, model, settings=result.settings, renderer=result.renderer, cache=cache)


__all__ = ["FORMATS", "VERIFIABLE", "ExportResult", "export", "read_back", "verify_export"]
