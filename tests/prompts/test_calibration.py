"""Label calibration arithmetic: a known prior flips a known argmax; a uniform prior changes nothing."""

from __future__ import annotations

import math

import pytest

from prompthone.errors import ConfigError
from prompthone.prompts.calibration import Calibration, log_softmax
from prompthone.prompts.prompt import Prompt

LABELS = ("positive", "negative")


def test_a_uniform_prior_is_the_identity_on_the_answer() -> None:
    uniform = Calibration("batch", LABELS, (math.log(0.5), math.log(0.5)), 4)
    for logprobs in ([-0.1, -2.5], [-3.0, -0.2], [-1.0, -1.0001]):
        calibrated = uniform.apply(LABELS, logprobs)
        assert max(range(2), key=lambda k: calibrated[k]) == max(range(2), key=lambda k: logprobs[k])


def test_a_known_prior_flips_a_known_argmax() -> None:
    # The prompt says "positive" to everything: p(positive) averages 0.9 over the calibration inputs.
    rows = [[math.log(0.9), math.log(0.1)], [math.log(0.95), math.log(0.05)], [math.log(0.85), math.log(0.15)]]
    cal = Calibration.estimate("contextual", LABELS, rows)
    assert [math.exp(x) for x in cal.log_prior] == pytest.approx([0.9, 0.1], abs=1e-5) and cal.n == 3
    # An input the raw model calls positive at 0.7 is, against a 0.9 prior, negative: 0.7/0.9 < 0.3/0.1.
    scores = cal.apply(LABELS, [math.log(0.7), math.log(0.3)])
    assert scores[1] > scores[0]
    assert cal.apply(LABELS, [math.log(0.97), math.log(0.03)])[0] > cal.apply(LABELS, [math.log(0.97),
                                                                                        math.log(0.03)])[1]


def test_unnormalized_and_impossible_label_scores() -> None:
    assert sum(math.exp(x) for x in log_softmax([-5.0, -6.0, -7.0])) == pytest.approx(1.0)
    assert log_softmax([-math.inf, -math.inf]) == [-math.log(2)] * 2
    cal = Calibration.estimate("batch", LABELS, [[0.0, -math.inf]])  # one label never seen: finite prior
    assert all(math.isfinite(x) for x in cal.log_prior)


def test_a_calibration_travels_with_its_prompt_and_back() -> None:
    cal = Calibration.estimate("batch", LABELS, [[-0.2, -1.8], [-0.4, -1.1]])
    prompt = Prompt("Classify.", calibration=cal)
    again = Prompt.from_dict(prompt.to_dict())
    assert again == prompt and again.calibration == cal  # the prior reads back exactly
    assert prompt.key() == Prompt("Classify.").key()  # one candidate with or without its calibration
    assert "calibration" not in Prompt("Classify.").to_dict()  # uncalibrated records are unchanged
    assert "positive 0." in cal.describe()


def test_bad_calibrations_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown calibration"):
        Calibration("platt", LABELS, (0.0, 0.0), 1)
    with pytest.raises(ConfigError, match="one prior per label"):
        Calibration("batch", LABELS, (0.0,), 1)
    with pytest.raises(ConfigError, match="not \\['a', 'b'\\]"):
        Calibration("batch", LABELS, (0.0, 0.0), 1).apply(("a", "b"), [0.0, 0.0])
    with pytest.raises(ConfigError, match="at least one input"):
        Calibration.estimate("batch", LABELS, [])
