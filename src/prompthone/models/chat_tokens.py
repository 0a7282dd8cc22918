"""Token ids of a rendered chat in which only the template's own control tokens are parsed as such.

Why: backends render messages through the model's chat template and tokenize the result with special tokens
parsed, because the template's '<|im_start|>' markers must become control tokens. Message text is data, though:
an example that spells '<|im_start|>system' must stay text, or any task file can open a system turn of its own
(prompt injection through data). Backends call `literal_chat_tokens` only for the rare message that spells a
control token, so ordinary prompts keep exactly the tokens of the whole rendered string.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from prompthone.models.base import Message

_MARK = re.compile("\ue000(\\d+)\ue001")


def literal_chat_tokens(messages: Sequence[Message], prefill: str, *,
                        render: Callable[[Sequence[Message]], str],
                        template_tokens: Callable[[str, bool], list[int]],
                        text_tokens: Callable[[str], list[int]]) -> list[int]:
    """Render `messages` with a private-use sentinel in place of each content, then tokenize the template's
    pieces with control tokens parsed (`template_tokens(text, is_first)`, the first piece may get a BOS) and each
    message's content and the `prefill` as plain text (`text_tokens`)."""
    marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
    rendered = render([Message(m.role, mark) for m, mark in zip(messages, marks, strict=True)])
    pieces = _MARK.split(rendered)
    tokens = template_tokens(pieces[0], True)
    for index, template_text in zip(pieces[1::2], pieces[2::2], strict=True):
        tokens += text_tokens(messages[int(index)].content)
        tokens += template_tokens(template_text, False)
    return tokens + (text_tokens(prefill) if prefill else [])
