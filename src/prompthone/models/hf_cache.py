"""`hf:<org>/<repo>/<file>`: a GGUF file already in the local Hugging Face hub cache, found without the network.

prompthone never downloads here: the file is looked up in the cache the way huggingface_hub lays it out
(`models--{org}--{repo}/refs/main` holds the snapshot hash, `snapshots/<hash>/<file>` links to `blobs/<sha>`),
through `huggingface_hub.try_to_load_from_cache` when huggingface_hub is installed and by the same rule otherwise.
The cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, read when the spec is built.
A file that is not there is a ConfigError saying how to fetch it (`hf download <repo> <file>`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prompthone.errors import ConfigError

PREFIX = "hf:"


@dataclass(frozen=True)
class HubFile:
    """A file of a model repository on the hub: `repo` is `org/name`, `filename` may hold folders."""

    repo: str
    filename: str

    @property
    def stem(self) -> str:
        """The file's name without folders and `.gguf`: the model's name."""
        return self.filename.rsplit("/", 1)[-1].removesuffix(".gguf")

    @property
    def download_hint(self) -> str:
        return f"hf download {self.repo} {self.filename}"


def parse_hub_file(argument: str) -> HubFile:
    """`org/name/file.gguf` (the text after `hf:`) → HubFile; ConfigError for any other shape. Text only."""
    pieces = argument.strip("/").split("/")
    if len(pieces) < 3 or not all(pieces) or any(p in (".", "..") for p in pieces):
        raise ConfigError(f"model spec 'hf:{argument}' must name a repository and a file: hf:<org>/<repo>/<file>, "
                          "e.g. hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    return HubFile("/".join(pieces[:2]), "/".join(pieces[2:]))


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub resolves it: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")  # the latter: legacy name
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _lookup_by_layout(hub: HubFile, cache: Path, revision: str) -> Path | None:
    """What try_to_load_from_cache does for a model repository, for when huggingface_hub is not installed."""
    repo_dir = cache / ("models--" + hub.repo.replace("/", "--"))
    ref = repo_dir / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    candidate = repo_dir / "snapshots" / commit / hub.filename
    return candidate if candidate.is_file() else None


def _lookup(hub: HubFile, cache: Path, revision: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return _lookup_by_layout(hub, cache, revision)
    found = try_to_load_from_cache(hub.repo, hub.filename, cache_dir=cache, revision=revision)
    return Path(found) if isinstance(found, str) else None  # None, or the "known not to exist" sentinel


def resolve_hub_file(argument: str, *, cache_dir: Path | None = None, revision: str = "main") -> Path:
    """The local path of `hf:<argument>` in the hub cache (a snapshot path: a symlink into `blobs/`).

    Never contacts the hub, whatever $HF_HUB_OFFLINE says; a file not in the cache is a ConfigError with the
    command that fetches it.
    """
    hub = parse_hub_file(argument)
    cache = cache_dir or hub_cache_dir()
    found = _lookup(hub, cache, revision)
    if found is None or not found.is_file():
        offline = " (unset HF_HUB_OFFLINE first)" if os.environ.get("HF_HUB_OFFLINE", "").lower() in (
            "1", "true", "yes", "on") else ""
        raise ConfigError(f"{hub.filename} of {hub.repo} is not in the Hugging Face cache {cache}; prompthone never "
                          f"downloads it: fetch it with `{hub.download_hint}`{offline} "
                          f"(`huggingface-cli download` before huggingface_hub 1.0)")
    return found
