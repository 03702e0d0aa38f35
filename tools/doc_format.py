"""Markdown for the generated tables of README.md and docs/ (tools.doc_tables): cells, tables, values, sources."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

RESULTS = Path("benchmarks") / "results"
LINK = "<root>/"  # in a generated link: the path from the document to the repository root


def cell(value: object) -> str:
    """A table cell: pipes escaped, newlines folded."""
    return " ".join(str(value).split()).replace("|", "\\|")


def table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def literal(value: object) -> str:
    """A parameter value as YAML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return '""' if value == "" else repr(value) if isinstance(value, float) else str(value)


def bound(value: float) -> str:
    """A range bound: 40 rather than 40.0, 268435456 rather than 2.68435e+08."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def load(root: Path, name: str) -> dict | None:
    path = root / RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def source_line(name: str, result: dict) -> str:
    """Where a results table comes from: file, command, date, machine."""
    return (f"Source: [`{RESULTS / name}.json`]({LINK}{RESULTS / name}.json), "
            f"`{result['command']}`, {result['date'][:10]}, {result['machine']}.")  # fmt: skip


def ratio(value: float, ci: list[float] | None = None) -> str:
    return f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
