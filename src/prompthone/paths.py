"""Where prompthone keeps files between runs (call cache, BIG-bench tasks, dequantized torch weights)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """$PROMPTHONE_CACHE_DIR, else ~/.cache/prompthone."""
    env = os.environ.get("PROMPTHONE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "prompthone"
