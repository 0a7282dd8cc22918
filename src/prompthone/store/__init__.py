"""Where runs live: the database run store (`RunStore`) and the JSON run directory (`run_dir`).

`RunStore` loads lazily: SQLAlchemy and Alembic cost ~0.3 s to import, and code that only writes a run
directory (or imports `run_dir`) should not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prompthone.errors import StoreError

if TYPE_CHECKING:
    from prompthone.store.db import RunStore
    from prompthone.store.record import RunRecord

__all__ = ["RunRecord", "RunStore", "StoreError"]


def __getattr__(name: str) -> Any:
    if name in ("RunRecord", "RunStore"):
        from prompthone.store import db

        return getattr(db, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
