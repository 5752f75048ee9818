"""Plain-text tables for `slmctl`: fitted to the terminal, never shortened for pipes or ``-o wide``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import TextIO

from slm_operator.api.plan import Plan


def table_width(out: TextIO) -> int | None:
    """The width to fit a table into: $COLUMNS if set, the terminal's when writing to one, else none.

    Output to a pipe or file is never shortened (scripts read it), unless COLUMNS says so.
    """
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if out.isatty():
            return shutil.get_terminal_size().columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


MIN_SHRUNK_WIDTH = 12


def format_table(rows: Sequence[Sequence[str]], width: int | None = None, shrink: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell, two spaces apart.

    When the table is wider than ``width``, the ``shrink`` columns (the long free-text ones)
    are narrowed, widest first and to no less than 12 characters, and their cut cells end in
    an ellipsis; ``-o wide`` never shortens anything.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    if width is not None:
        excess = sum(widths) + 2 * (len(widths) - 1) - width
        for column in sorted(shrink, key=lambda c: -widths[c]):
            if excess <= 0:
                break
            narrower = max(MIN_SHRUNK_WIDTH, widths[column] - excess)
            excess -= widths[column] - narrower
            widths[column] = min(widths[column], narrower)
    lines = [
        "  ".join(_fit(cell, widths[i]).ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def _fit(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - 1] + "…"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def format_plans(plans: Sequence[Plan], *, wide: bool = False, width: int | None = None) -> str:
    """A summary table, then each model's memory table and reasons.

    ``wide`` adds the image, context length, concurrency and served name to the table.
    """
    if not plans:
        return ""
    header = ["MODEL", "RUNTIME", "TIER", "VARIANT", "QUANT", "DTYPE", "GPUS", "NEEDS/HAS GiB", "FITS"]
    if wide:
        header += ["CONTEXT", "CONCURRENCY", "SERVED-AS", "IMAGE"]
    rows = [tuple(header)]
    for p in plans:
        fits = {True: "yes", False: "no", None: "unchecked"}[p.fits]
        row = [
            f"{p.namespace}/{p.name}",
            str(p.runtime),
            p.tier,
            p.model_ref,
            p.quantization,
            p.dtype,
            str(p.gpus),
            f"{_num(p.memory.required_gib)}/{_num(p.memory.available_gib)}",
            fits,
        ]
        if wide:
            row += [str(p.context_length), str(p.max_concurrency), p.served_name, p.image]
        rows.append(tuple(row))
    parts = [format_table(rows, width=None if wide else width, shrink=(0, 3))]
    for p in plans:
        m = p.memory
        parts.append(
            f"\n{p.namespace}/{p.name}  (image {p.image}, served as {p.served_name!r}, "
            f"context {p.context_length} x {p.max_concurrency})\n"
            f"  memory GiB: weights {_num(m.weights_gib)} + kv-cache {_num(m.kv_cache_gib)} + overhead "
            f"{_num(m.overhead_gib)} = {_num(m.required_gib)} of {_num(m.available_gib)} available\n"
        )
        parts.extend(f"  - {reason}\n" for reason in p.reasons)
        parts.extend(f"  ! {warning}\n" for warning in p.warnings)
    return "".join(parts)
