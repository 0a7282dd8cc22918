"""`export --verify`: the exported form, read back from its files, sent through the same backend on the test split,
must give prompthone's own predictions example by example.

The check reads only what the files hold: the messages come from rendering the exported template, the answer
reading (label scoring or generation, the calibration, reasoning and the extractor, the answer prefix) from the
exported settings. prompthone's side is the found prompt as the run recorded it. Both go through the same
evaluator code on the same model and call cache, so equal messages and settings give equal predictions, and any
difference the export introduced shows up as an example whose prediction changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prompthone.evaluation.evaluator import Evaluator, ScoringMode
from prompthone.models.base import Message, Model
from prompthone.prompts.calibration import Calibration
from prompthone.prompts.prompt import DEFAULT_EXTRACTOR, Prompt
from prompthone.run.session import Session
from prompthone.tasks.example import Task


@dataclass(frozen=True)
class Verification:
    """The exported form's predictions against prompthone's on the same test examples."""

    form: str
    n: int
    same_predictions: int
    score_export: float
    score_prompthone: float
    differing: tuple[int, ...]

    @property
    def equivalent(self) -> bool:
        return self.same_predictions == self.n

    def describe(self) -> str:
        verdict = "same predictions on every example" if self.equivalent else (
            f"DIFFERENT predictions on {self.n - self.same_predictions} of {self.n} examples "
            f"(test indices {', '.join(map(str, self.differing[:10]))}{' …' if len(self.differing) > 10 else ''})")
        return (f"{self.form}: {verdict}; test score {self.score_export:.3f} exported vs "
                f"{self.score_prompthone:.3f} in prompthone ({self.n} examples)")


def settings_prompt(settings: dict[str, Any]) -> Prompt:
    """How the exported settings read an answer, as a Prompt (its text is never used: the form renders it)."""
    calibration = settings.get("calibration")
    return Prompt("", reasoning_tokens=int(settings.get("reasoning_tokens") or 0),
                  extractor=settings.get("extractor") or DEFAULT_EXTRACTOR,
                  calibration=Calibration.from_dict(calibration) if calibration else None,
                  answer_prefix=settings.get("answer_prefix") or "")


def verify(form: str, prompt: Prompt, task: Task, model: Model, *, settings: dict[str, Any],
           renderer: Callable[[str], tuple[Message, ...]], cache: Any = None) -> Verification:
    """Score the test split twice on `model`: with `prompt` as prompthone renders it, and with the exported form's
    `renderer` and `settings`; compare the predictions example by example."""
    session = Session(cache=cache)
    mode: ScoringMode = "labels" if settings.get("scoring") == "labels" else "generate"
    ours = Evaluator(task, session.model(model, "final"), mode=mode).evaluate(prompt, task.test)
    exported = Evaluator(task, session.model(model, "final"), mode=mode,
                         renderer=lambda _, text: renderer(text)).evaluate(settings_prompt(settings), task.test)
    differing = tuple(i for i, (a, b) in enumerate(zip(ours.examples, exported.examples, strict=True))
                      if a.prediction != b.prediction)
    return Verification(form, len(task.test), len(task.test) - len(differing), exported.score, ours.score,
                        differing)
