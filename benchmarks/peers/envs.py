"""One virtual environment per peer, installed from PyPI with the pinned requirements in `requirements/`.

Why separate environments: the peers pin conflicting versions (promptolution wants openai 3, DSPy and TextGrad
openai 2), pull heavy dependencies, and must never become dependencies of prompthone. An environment is rebuilt
only when its requirements file changes (a hash stamp inside it), so repeated benchmark runs start at once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

REQUIREMENTS = Path(__file__).parent / "requirements"
DEFAULT_ROOT = Path(__file__).resolve().parents[1] / ".venvs"  # benchmarks/.venvs, git-ignored
STAMP = "prompthone-requirements.sha256"


def requirements_file(env: str) -> Path:
    path = REQUIREMENTS / f"{env}.txt"
    if not path.is_file():
        raise SystemExit(f"no pinned requirements for peer environment {env!r} at {path}")
    return path


def python_of(env: str, root: Path = DEFAULT_ROOT) -> Path:
    return root / env / "bin" / "python"


def ensure_env(env: str, root: Path = DEFAULT_ROOT, log: Path | None = None) -> Path:
    """Create or update the environment `env`; returns its Python. Raises SystemExit with the pip log on failure."""
    requirements = requirements_file(env)
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    target = root / env
    stamp = target / STAMP
    python = python_of(env, root)
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    print(f"[peers] installing {env} into {target} from {requirements.name} (once; about a minute)", flush=True)
    started = time.monotonic()
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    log = log or target / "pip.log"
    env_vars = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with log.open("w") as sink:
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
                              stdout=sink, stderr=subprocess.STDOUT, env=env_vars, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"installing peer environment {env} failed (pip exit {done.returncode}); log {log}:\n{tail}")
    stamp.write_text(digest)
    print(f"[peers] {env} ready in {time.monotonic() - started:.0f} s", flush=True)
    return python


def harness_python() -> Path:
    """prompthone's own systems run with the interpreter running the harness."""
    return Path(sys.executable)
