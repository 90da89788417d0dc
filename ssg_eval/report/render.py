"""Write the report files: summary CSV/Markdown, per-run CSV, and the β-sweep table and plot.

This module turns tables from `report.table` into files (atomically); it must not compute metrics.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd

from ssg_eval.metrics.keys import FID, IS
from ssg_eval.report.table import collect_runs, summary_markdown, summary_table, sweep_table
from ssg_eval.runs.io import atomic_write_bytes, atomic_write_text


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


def render_report(
    results_dir: str | Path,
    *,
    stem: str,
    title: str,
    note: str = "",
    paper: dict[str, Any] | None = None,
    paper_row_of: dict[str, str] | None = None,
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
    summary = summary_table(frame, paper, paper_row_of or {})
    out = {
        "csv": atomic_write_text(results_dir / f"{stem}.csv", summary.to_csv(index=False)),
        "runs_csv": atomic_write_text(results_dir / f"{stem}_runs.csv", frame.to_csv(index=False)),
        "md": atomic_write_text(
            results_dir / f"{stem}.md", summary_markdown(summary, title, note, paper)
        ),
    }
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
