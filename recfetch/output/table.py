"""The `table` format of list-like verbs, streamed row by row (SPEC §4).

On a terminal the columns are sized to it and cut with `…`, never wrapped: the widths come
from the first rows (a bounded sample), so a 100,000-row listing prints as it arrives and
never sits in memory. When stdout is not a terminal the table is plain tab-separated text
with a header line, one record per line, as gh prints it for scripts.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

SAMPLE_ROWS = 50
"""Rows read before the column widths are fixed."""
GAP = "  "
MIN_WIDTH = 8


def cell(value: Any) -> str:
    """One value as table text: empty for null, yes/no, integers without `.0`, JSON for objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return " ".join(str(value).split())  # no tab or newline may break a row


def fit(columns: Sequence[str], sample: Sequence[Sequence[str]], width: int) -> list[tuple[int, int]]:
    """(column index, width) of the columns shown in ``width`` terminal cells, in order.

    Columns are taken in the order given (their priority) at their natural width while they
    fit; a column that does not fit is cut to the room left when that is at least
    `MIN_WIDTH` cells, else left out (a later, narrower column may still fit).
    """
    layout: list[tuple[int, int]] = []
    room = width
    for i, name in enumerate(columns):
        natural = max([len(name), *(len(row[i]) for row in sample)])
        need = natural + (len(GAP) if layout else 0)
        if need <= room:
            layout.append((i, natural))
            room -= need
        elif not layout:  # even the first column is wider than the screen
            layout.append((i, max(1, room)))
            room = 0
        elif room - len(GAP) >= max(MIN_WIDTH, len(name)):
            layout.append((i, room - len(GAP)))
            room = 0
    return layout


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _line(cells: Sequence[str], layout: Sequence[tuple[int, int]]) -> str:
    parts = [_cut(cells[i], w).ljust(w) for i, w in layout]
    return GAP.join(parts).rstrip()


def stream(
    out: TextIO,
    records: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    width: int | None,
    flush_each: bool = True,
) -> int:
    """Write ``records`` as a table; ``width`` None means not a terminal (tab-separated).

    ``flush_each`` False leaves flushing to ``out``'s buffer and the caller (see `write_records`).
    """
    rows = ([cell(record.get(c)) for c in columns] for record in records)
    count = 0
    if width is None:
        first = list(itertools.islice(rows, 1))  # a listing that fails at once prints no header
        out.write("\t".join(columns) + "\n")
        out.flush()
        for row in itertools.chain(first, rows):
            out.write("\t".join(row) + "\n")
            if flush_each:
                out.flush()
            count += 1
        out.flush()
        return count
    sample = list(itertools.islice(rows, SAMPLE_ROWS))
    if not sample:
        return 0
    layout = fit(columns, sample, width)
    out.write(_line(list(columns), layout) + "\n")
    for row in itertools.chain(sample, rows):
        out.write(_line(row, layout) + "\n")
        if flush_each:
            out.flush()
        count += 1
    out.flush()
    return count
