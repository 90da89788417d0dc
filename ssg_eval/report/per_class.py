"""Per-class deltas of guided runs against their baseline: `<stem>_per_class.{csv,md}`.

Reads the `per_class.csv` files the metrics stage wrote (pairs: same model and seed, baseline vs
each other guidance) and writes the comparison atomically; it never recomputes a metric.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ssg_eval.metrics.per_class import PER_CLASS_CSV, per_class_delta
from ssg_eval.runs.io import atomic_write_text

TOP = 5  # classes listed per pair in the Markdown


def per_class_comparisons(results_dir: Path, frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """`per_class_delta` rows of every (model, seed) pair whose two runs wrote `per_class.csv`.

    Args:
        results_dir: `paths.results`. frame: `collect_runs` output. baseline: guidance name.

    Returns:
        Columns model, seed, baseline_run, treated_run, guidance, then `per_class_delta`'s;
        empty when no pair has both files.
    """
    parts = []
    runs = Path(results_dir) / "runs"
    for (model, seed), group in frame.groupby(["model", "seed"], sort=True):
        base = group[group["guidance"] == baseline]
        base_csv = runs / str(base["run"].iloc[0]) / PER_CLASS_CSV if len(base) else None
        if base_csv is None or not base_csv.is_file():
            continue
        for _, row in group[group["guidance"] != baseline].iterrows():
            treated_csv = runs / str(row["run"]) / PER_CLASS_CSV
            if treated_csv.is_file():
                delta = per_class_delta(pd.read_csv(base_csv), pd.read_csv(treated_csv))
                delta.insert(0, "guidance", row["guidance"])
                delta.insert(0, "treated_run", row["run"])
                delta.insert(0, "baseline_run", base["run"].iloc[0])
                delta.insert(0, "seed", seed)
                delta.insert(0, "model", model)
                parts.append(delta)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _pair_lines(pair: pd.DataFrame) -> list[str]:
    lines = []
    for key, label, worse_first in (("fid", "FID", False), ("precision", "precision", True)):
        delta = pair[f"delta_{key}"].dropna()
        if delta.empty:
            continue
        against = int(pair[f"{key}_against_mean"].sum())
        worst = pair.dropna(subset=[f"delta_{key}"]).sort_values(
            f"delta_{key}", ascending=worse_first
        )[:TOP]
        listed = ", ".join(
            f"{int(c)} ({d:+.3g})"
            for c, d in zip(worst["class"], worst[f"delta_{key}"], strict=True)
        )
        lines.append(
            f"- Δ{label}: mean {delta.mean():+.4g} over {len(delta)} classes; {against} classes "
            f"move against the mean; worst for the guided run: {listed}"
        )
    return lines


def per_class_markdown(deltas: pd.DataFrame, baseline: str) -> str:
    """Summary per pair: mean per-class delta, classes against it, the worst classes."""
    lines = [f"# Per-class deltas against `{baseline}`", ""]
    for (model, seed, guidance), pair in deltas.groupby(["model", "seed", "guidance"], sort=True):
        lines += [f"## {model}, seed {seed}: {guidance} − {baseline}", "", *_pair_lines(pair), ""]
    lines.append(
        "Per-class values rest on the samples of one class (~50 at 50k / 1000 classes): a single "
        "class's delta is noisy, and per-class FID is biased upwards by the few samples "
        "(docs/METRICS.md, 'Per-class table'). Compare counts of classes, not single classes."
    )
    return "\n".join(lines) + "\n"


def write_per_class_report(
    results_dir: Path, frame: pd.DataFrame, stem: str, baseline: str
) -> dict[str, Path]:
    """Write `<stem>_per_class.csv` and `.md` when some pair has per-class tables, else nothing."""
    deltas = per_class_comparisons(results_dir, frame, baseline)
    if deltas.empty:
        return {}
    results_dir = Path(results_dir)
    return {
        "per_class_csv": atomic_write_text(
            results_dir / f"{stem}_per_class.csv", deltas.to_csv(index=False)
        ),
        "per_class_md": atomic_write_text(
            results_dir / f"{stem}_per_class.md", per_class_markdown(deltas, baseline)
        ),
    }
