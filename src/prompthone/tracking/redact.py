"""Mask credentials in anything prompthone hands to an outside tracker.

API keys live only in the environment, but a model spec or model id may carry a URL with credentials in it
(`openai:https://user:pass@host/v1/model`) or a key in its query string (`...?api_key=sk-...`). A tracking
server is shared and kept for years, so every value logged there goes through `mask_secrets` first.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://userinfo@ — the userinfo runs to the last "@" before the host's end (a password may hold an "@").
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
# ?api_key=... / &token=... / &password=... / &secret=... / &sig=... in a URL's query string.
_QUERY_SECRET = re.compile(r"(?P<name>[?&;][^=&#\s]*(?:key|token|secret|password|passwd|pwd|sig|auth)[^=&#\s]*=)"
                           r"[^&#\s]*", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with every URL's userinfo and every secret-looking query value replaced by `***`.

    >>> mask_secrets("openai:https://user:pass@host/v1/model")
    'openai:https://***@host/v1/model'
    >>> mask_secrets("http://host/v1?api_key=sk-1&x=2")
    'http://host/v1?api_key=***&x=2'
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['name']}{MASK}", text)


def mask_tree(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, tuples, strings, numbers) with every string masked."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {mask_secrets(str(k)): mask_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_tree(v) for v in value]
    return value
