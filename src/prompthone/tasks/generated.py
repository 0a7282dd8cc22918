"""Built-in generated tasks: deterministic from a seed, no downloads, so tests and demos run anywhere.

The tasks are deliberately easy (small numbers, short inputs) so that a 135M-parameter model gets some
right and different prompts give visibly different scores.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import NamedTuple

from prompthone.tasks.example import Example

_NAMES = ("Tom", "Anna", "Ben", "Maria", "Sam", "Lucy", "Omar", "Mia", "Leo", "Emma", "Noah", "Zoe")
_ITEMS = ("apples", "pencils", "marbles", "stickers", "cookies", "books", "coins", "cards", "eggs",
          "balloons")


def _one_step(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        return f"{name} has {a} {item}. {name} gets {b} more. How many {item} does {name} have now?", a + b
    a, b = max(a, b), min(a, b)
    return f"{name} has {a} {item} and gives {b} away. How many {item} does {name} have left?", a - b


def _two_step(rng: random.Random) -> tuple[str, int]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    c = rng.randint(1, a + b)
    return (f"{name} has {a} {item}, buys {b} more and gives {c} away. "
            f"How many {item} does {name} have?", a + b - c)


def _groups(rng: random.Random) -> tuple[str, int]:
    item = rng.choice(_ITEMS)
    boxes, each = rng.randint(2, 5), rng.randint(2, 5)
    question = f"There are {boxes} boxes with {each} {item} in each box. How many {item} are there in total?"
    return question, boxes * each


def _share(rng: random.Random) -> tuple[str, int]:
    first, second = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    question = f"{first} has {a} {item} and {second} has {b} {item}. How many {item} do they have together?"
    return question, a + b


def make_arithmetic(n: int = 120, seed: int = 0) -> list[Example]:
    """Short arithmetic word problems (one or two steps, numbers under 50); targets are integers as text."""
    rng = random.Random(seed)
    makers = (_one_step, _two_step, _groups, _share)
    examples: list[Example] = []
    seen: set[str] = set()
    while len(examples) < n:
        maker = makers[len(examples) % len(makers)]
        question, answer = maker(rng)
        if question in seen:
            continue
        seen.add(question)
        examples.append(Example(question, str(answer), {"generator": "arithmetic", "index": len(examples),
                                                        "kind": maker.__name__.lstrip("_")}))
    rng.shuffle(examples)
    return examples


def _random_expression(rng: random.Random, depth: int) -> tuple[str, bool, bool]:
    """(text, value, is_binary) of a random expression; binary sub-expressions get '( ... )' when nested."""
    if depth == 0 or rng.random() < 0.3:
        value = rng.random() < 0.5
        if rng.random() < 0.3:
            return f"not {value}", not value, False
        return str(value), value, False
    if rng.random() < 0.2:
        text, value, binary = _random_expression(rng, depth - 1)
        return f"not {_group(text, binary)}", not value, False
    operator = rng.choice(("and", "or"))
    left_text, left, left_binary = _random_expression(rng, depth - 1)
    right_text, right, right_binary = _random_expression(rng, depth - 1)
    value = (left and right) if operator == "and" else (left or right)
    return f"{_group(left_text, left_binary)} {operator} {_group(right_text, right_binary)}", value, True


def _group(text: str, binary: bool) -> str:
    """BBH style: a nested binary expression is written '( ... )' so operator precedence never matters."""
    return f"( {text} )" if binary else text


def make_boolean_expressions(n: int = 120, seed: int = 0) -> list[Example]:
    """Boolean expressions over True/False with not/and/or, as in BIG-bench Hard; balanced True/False."""
    rng = random.Random(seed)
    examples: list[Example] = []
    seen: set[str] = set()
    while len(examples) < n:
        text, value, binary = _random_expression(rng, depth=2)
        if value != (len(examples) % 2 == 0) or not binary or text in seen:
            continue
        seen.add(text)
        meta = {"generator": "boolean_expressions", "index": len(examples)}
        examples.append(Example(text, str(value), meta))
    rng.shuffle(examples)
    return examples


_WORDS = (
    "apple", "river", "candle", "zebra", "mountain", "pencil", "orange", "garden", "violin", "table",
    "window", "lemon", "forest", "rocket", "island", "basket", "tiger", "blanket", "coffee", "dragon",
    "elbow", "feather", "guitar", "hammer", "jacket", "kettle", "ladder", "mirror", "needle", "ocean",
    "pillow", "quilt", "saddle", "tunnel", "umbrella", "valley", "walnut", "yogurt", "anchor", "butter",
)


def make_word_sorting(n: int = 120, seed: int = 0) -> list[Example]:
    """Lists of 3-5 distinct words; the target is the words sorted alphabetically, separated by spaces."""
    rng = random.Random(seed)
    examples = []
    for index in range(n):
        words = rng.sample(_WORDS, rng.randint(3, 5))
        examples.append(Example(" ".join(words), " ".join(sorted(words)),
                                {"generator": "word_sorting", "index": index}))
    return examples


_SUBJECTS = ("phone", "laptop", "blender", "movie", "film", "novel", "restaurant", "hotel", "headset",
             "jacket", "camera", "coffee maker", "series", "album", "backpack")
_POSITIVE = ("great", "excellent", "wonderful", "fantastic", "amazing", "delightful", "superb", "reliable",
             "lovely", "brilliant")
_NEGATIVE = ("terrible", "awful", "disappointing", "poor", "boring", "broken", "horrible", "useless",
             "dreadful", "mediocre")
_POSITIVE_CLAUSES = ("I would buy it again", "highly recommended", "worth every penny", "I loved it",
                     "it made my day")
_NEGATIVE_CLAUSES = ("I want my money back", "not recommended", "a waste of money", "I hated it",
                     "it ruined my evening")
_TEMPLATES = (
    "The {subject} was {adjective}.",
    "This {subject} is {adjective}, {clause}.",
    "What {a} {adjective} {subject}! {Clause}.",
    "Honestly, the {subject} felt {adjective} and {adjective2}.",
    "{Clause}: the {subject} is {adjective}.",
)


def _review(rng: random.Random, positive: bool) -> str:
    adjectives, clauses = (_POSITIVE, _POSITIVE_CLAUSES) if positive else (_NEGATIVE, _NEGATIVE_CLAUSES)
    adjective, adjective2 = rng.sample(adjectives, 2)
    clause = rng.choice(clauses)
    return rng.choice(_TEMPLATES).format(subject=rng.choice(_SUBJECTS), adjective=adjective,
                                         adjective2=adjective2, clause=clause,
                                         a="an" if adjective[0] in "aeiou" else "a",
                                         Clause=clause[0].upper() + clause[1:])


def make_sentiment_templates(n: int = 120, seed: int = 0) -> list[Example]:
    """Short template reviews of products and films, labelled positive/negative, balanced and distinct."""
    rng = random.Random(seed)
    examples: list[Example] = []
    seen: set[str] = set()
    while len(examples) < n:
        positive = len(examples) % 2 == 0
        text = _review(rng, positive)
        if text in seen:
            continue
        seen.add(text)
        label = "positive" if positive else "negative"
        examples.append(Example(text, label, {"generator": "sentiment_templates", "index": len(examples)}))
    rng.shuffle(examples)
    return examples


class GeneratedTask(NamedTuple):
    """How to build one generated task: factory, metric, labels, seed instruction and fixed output format."""

    factory: Callable[[int, int], list[Example]]
    metric: str
    labels: tuple[str, ...] | None
    instruction: str
    output_format: str
    description: str


GENERATED: dict[str, GeneratedTask] = {
    "arithmetic": GeneratedTask(
        make_arithmetic, "numeric_match", None,
        "Solve the math word problem.", "Give the final answer as a number.",
        "one- and two-step arithmetic word problems with small numbers"),
    "boolean_expressions": GeneratedTask(
        make_boolean_expressions, "label_accuracy", ("True", "False"),
        "Evaluate the boolean expression.", "Answer with one word: True or False.",
        "evaluate not/and/or expressions over True and False (as in BIG-bench Hard)"),
    "word_sorting": GeneratedTask(
        make_word_sorting, "exact_match", None,
        "Sort the words alphabetically.", "Answer with the sorted words separated by single spaces.",
        "sort 3-5 words alphabetically"),
    "sentiment_templates": GeneratedTask(
        make_sentiment_templates, "label_accuracy", ("positive", "negative"),
        "Classify the sentiment of the review.", "Answer with one word: positive or negative.",
        "short template product and film reviews, positive or negative (balanced)"),
}
