"""benchmarks/RESULTS.md: each benchmark owns one section between its own markers and rewrites only that."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(results_md: Path, name: str, title: str, text: str) -> None:
    """Replace section `name` of RESULTS.md (between its markers), or append it; the rest is left alone."""
    start, end = markers(name)
    block = f"{start}\n## {title}\n\n{text}{end}\n"
    current = results_md.read_text(encoding="utf-8") if results_md.exists() else "# Results\n\n"
    if start in current and end in current:
        before, _, rest = current.partition(start)
        _, _, after = rest.partition(end)
        rest = after.lstrip("\n")
        updated = before + block + ("\n" + rest if rest else "")  # the blank line before the next section stays
    else:
        updated = current.rstrip("\n") + "\n\n" + block
    results_md.write_text(updated, encoding="utf-8")


def publish_raw(results_md: Path, name: str, title: str, raw: dict[str, Any], setup: str, table: str, *,
                command_note: str = "") -> None:
    """Write section `name` of a benchmark that commits its raw results: the command that made them (with
    `command_note` and the source commit `stamp` recorded, when it did), what was measured (`setup`), the versions,
    then the table written from the raw file."""
    text = f"{command_line(raw, command_note)}\n\n{setup}\nVersions: {raw['versions']}.\n\n{table}"
    write_section(results_md, name, title, text)


def command_line(raw: dict[str, Any], note: str = "") -> str:
    """A section's first line: "Command: `…`", the source commit `stamp` recorded (when it did), then `note`."""
    commit = f" (source commit {raw['commit']})" if raw.get("commit") else ""
    return f"Command: `{raw['command']}`{commit}{note}"


def add_raw_options(parser: argparse.ArgumentParser, raw: Path) -> None:
    """The options every benchmark that commits its raw results shares: where the raw file and RESULTS.md are, and
    `--from-raw` to rewrite its section from the committed raw file without running anything."""
    parser.add_argument("--from-raw", action="store_true", help="rewrite RESULTS.md from the raw file only")
    parser.add_argument("--raw", type=Path, default=raw)
    parser.add_argument("--results-md", type=Path, default=Path(__file__).with_name("RESULTS.md"))


def source_commit() -> str | None:
    """The git commit the benchmark ran from, "+dirty" when a Python file differed from it: the package version
    stays 0.1.0 while the methods change, so a raw result is traced to its source by this. None outside a checkout."""
    root = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py"],
                               cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def stamp(raw: dict[str, Any], module: str, argv: list[str] | None) -> None:
    """Record in `raw` the command that made it, the versions it ran with (llama.cpp backends) and the source
    commit."""
    args = argv if argv is not None else sys.argv[1:]
    raw["command"] = " ".join(["python -m", module, *([shlex.join(args)] if args else [])])
    raw["versions"] = (f"prompthone {version('prompthone')}, llama-cpp-python {version('llama-cpp-python')}; "
                       f"Python {platform.python_version()}")
    raw["commit"] = source_commit()


def save_raw(raw: dict[str, Any], path: Path, indent: int | None = None) -> None:
    """Write the raw results (committed beside RESULTS.md, which cites them) through a temporary file and a rename,
    so an interrupted write leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(raw, indent=indent) + "\n", encoding="utf-8")
    os.replace(tmp, path)
