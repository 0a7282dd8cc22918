"""Critique of generated pairs against PAS's published failure modes, and the regenerate-until-correct loop (§3.2).

A pair fails if its output answers the request instead of supplementing it, drifts from the request's intent,
demands far more than the request needs, is in another language, or is malformed (empty, a copy of the prompt,
chat artifacts). Each mode has deterministic checks (answer markers, the reference answer appearing, MiniLM
similarity to the prompt, length, language identification) and, optionally, an LLM check: a yes/no question
scored by label log-probabilities. A weak judge's yes-probability is mostly prior, so the LLM check is
calibrated on our golden pairs, which are good by construction: a pair fails only if the judge finds it more
suspicious than every golden pair (plus a margin).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prompthone.augment.designs import Design
from prompthone.augment.pairs import Pair
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import Message, ScoringRequest

FAILURE_MODES: dict[str, str] = {
    "answers_instead": "answers the request instead of supplementing it",
    "drifts_from_intent": "is about something other than what the request asks",
    "over_demands": "demands much more than the request needs",
    "wrong_language": "is not in the request's language",
    "malformed": "is empty, a copy of the prompt, or carries chat artifacts",
}
_ANSWER_MARKERS = re.compile(r"\b(the (correct |final |right )?answer is|answer\s*:|solution\s*:|the result is|"
                             r"here is the (answer|solution)|the output (is|will be))\b", re.IGNORECASE)
#: What guidance sounds like: an imperative from the verbs guidance uses, or a phrase that addresses the answerer.
_GUIDANCE = re.compile(
    r"(^|[.!?:;,]\s+|\n\s*|\b(and|then|first|finally|please)\s+)(add|address|aim|analy[sz]e|answer|apply|"
    r"arrange|avoid|begin|break|build|calculate|capture|check|choose|cite|clarify|classify|compare|complete|"
    r"compose|compute|consider|convert|correct|count|cover|create|decide|define|describe|design|determine|discuss|"
    r"double-check|draft|edit|emphasi[sz]e|end|ensure|estimate|evaluate|examine|explain|express|extract|fill|find|"
    r"fix|focus|follow|format|generate|give|group|handle|help|highlight|identify|include|interpret|isolate|"
    r"justify|keep|label|list|look|match|mention|name|note|offer|order|organi[sz]e|outline|paraphrase|pay|pick|"
    r"plan|predict|present|propose|provide|rank|rate|read|reason|recall|recommend|reply|respond|restate|return|"
    r"review|rewrite|scan|select|show|simplify|solve|sort|start|state|structure|suggest|summari[sz]e|tell|think|"
    r"trace|translate|try|use|verify|walk|weigh|work|write)\b"
    r"|\b(you should|you must|make sure|be sure|remember to|it is important to|the (answer|response|reply) "
    r"should|should (be|include|explain|mention|cover|use|give|state|list))\b",
    re.IGNORECASE)
_TRIVIAL_TARGETS = {"yes", "no", "true", "false", "valid", "invalid", "a", "b", "c", "d", "e"}
_ARTIFACT = re.compile(r"<\|im_|(^|\n)\s*(user|assistant|system)\s*:", re.IGNORECASE)
_LIST_ITEM = re.compile(r"(^|\n)\s*(\d+[.)]|[-*•])\s+")
_QUESTIONS: dict[str, str] = {
    "answers_instead": "Does the {noun} already answer or solve the request, instead of only helping to answer it?",
    "drifts_from_intent": "Is the {noun} about a different topic or goal than the request?",
    "over_demands": "Does the {noun} ask for much more than the request needs?",
    "wrong_language": "Is the {noun} written in a different language than the request?",
}


@dataclass(frozen=True)
class CriticConfig:
    """Thresholds of the deterministic checks and the LLM check's margin over the golden pairs."""

    min_similarity: float = 0.15  # MiniLM cosine to the prompt below which an output drifts (PAS design)
    min_similarity_rewrite: float = 0.45  # a rewrite restates the request, so it must stay much closer
    max_words: int = 60
    max_list_items: int = 6
    llm_checks: bool = True
    llm_margin: float = 0.05


@dataclass(frozen=True)
class Critique:
    """The failure modes a pair showed (empty when it passed) and the evidence for each."""

    reasons: tuple[str, ...]
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.reasons


def _reveals_target(output: str, prompt: str, target: str) -> bool:
    target = target.strip()
    if not target or target.lower() in _TRIVIAL_TARGETS or len(target) < 2 or target.lower() in prompt.lower():
        return False
    if not target.replace(".", "").replace("-", "").isdigit() and len(target) < 4:
        return False
    return re.search(rf"(?<!\w){re.escape(target)}(?!\w)", output, re.IGNORECASE) is not None


