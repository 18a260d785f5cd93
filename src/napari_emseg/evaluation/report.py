"""Markdown reports: numbers, tables, the command that made a report, and writing it."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path


def number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, ``-`` for a value not measured.

    Examples
    --------
    >>> number(0.12345), number(12.0, 1), number(None)
    ('0.123', '12.0', '-')
    """
    return "-" if value is None else f"{value:.{digits}f}"


def cell(value: object) -> str:
    """A table cell: ``|`` escaped and line breaks flattened, so no cell breaks its row.

    Examples
    --------
    >>> cell("a | b\\nc"), cell(None), cell(3)
    ('a \\\\| b c', '-', '3')
    """
    if value is None:
        return "-"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A markdown table as lines: the header, its rule, one line per row.

    Examples
    --------
    >>> print("\\n".join(markdown_table(["method", "ARE"], [["watershed", number(0.25)]])))
    | method | ARE |
    | --- | --- |
    | watershed | 0.250 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(header)} columns")
        lines.append(table_row(row))
    return lines


def table_row(cells: Sequence[object]) -> str:
    """One row of a markdown table (to print rows as they come).

    Examples
    --------
    >>> table_row(["gala", 0.25, None])
    '| gala | 0.25 | - |'
    """
    return "| " + " | ".join(cell(value) for value in cells) + " |"


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """How a report says it was made: ``.venv/bin/python scripts/NAME ARGS``.

    Examples
    --------
    >>> command_line("scripts/evaluate_propagation.py", ["--quick", "--methods", "copy,x y"])
    ".venv/bin/python scripts/evaluate_propagation.py --quick --methods 'copy,x y'"
    """
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join([".venv/bin/python", script, shlex.join(args)]).rstrip()


def write_report(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` (folders made as needed) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
