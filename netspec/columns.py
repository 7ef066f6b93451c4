"""Aligned text columns: the summary table and the CLI's lists (no cell ever cut)."""

from __future__ import annotations

import textwrap

FOLDED_COLUMNS = ("from", "name")  # text that wraps onto more lines in a narrow terminal
MIN_FOLDED = 12  # characters a folded column keeps


def aligned(
    header: list[str], rows: list[list[str]], right: set[int], width: int | None = None, color: bool = False
) -> list[str]:
    """The table as rich draws it (no box, two spaces between columns, the header bold in colour),
    in time linear in its cells (rich took 20 s for 10,000 rows).

    Wider than ``width``, the ``from`` and ``name`` columns wrap onto more lines; no cell is
    ever cut (rich, which fitted such tables, cut the numbers and dropped whole columns: a
    summary written to a file showed ``1,549,0…`` for 1,549,056 parameters). What is still too
    wide is left to the terminal to wrap.
    """
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    excess = 0 if width is None else sum(widths) + 2 * (len(widths) - 1) - width
    if excess > 0:
        folded = [i for i, title in enumerate(header) if title in FOLDED_COLUMNS]
        floors = [max(MIN_FOLDED, len(header[i])) for i in folded]
        level = _level([widths[i] for i in folded], floors, excess)
        for i, floor in zip(folded, floors, strict=True):
            widths[i] = min(widths[i], max(floor, level))  # a column already narrower stays so

    def cells(values: list[str]) -> list[str]:
        pairs = enumerate(zip(values, widths, strict=True))
        return [v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in pairs]

    def line(values: list[str]) -> str:
        return "  ".join(cells(values)).rstrip()

    if color:
        bold = "\x1b[1m{}\x1b[0m".format
        top = (bold(" ") + bold(" ")).join(bold(cell) for cell in cells(header))
    else:
        top = line(header)
    lines = [top]
    for values in rows:
        if all(len(v) <= w for v, w in zip(values, widths, strict=True)):
            lines.append(line(values))
            continue
        parts = [_wrapped(v, w) for v, w in zip(values, widths, strict=True)]
        for k in range(max(map(len, parts))):
            lines.append(line([cell[k] if k < len(cell) else "" for cell in parts]))
    return lines


def _level(widths: list[int], floors: list[int], excess: int) -> int:
    """The highest width to cut the widest folded columns down to (none below its floor) that
    saves ``excess`` characters: the widest give first, so ``from`` and ``name`` end up alike."""
    low, high = 0, max(widths, default=0)
    while low < high:
        mid = (low + high + 1) // 2
        saved = sum(w - min(w, max(f, mid)) for w, f in zip(widths, floors, strict=True))
        low, high = (mid, high) if saved >= excess else (low, mid - 1)
    return low


def _wrapped(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, broken after the commas of a ``from`` list where it can."""
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_on_hyphens=False) or [text[:width]]
