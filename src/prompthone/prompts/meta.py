"""Meta-prompts (the prompts optimizers send to the meta model) are data files next to each method.

`fill` substitutes `{name}` fields in one pass, so example text that itself contains `{demos}` or
`{instruction}` is inserted literally and can never be expanded a second time.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Sequence
from functools import cache

from prompthone.tasks.example import Example

_FIELD = re.compile(r"\{([a-z_]+)\}")


@cache
def load_meta_prompt(name: str) -> str:
    """The text of `optimizers/meta_prompts/<name>.txt`."""
    root = importlib.resources.files("prompthone.optimizers").joinpath("meta_prompts", f"{name}.txt")
    return root.read_text(encoding="utf-8").strip()


def fill(template: str, **values: str) -> str:
    """Replace each `{field}` with its value in a single pass; unknown fields raise KeyError."""
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def format_demos(examples: list[Example] | tuple[Example, ...], *, input_label: str = "Input",
                 output_label: str = "Output") -> str:
    """Input/output pairs as a meta-prompt shows them."""
    return "\n\n".join(f"{input_label}: {e.input}\n{output_label}: {e.target}" for e in examples)


_LEADS = re.compile(r"^(?:the\s+)?(?:new\s+|rewritten\s+|improved\s+)?(?:instructions?|prompt)\b"
                    r"(?:\s+(?:was|is))?\s*(?:to\s+)?[:\-]?\s*", re.IGNORECASE)
_CUT = re.compile(r"\n\s*(?:input|output|answer|example)\s*\d*\s*:", re.IGNORECASE)


#: the length an instruction is cut to unless a method says otherwise (its published replies are short)
INSTRUCTION_CHARS = 500
#: words in a row that count as quoting an example, unless a method says otherwise
QUOTE_RUN = 4
#: for methods whose published instructions may state what the examples show (GEPA's knowledge-laden reflections,
#: MIPROv2's grounded proposals): an instruction that repeats this many words of an example in a row has copied
#: it, and is dropped (the defence against instructions injected through data, without dropping citations)
COPIED_RUN = 12


def clean_instruction(reply: str, *, forbidden: Sequence[str] = (), max_chars: int | None = INSTRUCTION_CHARS,
                      quote_run: int = QUOTE_RUN) -> str | None:
    """An instruction out of a free-text meta-model reply, or None when nothing usable is there.

    Keeps the first paragraph, drops a leading 'The instruction was:' style phrase, surrounding quotes
    and anything from a line that starts like an example ('Input:', 'Output:'), and cuts it at a word to
    `max_chars` (None: no cut, for methods whose published prompts are long guidelines). A reply that quotes any
    of the `forbidden` texts (the examples the meta model was shown; `quote_run` words in a row) is rejected:
    example text must never become part of an instruction.
    """
    text = reply.strip()
    cut = _CUT.search("\n" + text)
    if cut:
        text = ("\n" + text)[: cut.start()].strip()
    text = re.split(r"\n\s*\n", text, maxsplit=1)[0].strip()
    text = _LEADS.sub("", text, count=1).strip()
    text = text.strip("\"'`“”").strip()
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0].rstrip(",;: ") + "."
    if len(text) < 8 or not re.search(r"[A-Za-z]{3}", text):
        return None
    if quotes_any(text, forbidden, quote_run):
        return None
    return text[0].upper() + text[1:]


_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def quotes_any(text: str, sources: Sequence[str], run: int = QUOTE_RUN) -> bool:
    """True when `text` repeats a run of `run` (default 4) words from any source, or all of a shorter source of 12+
    chars."""
    words = _words(text)
    joined = " " + " ".join(words) + " "
    grams = {tuple(words[i:i + run]) for i in range(len(words) - run + 1)}
    for source in sources:
        src = _words(source)
        if len(src) >= run:
            if any(tuple(src[i:i + run]) in grams for i in range(len(src) - run + 1)):
                return True
        elif len(source.strip()) >= 12 and " " + " ".join(src) + " " in joined:
            return True
    return False


START_TAG, END_TAG = "<START>", "<END>"
_TAGGED = re.compile(r"<\s*START\s*>(.*?)(?:<\s*END\s*>|(?=<\s*START\s*>)|\Z)", re.IGNORECASE | re.DOTALL)
_ANY_TAG = re.compile(r"<\s*/?\s*(START|END)\s*>", re.IGNORECASE)


def neutralize_tags(text: str) -> str:
    """Example text shown to a meta model, with any <START>/<END> tags defanged so they cannot fake a reply."""
    return _ANY_TAG.sub(lambda m: f"[{m.group(1).lower()}]", text)


def parse_tagged(reply: str, *, limit: int | None = None) -> list[str]:
    """The non-empty items a meta model wrapped in <START> … <END> (an unclosed last item counts)."""
    items = [" ".join(m.group(1).split()) for m in _TAGGED.finditer(reply)]
    items = [item for item in items if item]
    return items[:limit] if limit is not None else items


_WRAPPER = re.compile(r"</?\s*[A-Z_]{3,}\s*>")
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def untagged_item(reply: str) -> str | None:
    """The first substantive paragraph of a reply that ignored the tags (small models often do).

    Wrapper tags like <INSTRUCTION> are removed, lead-in lines ending with ':' ('The new instruction is:')
    are skipped, and list numbering is dropped. Callers still clean and check the result.
    """
    text = _WRAPPER.sub("\n", reply)
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [ln for ln in (line.strip() for line in paragraph.splitlines()) if ln and not ln.endswith(":")]
        if lines:
            item = " ".join(_NUMBERING.sub("", ln) for ln in lines).strip()
            if item:
                return item
    return None


def usable_items(reply: str, forbidden: Sequence[str], *, instruction: bool,
                 max_chars: int | None = INSTRUCTION_CHARS, quote_run: int = QUOTE_RUN) -> list[str]:
    """Items safe to use: tagged ones, else the reply's first paragraph; nothing may quote the `forbidden` texts
    (pass none for text that is not prompt text, such as a gradient citing the errors it explains). Each item is
    cut to `max_chars` (None: kept whole)."""
    items = parse_tagged(reply)
    if not items:
        fallback = untagged_item(reply)
        items = [fallback] if fallback else []
    out = []
    for item in items:
        if instruction:
            cleaned = clean_instruction(item, forbidden=forbidden, max_chars=max_chars, quote_run=quote_run)
            if cleaned is not None:
                out.append(cleaned)
        elif len(item) >= 8 and not quotes_any(item, forbidden, quote_run):
            out.append(item if max_chars is None else item[:max_chars])
    return out
