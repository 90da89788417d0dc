"""Write the report files: summary CSV/Markdown, per-run CSV, and the β-sweep table and plot.

This module turns tables from `report.table` into files (atomically); it must not compute metrics.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from ssg_eval.metrics.keys import FID, IS
from ssg_eval.report.table import (
    MARKDOWN_DIGITS,
    METRIC_LABELS,
    collect_runs,
    metric_keys,
    summary_table,
    sweep_table,
)
from ssg_eval.runs.io import atomic_write_bytes, atomic_write_text


def _fmt(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(table: pd.DataFrame, title: str, note: str, paper: dict[str, Any]) -> str:
    """Render the Table 1 view as Markdown: ours (mean ± std over seeds) | paper (quoted) | Δ."""
    lines = [f"# {title}", ""]
    if note:
        lines += [f"> {note}", ""]
    header = ["model", "guidance", "N", "seeds"]
    keys = metric_keys(table)
    for key in keys:
        header += [METRIC_LABELS[key], f"{METRIC_LABELS[key]} paper†", f"Δ{METRIC_LABELS[key]}"]
    header += ["Params", "Steps", "Time (s/img)", "Time paper†", "img/s", "precision", "commit",
               "quoted from"]  # fmt: skip
    body = []
    for _, row in table.iterrows():
        cells = [row["model_label"], row["guidance"], str(row["N"]), row["seeds"]]
        for key in keys:
            digits = MARKDOWN_DIGITS[key]
            ours = _fmt(row[key], digits)
            if row["seeds"].count(",") and not pd.isna(row.get(f"{key}_std")):
                ours += f" ± {_fmt(row[f'{key}_std'], digits)}"
            elif key == FID and not pd.isna(row.get("fid_bootstrap_std")):
                ours += f" ± {_fmt(row['fid_bootstrap_std'], digits)} (bootstrap)"
            delta = row.get(f"delta_{key}")
            delta_txt = "" if delta is None or pd.isna(delta) else f"{delta:+.{digits}f}"
            low, high = row.get(f"delta_{key}_ci_low"), row.get(f"delta_{key}_ci_high")
            if delta_txt and low is not None and not pd.isna(low) and not pd.isna(high):
                delta_txt += f" [{low:+.{digits}f}, {high:+.{digits}f}]"
            if delta_txt and row.get(f"delta_{key}_within_noise") is True:
                delta_txt += " ≈"
            paper_delta = row.get(f"paper_delta_{key}")
            if delta_txt and paper_delta is not None and not pd.isna(paper_delta):
                delta_txt += f" (paper {paper_delta:+.{digits}f})"
            cells += [ours, _fmt(row[f"paper_{key}"], digits), delta_txt]
        cells += [str(row["params"]), str(row["steps"]), _fmt(row["time_s"], 3),
                  _fmt(row["paper_time_s"], 1), _fmt(row["images_per_s"], 2),
                  str(row["precision_mode"]), str(row["commit"]),
                  _source_mark(row.get("paper_source"))]  # fmt: skip
        body.append(cells)
    lines.append(pd.DataFrame(body, columns=header).to_markdown(index=False))
    baseline = table["baseline"].iloc[0] if "baseline" in table else "baseline"
    lines += ["", *_source_lines(table, paper)]
    lines += [
        f"Δ = this row − the same model's `{baseline}` row over the same seeds (paired), with its"
        " 95% CI over seeds in brackets; ≈ marks a CI that contains 0 (within seed noise);"
        " a single seed gives no spread, so no ≈ is possible. Quoted deltas (paper ...) are"
        " given only when both rows are quoted from the same source.",
    ]
    return "\n".join(lines) + "\n"


def _source_mark(key: Any) -> str:
    if key is None or (isinstance(key, float) and pd.isna(key)):
        return ""
    return "†" if key == "default" else f"[{key}]"


def _source_lines(table: pd.DataFrame, paper: dict[str, Any]) -> list[str]:
    """Footnotes: the default source (†) and every other source a row is quoted from."""
    paper = paper or {}
    lines = ["† quoted, not re-measured: " + str(paper.get("source", "no source given")).strip()]
    used = sorted({k for k in table.get("paper_source", []) if isinstance(k, str)} - {"default"})
    sources = paper.get("sources", {}) or {}
    lines += [f"[{key}] quoted, not re-measured: {str(sources[key]).strip()}" for key in used]
    return lines


def plot_sweep(sweep: pd.DataFrame, path: Path) -> Path:
    """FID and IS against β, one line per model (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_fid, ax_is) = plt.subplots(1, 2, figsize=(9, 3.5))
    for model, group in sweep.groupby("model"):
        group = group.sort_values("beta")
        ax_fid.plot(group["beta"], group[FID], marker="o", label=model)
        ax_is.plot(group["beta"], group[IS], marker="o", label=model)
    ax_fid.set(xlabel="β", ylabel="FID ↓", title="FID vs β")
    ax_is.set(xlabel="β", ylabel="IS ↑", title="IS vs β")
    ax_fid.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def render_tables(
    results_dir: str | Path,
    *,
    stem: str,
    title: str,
    note: str = "",
    paper: dict[str, Any] | None = None,
    paper_row_of: dict[str, str] | None = None,
    baseline: str = "cfg",
    runs: list[str] | None = None,
    run_prefix: str | None = None,
    sweep_plot: bool = True,
) -> dict[str, Path]:
    """Collect runs and write `<stem>.csv`, `<stem>.md`, `<stem>_runs.csv` (and sweep files).

    Args:
        results_dir: `paths.results`.
        stem: output file stem under `results_dir`.
        title, note: Markdown heading and a note line under it.
        paper: quoted numbers (`report.paper`).
        paper_row_of: model name -> paper row key.
        baseline: guidance name the paired deltas are taken against.
        runs, run_prefix: run selection (see `collect_runs`).
        sweep_plot: write the β-sweep table and plot when runs differ in β.

    Returns:
        Written file paths by kind.

    Raises:
        FileNotFoundError: no finished run matches the selection.
    """
    results_dir = Path(results_dir)
    frame = collect_runs(results_dir, runs=runs, prefix=run_prefix)
    if frame.empty:
        raise FileNotFoundError(
            f"no finished runs (manifest.json + metrics.json) under {results_dir / 'runs'}"
            f"{' with prefix ' + run_prefix if run_prefix else ''}; run the metrics stage first"
        )
    paper = paper or {}
    summary = summary_table(frame, paper, paper_row_of or {}, baseline=baseline)
    out = {
        "csv": atomic_write_text(results_dir / f"{stem}.csv", summary.to_csv(index=False)),
        "runs_csv": atomic_write_text(results_dir / f"{stem}_runs.csv", frame.to_csv(index=False)),
        "md": atomic_write_text(
            results_dir / f"{stem}.md", summary_markdown(summary, title, note, paper)
        ),
    }
    from ssg_eval.report.per_class import write_per_class_report

    out.update(write_per_class_report(results_dir, frame, stem, baseline))  # per_class runs only
    if sweep_plot and frame["beta"].nunique() > 1:
        sweep = sweep_table(frame)
        out["sweep_csv"] = atomic_write_text(
            results_dir / f"{stem}_sweep.csv", sweep.to_csv(index=False)
        )
        out["sweep_md"] = atomic_write_text(
            results_dir / f"{stem}_sweep.md",
            f"# β sweep\n\n{sweep.to_markdown(index=False, floatfmt='.3f')}\n",
        )
        out["sweep_png"] = plot_sweep(sweep, results_dir / f"{stem}_sweep.png")
    return out
