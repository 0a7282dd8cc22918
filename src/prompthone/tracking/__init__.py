"""Copies of a run for outside experiment trackers (MLflow); prompthone's run store stays the source of truth.

Nothing here imports a tracker's client until a tracker is made, so the core install needs none of them.
"""

from __future__ import annotations

from prompthone.tracking.mlflow_logger import MISSING_EXTRA, MlflowTracker
from prompthone.tracking.redact import mask_secrets

__all__ = ["MISSING_EXTRA", "MlflowTracker", "mask_secrets"]
