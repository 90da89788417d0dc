"""The static report page: tables whose every number carries its CSV value, figures with captions.

This module turns pandas tables and figure records into `index.html` text through the jinja2
template shipped in `report/templates/` (no JavaScript, no external resource); it must not read
runs, compute numbers or write files (that is `report.assets`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ssg_eval.metrics.keys import FID
from ssg_eval.report.table import MARKDOWN_DIGITS, METRIC_LABELS, metric_keys

__all__ = ["Figure", "Number", "PageTable", "band_page_table", "render_page", "table1_page_table"]


@dataclass(frozen=True)
class Number:
    """One rendered value: `text` as shown, `value` the CSV's full-precision value (repr)."""

    text: str
    value: str
    column: str
    row: int


@dataclass(frozen=True)
class Figure:
    """One picture of the page: `src` relative to the page, one-line caption and provenance."""

    src: str
    caption: str
    source: str


@dataclass
class PageTable:
    """A table of the page: header cells and rows of cells (each a list of text / `Number`)."""

    title: str
    csv: str
    caption: str
    header: list[str]
    rows: list[list[list[Any]]] = field(default_factory=list)


def _number(table: pd.DataFrame, row: int, column: str, digits: int | None, signed: bool = False):
    value = table[column].iloc[row] if column in table else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Number("–", "nan", column, row)
    value = float(value)
    spec = (f"+.{digits}f" if signed else f".{digits}f") if digits is not None else ".4g"
    return Number(format(value, spec), repr(value), column, row)


def table1_page_table(table: pd.DataFrame, csv_name: str, caption: str) -> PageTable:
    """Table 1 as on the Markdown page: ours (mean ± seed std), paper, Δ [95 % CI] per metric."""
    keys = metric_keys(table)
    header = ["model", "guidance", "N", "seeds"]
    for key in keys:
        label = METRIC_LABELS[key]
        header += [label, f"{label} paper", f"Δ{label} [CI]"]
    page = PageTable("Table 1", csv_name, caption, header)
    for i in range(len(table)):
        row = table.iloc[i]
        cells: list[list[Any]] = [[str(row["model_label"])], [str(row["guidance"])],
                                  [str(row["N"])], [str(row["seeds"])]]  # fmt: skip
        for key in keys:
            digits = MARKDOWN_DIGITS.get(key, 3)
            ours: list[Any] = [_number(table, i, key, digits)]
            std_col = f"{key}_std"
            if std_col in table and not pd.isna(row.get(std_col)):
                ours += [" ± ", _number(table, i, std_col, digits)]
            elif key == FID and not pd.isna(row.get("fid_bootstrap_std")):
                ours += [" ± ", _number(table, i, "fid_bootstrap_std", digits), " (bootstrap)"]
            delta: list[Any] = []
            if f"delta_{key}" in table and not pd.isna(row.get(f"delta_{key}")):
                delta = [_number(table, i, f"delta_{key}", digits, signed=True)]
                if not pd.isna(row.get(f"delta_{key}_ci_low")):
                    delta += [
                        " [",
                        _number(table, i, f"delta_{key}_ci_low", digits, True),
                        ", ",
                        _number(table, i, f"delta_{key}_ci_high", digits, True),
                        "]",
                    ]
            cells += [ours, [_number(table, i, f"paper_{key}", digits)], delta]
        page.rows.append(cells)
    return page


def band_page_table(table: pd.DataFrame, csv_name: str, caption: str) -> PageTable:
    """The paired per-band deltas: pair, metric, band, baseline, guided, Δ [CI]."""
    header = ["guided run vs baseline", "metric", "band", "range", "baseline", "guided",
              "Δ [CI]", "resolved"]  # fmt: skip
    page = PageTable("Per-band deltas (paired)", csv_name, caption, header)
    for i in range(len(table)):
        row = table.iloc[i]
        page.rows.append([
            [str(row["line"])], [str(row["metric"])], [str(row["band"])], [str(row["band_range"])],
            [_number(table, i, "baseline", None)], [_number(table, i, "candidate", None)],
            [_number(table, i, "delta", None), " [", _number(table, i, "ci_low", None), ", ",
             _number(table, i, "ci_high", None), "]"],
            ["yes" if bool(row["resolved"]) else "≈ 0"],
        ])  # fmt: skip
    return page


def render_page(
    title: str,
    note: str,
    tables: Sequence[PageTable],
    sections: Sequence[tuple[str, Sequence[Figure]]],
    provenance: str,
) -> str:
    """The HTML text of the page (template `index.html.j2`, autoescaped)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("ssg_eval.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template("index.html.j2")
    return template.render(title=title, note=note, tables=tables, sections=sections,
                           provenance=provenance, Number=Number)  # fmt: skip
