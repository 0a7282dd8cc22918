"""Answer extraction from free-text model output, robust to a small model that answers in sentences.

A model asked for "positive or negative" may say "Answer: Positive.", "The sentiment is negative" or
"(A)"; these functions turn such text into the string the task's metric compares with the target.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from prompthone.tasks.example import Task

_ANSWER_PREFIX = re.compile(
    r"^\s*(?:the\s+)?(?:final\s+)?(?:answer|output|label|result)\b\s*(?:is\b)?\s*[:=\-]?\s*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’«»*"
_EDGE_PUNCTUATION = _QUOTES + ".,;:!?"
_NUMBER = re.compile(r"(?:(?<![\w.])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\d])")
_LETTER_LABEL = re.compile(r"^\(?([A-Za-z])\)?$")
_PARENTHESIZED_LETTER = re.compile(r"\(([A-Za-z])\)")
_STANDALONE_CAPITAL = re.compile(r"(?<![\w'’])([A-Z])(?![\w'’])")
_LOWERCASE_WORD = re.compile(r"\s+[a-z]")
_NUMBER_WORDS = {
    word: index for index, word in enumerate((
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen", "twenty"))
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def _strip_answer_prefix(text: str) -> str:
    """Drop a leading 'Answer:' / 'The answer is' and surrounding quotes and punctuation."""
    return _ANSWER_PREFIX.sub("", text.strip(), count=1).strip().strip(_EDGE_PUNCTUATION).strip()


def _full_match(text: str, labels: Sequence[str]) -> str | None:
    """The label the whole (cleaned) text is, ignoring case, quotes and trailing punctuation."""
    candidates = {text.strip().casefold(), _strip_answer_prefix(text).casefold()}
    for label in labels:
        if label.strip().casefold() in candidates:
            return label
    return None


def _letter_of(label: str) -> str | None:
    """'A' for the option labels 'A' or '(A)'; None for any other label."""
    match = _LETTER_LABEL.match(label.strip())
    return match.group(1).upper() if match else None


def _earliest_letter_label(text: str, labels: Sequence[str]) -> str | None:
    """For option labels like '(A)': prefer the earliest '(X)' in the text, else a standalone capital X.

    A capital 'A' or 'I' followed by a lowercase word is read as the article or pronoun, not an option.
    """
    by_letter = {letter: label for label in labels if (letter := _letter_of(label))}
    for match in _PARENTHESIZED_LETTER.finditer(text):
        if match.group(1).upper() in by_letter:
            return by_letter[match.group(1).upper()]
    for match in _STANDALONE_CAPITAL.finditer(text):
        letter = match.group(1)
        if letter in "AI" and _LOWERCASE_WORD.match(text, match.end()):
            continue
        if letter in by_letter:
            return by_letter[letter]
    return None


def _earliest_word_label(text: str, labels: Sequence[str]) -> str | None:
    """The label whose first whole-word occurrence (case-insensitive) is earliest; longer wins a tie."""
    best: tuple[int, int, str] | None = None
    for label in labels:
        pattern = r"(?<!\w)" + re.escape(label.strip()) + r"(?!\w)"
        match = re.search(pattern, text, re.IGNORECASE)
        if match is None:
            continue
        key = (match.start(), -len(label), label)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def extract_label(text: str | None, labels: Sequence[str]) -> str | None:
    """The label the model's text names, or None when it names none.

    Order of preference: the whole stripped text is a label ('Positive.', '"negative"', 'Answer: True');
    then the earliest whole-word occurrence of any label. Option labels like 'A' or '(A)' match '(A)'
    anywhere, or a standalone capital 'A' (so the article 'a' is not taken for option A).
    """
    if not text or not text.strip() or not labels:
        return None
    full = _full_match(text, labels)
    if full is not None:
        return full
    letter_labels = [label for label in labels if _letter_of(label)]
    word_labels = [label for label in labels if not _letter_of(label)]
    found = _earliest_word_label(text, word_labels) if word_labels else None
    if found is None and letter_labels:
        found = _earliest_letter_label(text, letter_labels)
    return found


def normalize_number(raw: str) -> str | None:
    """Canonical text of a number: '1,000' -> '1000', '3.0' -> '3', '-2.50' -> '-2.5'."""
    try:
        value = Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_number(text: str | None) -> str | None:
    """The last number in the text, normalized; number words up to 'twenty' count when no digits appear."""
    if not text:
        return None
    matches = _NUMBER.findall(text)
    if matches:
        return normalize_number(matches[-1])
    words = _NUMBER_WORD.findall(text)
    return str(_NUMBER_WORDS[words[-1].lower()]) if words else None


def extract_text(text: str | None) -> str:
    """The first non-empty line, without a leading 'Answer:' and without surrounding quotes."""
    if not text:
        return ""
    for line in text.splitlines():
        if line.strip():
            cleaned = _ANSWER_PREFIX.sub("", line.strip(), count=1).strip()
            return cleaned.strip(_QUOTES).strip()
    return ""


def extract_answer(task: Task, text: str | None) -> str | None:
    """Extract the answer the task's metric expects: a label, a number, or the first line of text."""
    if text is None:
        return None
    if task.labels:
        return extract_label(text, task.labels)
    if task.metric == "numeric_match":
        return extract_number(text)
    answer = extract_text(text)
    return answer or None
