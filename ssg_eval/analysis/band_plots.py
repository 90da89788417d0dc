"""The per-band figure: paired Δ vs band with its bootstrap CI, one line per guided run.

This module owns the matplotlib side only (Agg backend, PNG written atomically); it must not
compute deltas (`analysis.bands`) or read runs.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ssg_eval.analysis.bands import ALL_BANDS
from ssg_eval.runs.io import atomic_write_bytes

__all__ = ["plot_band_deltas"]


def plot_band_deltas(table: pd.DataFrame, path: str | Path) -> Path:
    """Per model: ΔFWD per packet band (left) and Δ power ratio per radial band (right).

    Args:
        table: rows of `analysis.bands.band_deltas` with `model` and `line` (legend label)
            columns added.
        path: destination PNG (written atomically).

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(table["model"].unique())
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 3.2 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        for col, metric in enumerate(("fwd", "psd_ratio")):
            ax = axes[row][col]
            part = table[(table.model == model) & (table.metric == metric)]
            part = part[part.band != ALL_BANDS]
            for line, group in part.groupby("line", sort=True):
                x = range(len(group))
                ax.plot(x, group["delta"], marker="o", label=line)
                ax.fill_between(x, group["ci_low"], group["ci_high"], alpha=0.25)
                ax.set_xticks(list(x), list(group["band"]))
            ax.axhline(0.0, color="black", linewidth=0.8)
            what = (
                "ΔFWD per packet band (k: [k, k+1)/2^L Nyquist)"
                if metric == "fwd"
                else ("Δ power ratio to reference per radial band")
            )
            ax.set_title(f"{model}: {what}", fontsize=9)
            ax.set_xlabel("band")
            ax.set_ylabel("guided − baseline")
            ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(Path(path), buffer.getvalue())
