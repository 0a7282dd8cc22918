"""Label calibration: divide out the label prior a prompt gives the model, as part of the found prompt.

A small model asked to classify mostly answers its *prior*: with one prompt it says "positive" to almost every
input, with another "negative". Two published corrections estimate that prior and divide it out of the label
probabilities before the argmax (both are a diagonal correction, `p(y|x) / p(y)`, applied here in log space):

- **Contextual calibration** (Zhao et al., ICML 2021, "Calibrate Before Use"): the prior is the mean label
  distribution the prompt gives to *content-free* inputs ("N/A", "", "[MASK]"), three extra calls per prompt.
- **Batch calibration** (Zhou et al., ICLR 2024): the prior is the mean label distribution over a batch of
  *unlabeled* real inputs; here the first `BATCH_INPUTS` training inputs (never test inputs), one call each.

The estimated prior is data of the prompt (`Prompt.calibration`): it is saved with the prompt, shown in the
report and applied wherever the prompt is scored with label log-probabilities, on any backend that returns them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prompthone.errors import ConfigError
from prompthone.tasks.example import Example

#: what `calibration=` accepts: no calibration, contextual (content-free inputs) or batch (train inputs)
CALIBRATIONS = ("none", "contextual", "batch")
#: what a run uses when not told: none until the `auto` default is measured end to end (README, "Calibration")
DEFAULT_CALIBRATION = "none"
#: Zhao et al.'s content-free inputs
CONTENT_FREE = ("N/A", "", "[MASK]")
#: unlabeled training inputs the batch prior is estimated from (Zhou et al. use the batch at hand; we fix it)
BATCH_INPUTS = 32


def calibration_inputs(method: str, train: Sequence[Example]) -> tuple[str, ...]:
    """The inputs a prompt's label prior is estimated from under `method`: the content-free ones (contextual), the
    first `BATCH_INPUTS` training inputs (batch), none for "none"."""
    if check_calibration(method) == "none":
        return ()
    return CONTENT_FREE if method == "contextual" else tuple(e.input for e in train[:BATCH_INPUTS])


def check_calibration(method: str) -> str:
    """`method` when it is one of `CALIBRATIONS` (a ConfigError naming them otherwise)."""
    if method not in CALIBRATIONS:
        raise ConfigError(f"unknown calibration {method!r}; choose one of: {', '.join(CALIBRATIONS)}")
    return method


def log_softmax(logprobs: Sequence[float]) -> list[float]:
    """Label log-probabilities normalized over the label set (a label the model cannot produce stays -inf)."""
    top = max(logprobs)
    if not math.isfinite(top):
        return [-math.log(len(logprobs))] * len(logprobs)
    norm = top + math.log(sum(math.exp(x - top) for x in logprobs))
    return [x - norm for x in logprobs]


@dataclass(frozen=True)
class Calibration:
    """A prompt's estimated label prior: `log_prior[k]` is log p(labels[k]) under the prompt, from `n` inputs."""

    method: str
    labels: tuple[str, ...]
    log_prior: tuple[float, ...]
    n: int

    def __post_init__(self) -> None:
        check_calibration(self.method)
        if len(self.labels) != len(self.log_prior):
            raise ConfigError(f"a calibration needs one prior per label: {len(self.labels)} labels, "
                              f"{len(self.log_prior)} priors")

    @classmethod
    def estimate(cls, method: str, labels: Sequence[str], label_logprobs: Sequence[Sequence[float]]) -> Calibration:
        """The prior from the label log-probabilities the prompt gave to each calibration input: the log of the
        mean normalized probability per label (Zhao et al., Zhou et al.)."""
        if not label_logprobs:
            raise ConfigError(f"{method} calibration needs at least one input to estimate the label prior from")
        rows = [log_softmax(row) for row in label_logprobs]
        mean = [sum(math.exp(row[k]) for row in rows) / len(rows) for k in range(len(labels))]
        floor = 1e-12  # a label no input ever got: a large, finite correction, not a division by zero
        # rounded once, here: the prior read back from a saved prompt is then exactly the one estimated
        return cls(method, tuple(labels), tuple(round(math.log(max(p, floor)), 6) for p in mean), len(rows))

    def apply(self, labels: Sequence[str], logprobs: Sequence[float]) -> list[float]:
        """Calibrated label scores (log p(y|x) − log p(y), normalized first); argmax is the calibrated answer."""
        if tuple(labels) != self.labels:
            raise ConfigError(f"this calibration is for the labels {list(self.labels)}, not {list(labels)}")
        return [x - prior for x, prior in zip(log_softmax(logprobs), self.log_prior, strict=True)]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "labels": list(self.labels), "log_prior": list(self.log_prior),
                "n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            return cls(str(data["method"]), tuple(str(x) for x in data["labels"]),
                       tuple(float(x) for x in data["log_prior"]), int(data.get("n", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"a prompt's calibration needs method, labels and log_prior: {exc}") from None

    def describe(self) -> str:
        """One line for people: "batch calibration from 32 inputs: prior positive 0.81, negative 0.19"."""
        prior = ", ".join(f"{label} {math.exp(lp):.2f}" for label, lp in zip(self.labels, self.log_prior,
                                                                              strict=True))
        return f"{self.method} calibration from {self.n} inputs: prior {prior}"
