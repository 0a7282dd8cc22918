"""A persistent call cache: identical (model id, request) pairs are answered from SQLite, not the model.

Keyed by the SHA-256 of the model's `id` and the request's canonical JSON payload, so a re-run of the same
seeded optimization makes no new model calls. SQLite in WAL mode lets several processes share one file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from prompthone.models.base import Completion, ContinuationScores, GenerationRequest, ScoringRequest
from prompthone.paths import default_cache_dir

Request = GenerationRequest | ScoringRequest
Result = Completion | ContinuationScores


def request_key(model_id: str, request: Request) -> str:
    """The cache key: a hash of the model identity and the full request."""
    blob = json.dumps({"model": model_id, "request": request.payload()}, sort_keys=True,
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _encode(result: Result) -> str:
    if isinstance(result, Completion):
        return json.dumps({"t": "c", "text": result.text, "p": result.prompt_tokens,
                           "c": result.completion_tokens, "f": result.finish_reason})
    return json.dumps({"t": "s", "lp": list(result.logprobs), "p": result.prompt_tokens})


def _decode(blob: str) -> Result:
    data: dict[str, Any] = json.loads(blob)
    if data["t"] == "c":
        return Completion(data["text"], data["p"], data["c"], data["f"])
    return ContinuationScores(tuple(float(x) for x in data["lp"]), data["p"])


class CallCache:
    """SQLite-backed map from request key to result. Thread-safe; safe to share between processes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_dir() / "calls.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                         "result TEXT NOT NULL)")
        self._db.commit()

    def get(self, model_id: str, request: Request) -> Result | None:
        key = request_key(model_id, request)
        with self._lock:
            row = self._db.execute("SELECT result FROM calls WHERE key = ?", (key,)).fetchone()
        return _decode(row[0]) if row else None

    def put(self, model_id: str, request: Request, result: Result) -> None:
        """Store one result at once (committed), so a crash never loses a paid-for call."""
        key = request_key(model_id, request)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO calls (key, model, result) VALUES (?, ?, ?)",
                             (key, model_id, _encode(result)))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class NullCache(CallCache):
    """A cache that remembers nothing (for `--no-cache` and for measuring raw model speed)."""

    def __init__(self) -> None:
        pass

    def get(self, model_id: str, request: Request) -> Result | None:
        return None

    def put(self, model_id: str, request: Request, result: Result) -> None:
        return None

    def __len__(self) -> int:
        return 0

    def close(self) -> None:
        return None
