"""The run store's tables, as SQLAlchemy 2.0 declarative models (the migrations in `migrations/` build the same).

JSON documents are stored as text written by `json.dumps` (`JSONText`), not as the database's JSON type:
results and scores hold NaN (a split that was never scored), which PostgreSQL's `json`/`jsonb` reject,
and `jsonb` reorders keys; text keeps every record byte-for-byte what the JSON run directory would hold.
Timestamps are UTC and come back timezone-aware on SQLite too (`UTCDateTime`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Alembic's revision table, named apart from the default `alembic_version` so that prompthone and another
#: Alembic user (Optuna's RDB storage) can share one database without reading each other's revisions.
VERSION_TABLE = "prompthone_alembic_version"

RUN_STATUSES = ("running", "finished", "failed", "interrupted")


def dump_json(value: Any) -> str:
    """The one JSON encoding of the store and of exported run directories (NaN allowed, as in the JSONL files)."""
    return json.dumps(value, ensure_ascii=False, default=str)


class JSONText(TypeDecorator[Any]):
    """A JSON document kept as text: exact round trip (NaN, key order) on SQLite and PostgreSQL alike."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out (SQLite drops the zone on the way in; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


def _run_fk() -> ForeignKey:
    return ForeignKey("runs.id", ondelete="CASCADE")


class Run(Base):
    """One optimization run; `heartbeat_at`, `host` and `pid` tell a live run from one whose process died."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    method: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    seed: Mapped[int] = mapped_column(Integer)
    config: Mapped[Any] = mapped_column(JSONText)
    result: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_runs_created_at", "created_at"), Index("ix_runs_status", "status"))


class Step(Base):
    """One optimizer step: the driver's StepRecord, and the resume state when the driver checkpointed there."""

    __tablename__ = "steps"

    run_id: Mapped[str] = mapped_column(String(200), _run_fk(), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    record: Mapped[Any] = mapped_column(JSONText)
    checkpoint: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CandidateRow(Base):
    """The latest state of one candidate (upserted on every record); `extra` keeps keys beyond Candidate.to_dict()."""

    __tablename__ = "candidates"

    run_id: Mapped[str] = mapped_column(String(200), _run_fk(), primary_key=True)
    cand_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    origin: Mapped[str] = mapped_column(String(100))
    step: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[Any] = mapped_column(JSONText)
    scores: Mapped[Any] = mapped_column(JSONText)
    n_scored: Mapped[Any] = mapped_column(JSONText)
    data: Mapped[Any] = mapped_column(JSONText)
    extra: Mapped[Any | None] = mapped_column(JSONText, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExampleRow(Base):
    """A task example of a run, by split and position: the task can be rebuilt from these rows (a resume).

    Keyed by place, not by content hash: a task may hold the same input and target twice (in two splits, or
    twice in one), and each must come back. Evaluations refer to examples by `hash` (indexed).
    """

    __tablename__ = "examples"

    run_id: Mapped[str] = mapped_column(String(200), _run_fk(), primary_key=True)
    split: Mapped[str] = mapped_column(String(20), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    input: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_examples_run_hash", "run_id", "hash"),)


class Evaluation(Base):
    """One candidate's score on one example under one score key (what bandits and the report's wins/losses need)."""

    __tablename__ = "evaluations"

    run_id: Mapped[str] = mapped_column(String(200), _run_fk(), primary_key=True)
    cand_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    prediction: Mapped[str | None] = mapped_column(Text, nullable=True)


class Event(Base):
    """A method's event record; `step` = the steps completed when it was written, so a resume can drop it."""

    __tablename__ = "events"

    run_id: Mapped[str] = mapped_column(String(200), _run_fk(), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    step: Mapped[int] = mapped_column(Integer)
    data: Mapped[Any] = mapped_column(JSONText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_events_run_step", "run_id", "step"),)
