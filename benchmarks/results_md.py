"""benchmarks/RESULTS.md: each benchmark owns one section between its own markers and rewrites only that."""

from __future__ import annotations

from pathlib import Path


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
        updated = before + block + after.lstrip("\n")
    else:
        updated = current.rstrip("\n") + "\n\n" + block
    results_md.write_text(updated, encoding="utf-8")
