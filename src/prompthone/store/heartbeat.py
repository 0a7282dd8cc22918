"""A live run's heartbeat: a daemon thread that stamps the run's `heartbeat_at` every few seconds.

As in Optuna's RDB storage, a run that is `running` in the store may belong to a process that died (SIGKILL, a
lost machine, a power cut): nothing marked it ended. Its heartbeat tells the two apart. While the process lives
the thread writes `heartbeat_at` (and the host and pid) every `interval_s`; when it dies the stamps stop, and a
`running` run whose last stamp is older than `STALE_AFTER` intervals is *stale*: `prompthone runs` says so, and a
resume from another machine accepts it. The interval is `PROMPTHONE_HEARTBEAT_S` seconds (default 30), read by
the writer and by the readers alike so that both agree on what "stale" means.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from prompthone.errors import StoreError
from prompthone.store.schema import utcnow

if TYPE_CHECKING:
    from prompthone.store.db import RunStore
    from prompthone.store.record import RunRecord

log = logging.getLogger(__name__)

#: seconds between two stamps unless PROMPTHONE_HEARTBEAT_S says otherwise
DEFAULT_INTERVAL_S = 30.0
#: a running run is stale once its last stamp is this many intervals old
STALE_AFTER = 3


def interval_s() -> float:
    """The heartbeat interval in seconds: `PROMPTHONE_HEARTBEAT_S`, or 30; a bad value is an error, not a guess."""
    text = os.environ.get("PROMPTHONE_HEARTBEAT_S")
    if text is None or not text.strip():
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise StoreError(f"PROMPTHONE_HEARTBEAT_S={text!r}: expected a number of seconds above 0")
    return value


def is_stale(run: RunRecord, now: datetime | None = None) -> bool:
    """Whether `run` says it is running but its process has stopped stamping (see the module docstring)."""
    if run.status != "running" or run.heartbeat_at is None:
        return False
    age = (now or utcnow()) - run.heartbeat_at
    return age > timedelta(seconds=STALE_AFTER * interval_s())


class Heartbeat:
    """Stamps `run_id` every `interval_s` seconds from a daemon thread until `stop()` (idempotent).

    A failed stamp (the database briefly locked or unreachable) is logged and tried again at the next beat: the
    run itself goes on, and a run whose stamps keep failing just looks stale, which is what a reader should see.
    """

    def __init__(self, store: RunStore, run_id: str, interval: float | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.interval = interval if interval is not None else interval_s()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"prompthone-heartbeat-{run_id}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop stamping and wait for an in-flight stamp to end (so that nothing writes after the run's end)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.heartbeat(self.run_id)
            except Exception as exc:  # a beat that fails must not end the thread: the next one may work
                log.warning("heartbeat of run %s failed (tried again in %.0fs): %s", self.run_id, self.interval, exc)
