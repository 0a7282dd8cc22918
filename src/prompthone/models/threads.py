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


def default_threads() -> int:
    """`$PROMPTHONE_THREADS` when set (a positive integer), else the number of cores."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return os.cpu_count() or 1
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigError(f"${THREADS_ENV} must be a positive integer, got {text!r}")
    return threads
