"""Exact checks of the data pipeline's pure parts: sampling, ratings, critic rules, the regenerate loop, I/O."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from prompthone.augment.critic import (
    CriticConfig,
    Critique,
    critique_and_regenerate,
    picks_an_option,
    repetitive,
    rule_failures,
)
from prompthone.augment.designs import PAS, REWRITE, get_design
from prompthone.augment.embeddings import sample_per_cluster
from prompthone.augment.generate import clean_output, few_shot_messages, generation_request, shots_for
from prompthone.augment.golden import golden_path, load_golden
from prompthone.augment.pairs import Pair, read_pairs, write_pairs
from prompthone.augment.pipeline import PipelineConfig
from prompthone.augment.quality import expected_rating, parse_rating, rule_rejection
from prompthone.errors import ConfigError, InputError


def test_designs_apply_complement_or_rewrite() -> None:
    assert PAS.apply("Write a poem.", " Use rhyme. ") == "Write a poem.\n\nUse rhyme."
    assert REWRITE.apply("Write a poem.", "Write a rhyme about the sea.") == "Write a rhyme about the sea."
    assert PAS.apply("Write a poem.", "  ") == "Write a poem."
    assert [m.role for m in PAS.messages("x")] == ["system", "user"]
    with pytest.raises(ConfigError, match="unknown augmentation design"):
        get_design("opro")


def test_old_design_name_bpo_means_rewrite(tmp_path: Path) -> None:
    """`rewrite` was called 'bpo' (a misleading name: it is our own rewriter, not Cheng et al.'s BPO)."""
    assert REWRITE.name == "rewrite" and get_design("bpo") is REWRITE and get_design(" BPO ") is REWRITE
    assert golden_path("bpo") == golden_path("rewrite") and golden_path("rewrite").name == "rewrite.jsonl"
    assert {p.design for ps in load_golden("bpo").values() for p in ps} == {"rewrite"}
    config = PipelineConfig(designs=("pas", "bpo"), golden={"bpo": "mine.jsonl"})
    assert config.designs == ("pas", "rewrite") and config.golden == {"rewrite": "mine.jsonl"}
    old = tmp_path / "pairs.jsonl"
    old.write_text('{"prompt": "p", "output": "o", "design": "bpo"}\n{"prompt": "q", "output": "r"}\n',
                   encoding="utf-8")
    assert [p.design for p in read_pairs(old)] == ["rewrite", "pas"]


def test_sample_per_cluster_caps_each_cluster_in_corpus_order() -> None:
    clusters = [0, 0, 0, 0, 1, 2, 2]
    chosen = sample_per_cluster(clusters, 2, random.Random(0))
    assert chosen == sorted(chosen)
    assert [clusters[i] for i in chosen].count(0) == 2
    assert 4 in chosen and {5, 6} <= set(chosen)  # small clusters are kept whole
    assert chosen == sample_per_cluster(clusters, 2, random.Random(0))
    with pytest.raises(ConfigError):
        sample_per_cluster(clusters, 0, random.Random(0))


def test_quality_rules_and_ratings() -> None:
    assert rule_rejection("Hi there") == "too_short"
    assert rule_rejection("word " * 400) == "too_long"
    assert rule_rejection("1, 2, 3, 4, 5, 6 ; [] {}") == "not_text"
    assert rule_rejection("Explain how a rainbow forms.") is None
    uniform = [math.log(0.2)] * 5
    assert expected_rating(uniform) == pytest.approx(3.0)
    assert expected_rating([-50, -50, -50, -50, 0.0]) == pytest.approx(5.0, abs=1e-6)
    assert parse_rating("I'd say 4/5.") == 4.0 and parse_rating("no idea") is None


def test_critic_rules_catch_each_failure_mode() -> None:
    config = CriticConfig()

    def fails(prompt: str, output: str, *, target: str = "", similarity: float = 0.5, design=PAS) -> set[str]:
        return set(rule_failures(design, prompt, output, target=target, similarity=similarity, config=config))

    good = "Add the two numbers column by column and state the sum clearly."
    assert fails("What is 17 + 25?", good) == set()
    assert fails("What is 17 + 25?", "The answer is 42.") == {"answers_instead"}
    assert fails("What is 17 + 25?", "Add them: you get 42 in total.", target="42") == {"answers_instead"}
    assert fails("Pick one. Options: the red house; the blue car", "It is the blue car, clearly.") \
        == {"answers_instead"}
    assert fails("What is 17 + 25?", good, similarity=0.05) == {"drifts_from_intent"}
    assert fails("What is 17 + 25?", " ".join(["Explain each step in detail"] * 14)) >= {"over_demands"}
    assert fails("Explain how rainbows form in the sky.",
                 "Erkläre die Lichtbrechung im Regentropfen Schritt für Schritt und nenne die Farben.") \
        == {"wrong_language"}
    assert fails("What is 17 + 25?", "ok") == {"malformed"}
    assert fails("What is 17 + 25?", "<|im_start|>assistant: add them") >= {"malformed"}
    assert "malformed" in fails("Rate this review.", "The review is positive. " * 8)
    # A rewrite must stay close to the request, a complement need not.
    assert fails("Summarize the text.", "Summarize the text below in three sentences.", similarity=0.3,
                 design=REWRITE) == {"drifts_from_intent"}


def test_repetition_and_option_helpers() -> None:
    assert repetitive("the cat sat " * 6)
    assert not repetitive("Explain the causes, then give two examples and a short conclusion.")
    assert picks_an_option("Which? Options: big red dog; small blue cat", "Say small blue cat.") == "small blue cat"
    assert picks_an_option("Which? Options: big red dog; small blue cat", "Compare big red dog and small blue cat") \
        is None
    assert picks_an_option("No options here.", "anything") is None


def test_critique_and_regenerate_keeps_fixed_pairs_and_reports_the_rest() -> None:
    # Item 0 passes at once; item 1 is fixed by the first regeneration; item 2 never is.
    def critique(indices, outputs):
        return [Critique(()) if o.startswith("good") else Critique(("answers_instead",)) for o in outputs]

    calls: list[tuple[list[int], int]] = []

    def regenerate(indices, round_):
        calls.append((list(indices), round_))
        return [f"good {i}" if i == 1 else f"bad {i} r{round_}" for i in indices]

    results = critique_and_regenerate(["a", "b", "c"], ["good 0", "bad 1", "bad 2"], critique, regenerate, rounds=2)
    assert calls == [([1, 2], 1), ([2], 2)]
    assert [(r.output, r.rounds, r.critique.ok) for r in results] == [
        ("good 0", 0, True), ("good 1", 1, True), ("bad 2 r2", 2, False)]
    assert [h["reasons"] for h in results[2].history] == [["answers_instead"]] * 3
    assert critique_and_regenerate(["a"], ["bad"], critique, regenerate, rounds=0)[0].rounds == 0


def test_generation_requests_show_golden_shots_in_chat_form() -> None:
    golden = load_golden("pas")
    assert sum(len(v) for v in golden.values()) == 24 and len(golden) == 12
    shots = shots_for("math", golden)
    messages = few_shot_messages(PAS, "What is 3 * 7?", shots)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[-1].content == "What is 3 * 7?"
    greedy = generation_request(PAS, "x", shots, key="k", round_=0)
    sampled = generation_request(PAS, "x", shots, key="k", round_=1)
    assert greedy.temperature == 0 and greedy.seed is None
    assert sampled.temperature > 0 and sampled.seed == generation_request(PAS, "x", shots, key="k", round_=1).seed
    assert shots_for("nonexistent", golden)  # falls back to other categories' pairs
    assert clean_output('Complement: "Show each step."<|im_end|>junk') == "Show each step."


def test_pairs_round_trip_and_bad_lines_name_file_line_field(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, [Pair("p", "o", "qa", "pas", {"id": 1})])
    assert read_pairs(path) == [Pair("p", "o", "qa", "pas", {"id": 1})]
    path.write_text('{"prompt": "p", "output": "o"}\n{"prompt": "", "output": "o"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"pairs.jsonl:2: field 'prompt'"):
        read_pairs(path)
    path.write_text('{"prompt": "p", "output": "o"}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"pairs.jsonl:2: invalid JSON"):
        read_pairs(path)
    bad_golden = tmp_path / "golden.jsonl"
    bad_golden.write_text('{"prompt": "p", "output": "o", "category": "poetry"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="unknown category 'poetry'"):
        load_golden("pas", bad_golden)


def test_guidance_cue_separates_guidance_from_statements() -> None:
    from prompthone.augment.critic import guides

    assert guides(PAS, "Trace the loop one iteration at a time, then give the full output.")
    assert guides(PAS, "The answer should name the shortest person and justify it.")
    assert not guides(PAS, "314 divided by 157 equals 2.3333333333333333.")
    assert not guides(PAS, "The person with dark hair is the answer.")
    assert guides(REWRITE, "Which of these numbers is prime: 4, 7 or 9?")  # a rewritten request may be a question
    assert guides(PAS, "Übersetze den Satz genau und natürlich ins Englische und gib nur die Übersetzung aus.")
    for design in ("pas", "rewrite"):  # our golden pairs pass every rule
        for pairs in load_golden(design).values():
            for pair in pairs:
                assert rule_failures(get_design(design), pair.prompt, pair.output, similarity=0.9,
                                     config=CriticConfig()) == {}, pair
