"""Plain-text tables for a terminal: columns sized to their content, numbers right-aligned."""

from __future__ import annotations

from collections.abc import Sequence

Cell = str | int | float | None


def cell(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> str:
    """``headers`` over ``rows``; numeric columns right-aligned."""
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in text)]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in text)])


def pairs(rows: Sequence[tuple[str, Cell]]) -> str:
    """``name: value`` lines, names aligned."""
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name + ':':<{width + 1}} {cell(value)}" for name, value in rows)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"
