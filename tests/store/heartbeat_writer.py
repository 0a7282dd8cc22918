"""A worker process for the heartbeat test: owns one running run, as `optimize` does, until it is killed.

Usage: python heartbeat_writer.py STORE. It creates a run through `RunRecorder.create` (which starts the heartbeat
thread), prints the run id and then only sleeps: the stamps the test sees come from the heartbeat thread alone.
"""

from __future__ import annotations

import sys
import time

from prompthone.run.recorder import RunRecorder
from prompthone.store import RunStore
from prompthone.tasks.example import Example, Task


def main(store_url: str) -> None:
    task = Task("beat", train=(Example("a", "b"),), dev=(Example("c", "d"),), test=())
    store = RunStore(store_url)
    recorder = RunRecorder.create(store, "beating", task=task, method="ape", seed=0, config={}, export_root=None)
    print(recorder.run_id, flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1])
