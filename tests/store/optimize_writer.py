"""One optimization run (GEPA with merge, deterministic fake model) recorded into the store named on the command
line; prints its result as JSON. Two of these run at once in test_store_concurrency."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))

from tests.optimizers.test_checkpoint_resume import SMALL, InstructionModel, _task

from prompthone.optimizers import get_method
from prompthone.run.driver import run_optimization

if __name__ == "__main__":
    store_url, run_root = sys.argv[1], sys.argv[2]
    result = run_optimization(_task(), get_method("gepa").from_options(SMALL["gepa"]), task_model=InstructionModel(),
                              seed=5, run_root=run_root, store=store_url, progress=False)
    print(json.dumps(result.to_dict(), default=str))