def _language(text: str) -> tuple[str, float] | None:
    try:
        from langdetect import DetectorFactory, detect_langs
        from langdetect.lang_detect_exception import LangDetectException
    except ImportError:
        return None
    DetectorFactory.seed = 0  # langdetect samples; a fixed seed makes it deterministic
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return None
    return str(best.lang), float(best.prob)


MIN_LANGUAGE_WORDS = 5


def _alphabetic_words(text: str) -> int:
    return sum(word.isalpha() for word in re.findall(r"\w+", text))


def wrong_language(prompt: str, output: str) -> bool:
    """True when both texts are long enough to identify and are confidently in different languages.

    langdetect guesses wildly on a few words ("Solve for x: 5x - 7 = 18" is Danish to it), so each text needs
    `MIN_LANGUAGE_WORDS` alphabetic words.
    """
    if min(_alphabetic_words(prompt), _alphabetic_words(output)) < MIN_LANGUAGE_WORDS:
        return False
    a, b = _language(prompt), _language(output)
    return a is not None and b is not None and min(a[1], b[1]) >= 0.9 and a[0] != b[0]


def guides(design: Design, output: str) -> bool:
    """Whether an output reads as guidance (PAS) or as a request (rewrite: guidance cues or a question), in English.

    A small generator's commonest failure is a statement of the answer ("314 divided by 157 equals 2."): it has
    no imperative and addresses nobody. Outputs identified as another language are not judged by this rule.
    """
    if _GUIDANCE.search(output) or (design.replaces and "?" in output):
        return True
    language = _language(output) if _alphabetic_words(output) >= MIN_LANGUAGE_WORDS else None
    return language is not None and language[0] != "en"


def repetitive(text: str, min_unique: float = 0.5) -> bool:
    """True when fewer than `min_unique` of the word trigrams are distinct: the loop a small model falls into."""
    words = text.lower().split()
    trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    return len(trigrams) >= 6 and len(set(trigrams)) / len(trigrams) < min_unique


def picks_an_option(prompt: str, output: str) -> str | None:
    """The one option of a multiple-choice prompt that the output repeats, when it names exactly one (an answer)."""
    _, sep, listing = prompt.rpartition("Options:")
    if not sep:
        return None
    options = [o.strip() for o in listing.split(";") if len(o.strip().split()) >= 2]
    named = [o for o in options if o.lower() in output.lower()]
    return named[0] if len(named) == 1 else None


def rule_failures(design: Design, prompt: str, output: str, *, target: str = "", similarity: float,
                  config: CriticConfig) -> dict[str, Any]:
    """Failure mode → evidence, from the deterministic checks alone."""
    found: dict[str, Any] = {}
    words = output.split()
    if len(words) < 3 or " ".join(words).lower() == " ".join(prompt.split()).lower() or _ARTIFACT.search(output) \
            or (not design.replaces and prompt.strip() and prompt.strip() in output):
        found["malformed"] = "empty, copies the prompt, or has chat artifacts"
    elif repetitive(output):
        found["malformed"] = "degenerate repetition"
    marker = _ANSWER_MARKERS.search(output)
    option = picks_an_option(prompt, output)
    if marker:
        found["answers_instead"] = f"answer marker {marker.group(0)!r}"
    elif option is not None:
        found["answers_instead"] = f"repeats the option {option[:40]!r}"
    elif _reveals_target(output, prompt, target):
        found["answers_instead"] = f"contains the reference answer {target!r}"
    elif "malformed" not in found and not guides(design, output):
        found["answers_instead"] = "a statement, not guidance: no instruction to the answerer"
    floor = config.min_similarity_rewrite if design.replaces else config.min_similarity
    if similarity < floor:
        found["drifts_from_intent"] = f"similarity to the prompt {similarity:.2f} < {floor}"
    limit = max(config.max_words, 3 * len(prompt.split())) if design.replaces else config.max_words
    items = len(_LIST_ITEM.findall(output))
    if len(words) > limit or items > config.max_list_items:
        found["over_demands"] = f"{len(words)} words (limit {limit}), {items} list items"
    if wrong_language(prompt, output):
        found["wrong_language"] = "language identification differs"
    return found


