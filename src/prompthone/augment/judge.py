"""A pairwise LLM judge with position bias controlled by asking in both orders, and the win rate it yields.

PAS (Zheng et al., 2024, §4) is scored by a judged win rate of answers with vs without augmentation (Arena-hard,
AlpacaEval 2.0). LLM judges favour a position (MT-Bench, Zheng et al., 2023, §3.3: "swap positions"), so every
item is judged twice, once with each answer as A: `first` wins only when preferred in both orders, loses only
when the other answer is preferred in both, and anything else is a tie. With a backend that can score labels,
the judge reads P("A") vs P("B") (no generation, no parsing); otherwise it generates a short reply and parses it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from prompthone.errors import ConfigError, InputError
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import GenerationRequest, Message, Model, ScoringRequest
from prompthone.run.session import Session

JudgeMode = Literal["auto", "labels", "generate"]
#: A letter the judge names ("A"/"B"), an explicit "tie", or None when its reply could not be read.
Letter = Literal["A", "B", "tie"] | None
#: Which answer one order of judging preferred, in the item's own terms; None = unreadable reply.
Preference = Literal["first", "second", "tie"] | None
Outcome = Literal["win", "tie", "loss"]

JUDGE_SYSTEM = (
    "You are a fair judge of answers written by AI assistants. Compare two answers to the same user request and "
    "decide which one is better: more helpful, more correct, and closer to what the user asked for. The order of "
    "the answers and their length must not influence you. Reply with one letter: A or B."
)
JUDGE_TEMPLATE = (
    "[User request]\n{prompt}\n\n[Answer A]\n{answer_a}\n\n[Answer B]\n{answer_b}\n\n"
    "Which answer is better, A or B? Reply with one letter."
)
LABELS = ("A", "B")
#: Enough for "A", "Answer B", "**A** is better": longer replies are read from their start.
GENERATE_TOKENS = 16


@dataclass(frozen=True)
class JudgeItem:
    """One comparison: a user prompt and two answers to it; verdicts are stated for `first`."""

    prompt: str
    first: str
    second: str


@dataclass(frozen=True)
class OrderVerdict:
    """What the judge said in one order. `first_label` is the letter `first` was shown under.

    `p_first` is P(first preferred) from label scores (labels mode; None when generating); `reply` is the
    generated text, or the normalized P(A) in labels mode, so a reader can check the reading.
    """

    first_label: Literal["A", "B"]
    preference: Preference
    p_first: float | None
    reply: str


@dataclass(frozen=True)
class Verdict:
    """An item judged in both orders: per-order verdicts, the combined outcome for `first`, and consistency.

    `score` is the mean over the two orders of P(first preferred) (labels mode only): a continuous preference
    that is exactly 0.5 for a judge that only ever looks at positions.
    """

    first_as_a: OrderVerdict
    first_as_b: OrderVerdict
    outcome: Outcome
    consistent: bool
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def combine_orders(first_as_a: Preference, first_as_b: Preference) -> tuple[Outcome, bool]:
    """(outcome for `first`, consistent): win/loss only when both orders agree, else tie (MT-Bench's swap rule).

    Consistent means both orders gave the same readable verdict (an agreed tie counts, an unreadable reply not).
    """
    consistent = first_as_a is not None and first_as_a == first_as_b
    if consistent and first_as_a == "first":
        return "win", True
    if consistent and first_as_a == "second":
        return "loss", True
    return "tie", consistent


def label_preference(letter: Letter, first_label: Literal["A", "B"]) -> Preference:
    """The letter the judge named, translated into `first`/`second` for the order it was shown in."""
    if letter is None:
        return None
    if letter == "tie":
        return "tie"
    return "first" if letter == first_label else "second"


def probability_preference(p_first: float | None) -> Preference:
    """A per-order verdict from P(first preferred): the likelier letter wins; exactly even is a tie."""
    if p_first is None or math.isnan(p_first):
        return None
    if p_first > 0.5:
        return "first"
    return "second" if p_first < 0.5 else "tie"


def normalized_first(logprob_a: float, logprob_b: float) -> float | None:
    """P(A) / (P(A) + P(B)) from two log-probabilities, stably; None when the judge gave both no mass."""
    top = max(logprob_a, logprob_b)
    if top == -math.inf:
        return None
    a, b = math.exp(logprob_a - top), math.exp(logprob_b - top)
    return a / (a + b)


# -- reading a generated verdict ---------------------------------------------------------------------------------
# Letters must be capitals (so the article "a" never counts); the words around them are matched in any case.
_NOUN = r"(?i:answer|assistant|response|option|output|choice|model)"
_STRONG = (
    re.compile(rf"(?:{_NOUN}\s+)?\b([AB])\b\s*(?i:is|was|seems|would be)?\s*(?i:better|superior|preferable|"
               r"the better|the best|more helpful|more correct|wins)"),
    # "the better answer is B", "I prefer A", "Verdict: A"; never "better than B" (that names the loser).
    re.compile(rf"(?i:better|best|winner|winning|prefer(?:red)?|choose|pick|verdict)\b(?:(?!(?i:than)\b)[^.\n])"
               rf"{{0,24}}?(?:{_NOUN}\s*)?[:\-]?\s*\(?\b([AB])\b"),
)
_LEADING = re.compile(r"^\(?([AB])\)?(?:$|\s*[.,:;!)\n-]|\s+(?i:is|wins)\b)")
_TIE = re.compile(r"(?i)\b(?:tie|tied|draw|equal|equally|neither|no preference|"
                  r"both (?:are|answers are) (?:equally )?(?:good|bad|correct|fine))\b")
_MENTION = re.compile(rf"{_NOUN}(?i:\s+is)?\s*[:\-]?\s*\(?\b([AB])\b")
_MARKUP = re.compile(r"[*_`#\[\]\"“”]")


def parse_verdict(reply: str) -> Letter:
    """The judge's choice in a generated reply: 'A', 'B', 'tie', or None when it names neither.

    Reads "A", "B.", "**B**", "[[A]]", "Answer A", "Assistant B is better", "The better answer is A",
    "tie"... In order: an explicit "X is better"/"better: X", a bare leading letter, tie words, any
    "Answer X" mention. Unreadable replies are not guessed: they count as no preference (and are reported).
    """
    text = _MARKUP.sub("", reply).strip()
    for pattern in (*_STRONG, _LEADING):
        match = pattern.search(text)
        if match:
            return "A" if match.group(1) == "A" else "B"
    if _TIE.search(text):
        return "tie"
    match = _MENTION.search(text)
    if match:
        return "A" if match.group(1) == "A" else "B"
    return None


def judge_messages(prompt: str, answer_a: str, answer_b: str) -> tuple[Message, ...]:
    """The chat the judge sees for one order: the user's request and the two answers labelled A and B."""
    user = JUDGE_TEMPLATE.format(prompt=prompt.strip(), answer_a=answer_a.strip() or "(empty answer)",
                                 answer_b=answer_b.strip() or "(empty answer)")
    return (Message("system", JUDGE_SYSTEM), Message("user", user))


class PairwiseJudge:
    """Judges pairs of answers in both orders with one model (any backend), through the call cache and a meter.

    `mode='auto'` reads label probabilities when the backend declares `capabilities.score`, else generates.

    >>> judge = PairwiseJudge(make_model("local"))                                  # doctest: +SKIP
    >>> judge.judge([JudgeItem("2+2?", "4", "5")])[0].outcome                       # doctest: +SKIP
    'win'
    """

    def __init__(self, model: Model | MeteredModel, *, mode: JudgeMode = "auto", cache: CallCache | None = None,
                 session: Session | None = None) -> None:
        self.model = (session if session is not None else Session(cache=cache)).model(model, "judge", cache=cache)
        can_score = self.model.model.capabilities.score
        if mode not in ("auto", "labels", "generate"):
            raise ConfigError(f"unknown judge mode {mode!r}; expected 'auto', 'labels' or 'generate'")
        if mode == "labels" and not can_score:
            raise ConfigError(f"judge model {self.model.id} cannot score labels (capabilities.score is false): "
                              "use mode='generate'")
        use_labels = mode == "labels" or (mode == "auto" and can_score)
        self.mode: Literal["labels", "generate"] = "labels" if use_labels else "generate"

    @property
    def id(self) -> str:
        return self.model.id

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """A verdict per item, each judged with `first` as A and with `first` as B, all in one batch."""
        chats: list[tuple[Message, ...]] = []
        for item in items:
            chats.append(judge_messages(item.prompt, item.first, item.second))
            chats.append(judge_messages(item.prompt, item.second, item.first))
        orders = self._judge_orders(chats)
        verdicts = []
        for k in range(len(items)):
            as_a, as_b = orders[2 * k], orders[2 * k + 1]
            outcome, consistent = combine_orders(as_a.preference, as_b.preference)
            score = None
            if as_a.p_first is not None and as_b.p_first is not None:
                score = (as_a.p_first + as_b.p_first) / 2
            verdicts.append(Verdict(as_a, as_b, outcome, consistent, score))
        return verdicts

    def _judge_orders(self, chats: Sequence[tuple[Message, ...]]) -> list[OrderVerdict]:
        """One OrderVerdict per chat; chats alternate `first` as A, `first` as B."""
        labels: list[Literal["A", "B"]] = ["A" if i % 2 == 0 else "B" for i in range(len(chats))]
        if self.mode == "labels":
            scores = self.model.score([ScoringRequest(messages=c, continuations=LABELS) for c in chats])
            out = []
            for label, s in zip(labels, scores, strict=True):
                p_a = normalized_first(s.logprobs[0], s.logprobs[1])
                p_first = None if p_a is None else p_a if label == "A" else 1.0 - p_a
                reply = "P(A)=n/a" if p_a is None else f"P(A)={p_a:.4f}"
                out.append(OrderVerdict(label, probability_preference(p_first), p_first, reply))
            return out
        completions = self.model.generate([GenerationRequest(messages=c, max_tokens=GENERATE_TOKENS) for c in chats])
        return [OrderVerdict(label, label_preference(parse_verdict(c.text), label), None, c.text.strip())
                for label, c in zip(labels, completions, strict=True)]


@dataclass(frozen=True)
class WinRate:
    """A comparison's summary: outcomes for `first`, the win rate (ties count half), and its 95% bootstrap CI.

    `consistency` is the fraction of items whose two orders agreed (a position-blind judge has 1.0, a judge
    that always picks A has 0.0); `unreadable` counts per-order replies that named no answer.
    """

    n: int
    wins: int
    ties: int
    losses: int
    win_rate: float
    ci_low: float
    ci_high: float
    consistency: float
    unreadable: int
    mean_score: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_OUTCOME_VALUE: dict[str, float] = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def bootstrap_ci(values: Sequence[float], *, rng: random.Random, resamples: int = 1000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `values` (resampled with replacement, `resamples` times)."""
    if not values:
        raise InputError("cannot bootstrap an empty sample")
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1.0 - level) / 2
    low = means[min(resamples - 1, max(0, math.floor(tail * resamples)))]
    high = means[min(resamples - 1, max(0, math.ceil((1.0 - tail) * resamples) - 1))]
    return low, high


def win_rate(verdicts: Sequence[Verdict], *, seed: int = 0, resamples: int = 1000) -> WinRate:
    """Summarize verdicts: win rate = (wins + ties/2) / n, with a seeded 95% bootstrap CI (AlpacaEval-style)."""
    if not verdicts:
        raise InputError("no verdicts to summarize: judge at least one item")
    n = len(verdicts)
    counts = {o: sum(v.outcome == o for v in verdicts) for o in ("win", "tie", "loss")}
    values = [_OUTCOME_VALUE[v.outcome] for v in verdicts]
    low, high = bootstrap_ci(values, rng=random.Random(seed), resamples=resamples)
    scores = [v.score for v in verdicts if v.score is not None]
    unreadable = sum((v.first_as_a.preference is None) + (v.first_as_b.preference is None) for v in verdicts)
    return WinRate(n=n, wins=counts["win"], ties=counts["tie"], losses=counts["loss"],
                   win_rate=(counts["win"] + counts["tie"] / 2) / n, ci_low=low, ci_high=high,
                   consistency=sum(v.consistent for v in verdicts) / n, unreadable=unreadable,
                   mean_score=sum(scores) / len(scores) if len(scores) == n else None)
