"""Fine-tuned augmenters on disk: the metadata that ties their weights to a base GGUF, and loading them back.

`prompthone.augment.train` writes a directory with the weights (a PEFT LoRA adapter, or a full transformers
checkpoint) and `prompthone_adapter.json` *last*, so a directory without that file is an unfinished run and
is refused here. The metadata names the base GGUF by file name and `file_fingerprint`: an adapter applied to
other base weights would load without complaint and write nonsense, so the fingerprint is checked on load.
A loaded adapter's backend id carries a hash of its weight files, so the call cache never serves a base
model's (or another adapter's) replies for it. Loading one is `torch_model.load_adapter_model`: this module reads
and writes the directory only, so the torch backend depends on it and not the other way round.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError
from prompthone.models.base import file_fingerprint

METADATA_FILE = "prompthone_adapter.json"
FORMAT = "prompthone-adapter"
FORMAT_VERSION = 1
METHODS = ("lora", "full")
PAS_EXTRA = "pip install 'prompthone[torch,pas]'"
#: Old design names still accepted (adapters, pair files and command lines from before a rename) → the current name:
#: "bpo" was our own rewriter, not Cheng et al.'s BPO. Here, below the augment package, so both can read it.
RENAMED_DESIGNS = {"bpo": "rewrite"}
# Files whose bytes decide what an adapter computes: the weights, and the configs that scale or shape them.
_WEIGHT_PATTERNS = ("*.safetensors", "adapter_config.json", "config.json")


@dataclass(frozen=True)
class AdapterInfo:
    """What `prompthone_adapter.json` says about one trained adapter directory."""

    path: Path
    design: str
    method: str
    base_name: str
    base_file: str
    base_fingerprint: str
    base_path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _field(record: dict[str, Any], key: str, where: Path) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: field {key!r} is missing or empty; retrain the adapter with this version")
    return value


def read_adapter_info(adapter_dir: str | Path) -> AdapterInfo:
    """Parse and check an adapter directory's metadata (ConfigError with the reason when it is not one)."""
    directory = Path(adapter_dir).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"adapter directory not found: {directory}")
    path = directory / METADATA_FILE
    if not path.is_file():
        raise ConfigError(f"{directory} is not a finished prompthone adapter: {METADATA_FILE} is missing "
                          "(a training run writes it last; train again with `train_augmenter`)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError(f"{path} is not prompthone adapter metadata (expected \"format\": \"{FORMAT}\")")
    if record.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{path} has format_version {record.get('format_version')!r}; this prompthone reads "
                          f"version {FORMAT_VERSION}: retrain the adapter or use the prompthone that wrote it")
    base = record.get("base")
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: field 'base' is missing; retrain the adapter with this version")
    method = _field(record, "method", path)
    if method not in METHODS:
        raise ConfigError(f"{path}: unknown method {method!r}; expected one of {METHODS}")
    base_path = base.get("path")
    design = _field(record, "design", path)
    return AdapterInfo(path=directory, design=RENAMED_DESIGNS.get(design, design), method=method,
                       base_name=_field(base, "name", path), base_file=_field(base, "file", path),
                       base_fingerprint=_field(base, "fingerprint", path),
                       base_path=base_path if isinstance(base_path, str) else None, metadata=record)


def write_adapter_metadata(directory: Path, record: dict[str, Any]) -> Path:
    """Write the metadata file (temp file + rename; the trainer calls it after the weights are saved)."""
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **record}
    path = directory / METADATA_FILE
    tmp = directory / f".{METADATA_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def check_out_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Where a new adapter goes: refused when something is there already, unless `overwrite`."""
    path = Path(out_dir).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise ConfigError(f"{path} already exists and is not empty: choose another directory or pass overwrite=True")
    return path


def staging_dir(out_dir: Path) -> Path:
    """A fresh directory beside `out_dir` to write a new adapter into (an unfinished one stays recognizable)."""
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def publish_adapter(staging: Path, out_dir: Path) -> None:
    """Rename a finished staging directory to `out_dir`; an old adapter there goes only once the new one is whole."""
    old = out_dir.parent / f".{out_dir.name}.old"
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def design_of(adapter_dir: str | Path) -> str:
    """The design ('pas' or 'rewrite') an adapter was trained for, so an augmenter can use it without being told.

    An adapter whose metadata says 'bpo' (the old name of 'rewrite') is a 'rewrite' adapter.
    """
    return read_adapter_info(adapter_dir).design


def check_base(info: AdapterInfo, gguf: Path) -> None:
    """Refuse base weights other than those the adapter was trained on (same file name is not enough)."""
    found = file_fingerprint(gguf)
    if found != info.base_fingerprint:
        raise ConfigError(f"adapter {info.path} was trained on {info.base_file} (fingerprint "
                          f"{info.base_fingerprint}), but the base model given is {gguf.name} (fingerprint {found}): "
                          "load it with the GGUF it was trained on")


def weights_fingerprint(adapter_dir: Path) -> str:
    """A hash of every weight and config file of an adapter (part of its backend id, hence of cache keys)."""
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in adapter_dir.glob(pattern) if p.is_file()})
    if not any(p.suffix == ".safetensors" for p in files):
        raise ConfigError(f"{adapter_dir} holds no .safetensors weights; the adapter directory is incomplete")
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]


def merge_lora(module: Any, adapter_dir: Path) -> Any:
    """The base module with a LoRA adapter merged into its weights: as fast as the base model at inference."""
    try:
        import peft
    except ImportError as exc:
        raise ConfigError(f"loading a LoRA adapter needs peft: {PAS_EXTRA}") from exc
    return peft.PeftModel.from_pretrained(module, str(adapter_dir)).merge_and_unload()


def base_gguf_of(info: AdapterInfo) -> Path:
    """The GGUF an adapter was trained on: the embedded model when the fingerprint is its, else the stored path."""
    from prompthone.models.embedded import embedded_gguf_path

    try:
        embedded = embedded_gguf_path()
    except ConfigError:
        embedded = None
    if embedded is not None and file_fingerprint(embedded) == info.base_fingerprint:
        return embedded
    if info.base_path and Path(info.base_path).is_file():
        return Path(info.base_path)
    raise ConfigError(f"adapter {info.path} was trained on {info.base_file} (fingerprint {info.base_fingerprint}), "
                      f"which is neither the embedded model nor found at {info.base_path or '(no path stored)'}: "
                      "load it with TorchModel(<that GGUF>, adapter=...)")
