"""How many CPU threads an in-process model computes with: `$PROMPTHONE_THREADS`, else every core.

Two processes that each take every core run several times slower than one after the other (llama.cpp's threads
spin while they wait for each other), so whoever runs several model processes side by side (parallel test workers,
two benchmarks on one machine) gives each its share of the cores through this variable. The thread count does not
change a result: llama.cpp splits each matrix product by rows, so scores and greedy replies are identical at 1 or
N threads (measured on the embedded model: the same bytes at 1 and 2 threads).
"""

from __future__ import annotations

import os

from prompthone.errors import ConfigError

THREADS_ENV = "PROMPTHONE_THREADS"


def requested_threads(threads: int | None = None) -> int | None:
    """`threads` when given, else `$PROMPTHONE_THREADS` when set (a positive integer), else None: the backend keeps
    its own default (torch's, `llama_cpp.server`'s)."""
    if threads:
        return threads
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"${THREADS_ENV} must be a positive integer, got {text!r}")
    return count


def default_threads(threads: int | None = None) -> int:
    """`requested_threads`, else the number of cores (llama.cpp in-process has no default of its own)."""
    return requested_threads(threads) or os.cpu_count() or 1
