"""`hf:<org>/<repo>/<file>`: resolved from a hub cache laid out as huggingface_hub lays it out (blobs/, a snapshot
symlink, refs/main), with huggingface_hub and without it, never over the network; nothing is loaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from prompthone.errors import ConfigError
from prompthone.models.hf_cache import hub_cache_dir, parse_hub_file, resolve_hub_file
from prompthone.models.spec import ModelSpec

REPO, FILE = "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf"
COMMIT = "9217f5db79a29953eb74d5343926648285ec7e67"
BLOB = "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db"


def _hub_cache(root: Path, filename: str = FILE, commit: str = COMMIT) -> Path:
    """A hub cache holding `filename` of REPO at `commit` (what main points to): the snapshot file links to its blob."""
    repo_dir = root / ("models--" + REPO.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "blobs" / BLOB).write_bytes(b"GGUF fake weights")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)  # huggingface_hub writes the hash without a newline
    link = repo_dir / "snapshots" / commit / filename
    link.parent.mkdir(parents=True)
    link.symlink_to(Path(*([".."] * (len(Path(filename).parts) + 1)), "blobs", BLOB))
    return link


@pytest.fixture(params=["huggingface_hub", "layout"])
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Resolve through huggingface_hub.try_to_load_from_cache, or by prompthone's own reading of the layout."""
    if request.param == "huggingface_hub":
        pytest.importorskip("huggingface_hub")
    else:
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` fails
    return str(request.param)


def test_a_cached_file_resolves_to_its_snapshot_path(tmp_path: Path, lookup: str) -> None:
    link = _hub_cache(tmp_path / "hub")
    path = resolve_hub_file(f"{REPO}/{FILE}", cache_dir=tmp_path / "hub")
    assert path == link and path.is_symlink()
    assert path.resolve() == (tmp_path / "hub" / f"models--{REPO.replace('/', '--')}" / "blobs" / BLOB).resolve()
    assert path.read_bytes() == b"GGUF fake weights"


def test_a_file_in_a_folder_of_the_repo_resolves(tmp_path: Path, lookup: str) -> None:
    link = _hub_cache(tmp_path / "hub", filename="q4/model.gguf")
    assert resolve_hub_file(f"{REPO}/q4/model.gguf", cache_dir=tmp_path / "hub") == link


@pytest.mark.parametrize(("env", "where"), [
    ({"HF_HUB_CACHE": "{tmp}/explicit", "HF_HOME": "{tmp}/home"}, "explicit"),
    ({"HF_HOME": "{tmp}/home"}, "home/hub"),
    ({"XDG_CACHE_HOME": "{tmp}/xdg"}, "xdg/huggingface/hub"),
])
def test_the_cache_is_found_the_way_huggingface_hub_finds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             lookup: str, env: dict[str, str], where: str) -> None:
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    assert hub_cache_dir() == tmp_path / where
    link = _hub_cache(tmp_path / where)
    assert resolve_hub_file(f"{REPO}/{FILE}") == link


def test_a_file_not_in_the_cache_says_how_to_fetch_it_and_nothing_is_downloaded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lookup: str) -> None:
    _hub_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=rf"other\.gguf of {REPO} is not in the Hugging Face cache .*hub; "
                                          rf"prompthone never downloads it: fetch it with "
                                          rf"`hf download {REPO} other\.gguf` \(unset HF_HUB_OFFLINE first\)"):
        resolve_hub_file(f"{REPO}/other.gguf", cache_dir=tmp_path / "hub")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ConfigError, match=r"never downloads it: fetch it with `hf download \S+ \S+` \(`huggingface"):
        resolve_hub_file(f"Qwen/not-cached/{FILE}", cache_dir=tmp_path / "hub")
    assert sorted(p.name for p in (tmp_path / "hub").iterdir()) == [f"models--{REPO.replace('/', '--')}"]


def test_a_snapshot_main_does_not_point_to_is_not_used(tmp_path: Path, lookup: str) -> None:
    _hub_cache(tmp_path / "hub")
    (tmp_path / "hub" / f"models--{REPO.replace('/', '--')}" / "refs" / "main").write_text("0" * 40)
    with pytest.raises(ConfigError, match="is not in the Hugging Face cache"):
        resolve_hub_file(f"{REPO}/{FILE}", cache_dir=tmp_path / "hub")


def test_hf_specs_parse_without_touching_the_cache() -> None:
    spec = ModelSpec.parse(f"hf:{REPO}/{FILE}")
    assert (spec.kind, spec.argument, spec.white_box, spec.recordable) == ("hf", f"{REPO}/{FILE}", False,
                                                                          f"hf:{REPO}/{FILE}")
    assert parse_hub_file(spec.argument).stem == "qwen2.5-0.5b-instruct-q4_k_m"
    assert parse_hub_file("org/name/dir/m.gguf").repo == "org/name"


@pytest.mark.parametrize("text", ["hf:model.gguf", "hf:org/model.gguf", "hf:org//m.gguf", "hf:org/name/../m.gguf"])
def test_an_hf_spec_without_repo_and_file_fails_when_parsed(text: str) -> None:
    with pytest.raises(ConfigError, match=r"must name a repository and a file: hf:<org>/<repo>/<file>"):
        ModelSpec.parse(text)


def test_building_an_hf_spec_not_in_the_cache_fails_before_loading(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="is not in the Hugging Face cache"):
        ModelSpec.parse(f"hf:{REPO}/{FILE}").build()


@pytest.mark.e2e
def test_an_hf_spec_loads_a_real_gguf_from_the_hub_cache_offline(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded SmolLM2 file laid out as a hub download of `HuggingFaceTB/SmolLM2-135M-Instruct-GGUF`: built
    from its `hf:` spec with HF_HUB_OFFLINE=1, it scores labels like the `local` model it is."""
    pytest.importorskip("llama_cpp")
    from prompthone.models.base import Message, ScoringRequest
    from prompthone.models.embedded import embedded_gguf_path

    repo, name = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "smollm2-135m-instruct-q4_1.gguf"
    repo_dir = tmp_path / "hub" / ("models--" + repo.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True)
    (repo_dir / "blobs" / BLOB).symlink_to(embedded_gguf_path())  # no copy of the weights
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    (repo_dir / "snapshots" / COMMIT).mkdir(parents=True)
    (repo_dir / "snapshots" / COMMIT / name).symlink_to(Path("..", "..", "blobs", BLOB))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = ModelSpec.parse(f"hf:{repo}/{name}").build(threads=2)
    try:
        assert model.name == "smollm2-135m-instruct-q4_1"
        request = ScoringRequest((Message("user", "Is the sky blue? Answer yes or no."),), ("yes", "no"))
        ((_, scored),) = list(model.score([request]))
        assert len(scored.logprobs) == 2 and all(x <= 0.0 for x in scored.logprobs)
    finally:
        model.close()