def _question_messages(design: Design, mode: str, prompt: str, output: str) -> tuple[Message, ...]:
    noun = "rewritten prompt" if design.replaces else "guidance"
    user = (f"Request:\n{prompt.strip()}\n\n{noun.capitalize()}:\n{output.strip()}\n\n"
            f"{_QUESTIONS[mode].format(noun=noun)} Answer yes or no.")
    return (Message("system", "You check prompt-writing work carefully."), Message("user", user))


def _p_yes(logprobs: Sequence[float]) -> float:
    yes, no = logprobs
    top = max(yes, no)
    return math.exp(yes - top) / (math.exp(yes - top) + math.exp(no - top))


class Critic:
    """Checks pairs of one design; `judge` (any model that can score labels) adds the calibrated LLM checks."""

    def __init__(self, design: Design, embedder: Any, *, judge: MeteredModel | None = None,
                 golden: Mapping[str, Sequence[Pair]] | None = None, config: CriticConfig | None = None) -> None:
        self.design = design
        self.embedder = embedder
        self.config = config or CriticConfig()
        use_llm = self.config.llm_checks and judge is not None and judge.model.capabilities.score
        self.judge = judge if use_llm else None
        self.thresholds: dict[str, float] = {}
        if self.judge is not None:
            reference = [p for pairs in (golden or {}).values() for p in pairs]
            self.thresholds = self._calibrate(reference)

    def _p_yes(self, pairs: Sequence[tuple[str, str]]) -> dict[str, list[float]]:
        assert self.judge is not None
        requests = [ScoringRequest(_question_messages(self.design, mode, p, o), ("yes", "no"))
                    for mode in _QUESTIONS for p, o in pairs]
        scores = self.judge.score(requests)
        n = len(pairs)
        return {mode: [_p_yes(s.logprobs) for s in scores[k * n:(k + 1) * n]] for k, mode in enumerate(_QUESTIONS)}

    def _calibrate(self, reference: Sequence[Pair]) -> dict[str, float]:
        if not reference:
            return {mode: 0.5 for mode in _QUESTIONS}
        values = self._p_yes([(p.prompt, p.output) for p in reference])
        return {mode: min(0.99, max(v) + self.config.llm_margin) for mode, v in values.items()}

    def critique(self, items: Sequence[tuple[str, str, str]]) -> list[Critique]:
        """A critique per (prompt, output, reference answer or '') item."""
        if not items:
            return []
        prompts = self.embedder.encode([p for p, _, _ in items])
        outputs = self.embedder.encode([o or " " for _, o, _ in items])
        similarity = (prompts * outputs).sum(axis=1)
        found = [rule_failures(self.design, p, o, target=t, similarity=float(s), config=self.config)
                 for (p, o, t), s in zip(items, similarity, strict=True)]
        if self.judge is not None:
            p_yes = self._p_yes([(p, o) for p, o, _ in items])
            for mode, values in p_yes.items():
                for i, value in enumerate(values):
                    if value > self.thresholds[mode] and mode not in found[i]:
                        found[i][mode] = f"LLM check: P(yes) {value:.2f} > {self.thresholds[mode]:.2f}"
        return [Critique(tuple(sorted(f)), f) for f in found]


@dataclass
class Refined:
    """The outcome of critique-and-regenerate for one item: its last output, critique and rounds used."""

    key: str
    output: str
    critique: Critique
    rounds: int
    history: list[dict[str, Any]] = field(default_factory=list)


def critique_and_regenerate(keys: Sequence[str], outputs: Sequence[str],
                            critique: Callable[[Sequence[int], Sequence[str]], list[Critique]],
                            regenerate: Callable[[Sequence[int], int], list[str]], rounds: int) -> list[Refined]:
    """Critique every output; regenerate the failures and critique again, up to `rounds` regeneration rounds.

    `critique(indices, outputs)` and `regenerate(indices, round)` work on item indices, so the loop is independent
    of models and data. Items that pass stay as they are; the rest keep their last attempt and its reasons.
    """
    results = [Refined(k, o, Critique(()), 0) for k, o in zip(keys, outputs, strict=True)]
    pending = list(range(len(keys)))
    for round_ in range(rounds + 1):
        if round_ > 0:
            for i, output in zip(pending, regenerate(pending, round_), strict=True):
                results[i].output, results[i].rounds = output, round_
        verdicts = critique(pending, [results[i].output for i in pending])
        for i, verdict in zip(pending, verdicts, strict=True):
            results[i].critique = verdict
            results[i].history.append({"round": round_, "output": results[i].output, "reasons": list(verdict.reasons)})
        pending = [i for i in pending if not results[i].critique.ok]
        if not pending:
            break
    return results
