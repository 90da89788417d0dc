"""Per-class metrics from the class labels: precision per class, intra-class FID, their summary.

Precision per class is the mean of ADM's per-sample membership over each class (no reference
labels needed); intra-class FID needs a labelled reference. Pure arithmetic on arrays and
DataFrames; the files (per_class.csv) are written by the metrics stage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

PER_CLASS_CSV = "per_class.csv"
PER_CLASS_COLUMNS = ["class", "n", "precision", "fid", "n_ref"]
SUMMARY_TOP = 5  # worst / best classes listed in metrics.json


def frechet_distance_lowrank(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance of two small feature sets (n1, n2 rows, possibly n << D), in float64.

    With Σ₁ = AᵀA and Σ₂ = BᵀB (A, B the centred rows over √(n − 1)), Σ₁Σ₂ has the non-zero
    eigenvalues of (ABᵀ)(ABᵀ)ᵀ, so tr √(Σ₁Σ₂) is the nuclear norm of the n1 × n2 matrix ABᵀ:
    exact, and O(n1·n2·D) instead of two D × D decompositions.

    Raises:
        ValueError: fewer than 2 rows on a side, different widths, or non-finite values.
    """
    x, y = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) < 2 or len(y) < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need (n1 >= 2, D) and (n2 >= 2, D) features, got {x.shape}, {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("features contain non-finite values")
    mu_x, mu_y = x.mean(0), y.mean(0)
    a, b = (x - mu_x) / np.sqrt(len(x) - 1), (y - mu_y) / np.sqrt(len(y) - 1)
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu_x - mu_y
    return float(diff.dot(diff) + np.sum(a * a) + np.sum(b * b) - 2 * nuclear)


def per_class_table(
    labels: np.ndarray,
    membership: np.ndarray,
    pool: np.ndarray | None = None,
    reference_pool: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per class present in `labels`: count, precision and (when possible) FID.

    Args:
        labels: (N,) integer class of each sample.
        membership: (N,) bool, sample inside the real manifold (`precision_membership`).
        pool: (N, D) sample features; with `reference_pool` and `reference_labels` (M,) the
            intra-class FID of class c is the Fréchet distance between its samples and the
            reference images of class c (NaN when either side has < 2 rows).
        reference_pool, reference_labels: the labelled reference; None leaves `fid` NaN.

    Returns:
        Columns `PER_CLASS_COLUMNS`, sorted by class.
    """
    labels = np.asarray(labels).reshape(-1)
    membership = np.asarray(membership, dtype=bool).reshape(-1)
    if len(labels) != len(membership) or (pool is not None and len(pool) != len(labels)):
        raise ValueError(f"labels ({len(labels)}), membership and features must have one row each")
    with_fid = pool is not None and reference_pool is not None and reference_labels is not None
    ref_labels = np.asarray(reference_labels).reshape(-1) if with_fid else None
    rows = []
    for cls in np.unique(labels):
        mine = labels == cls
        row = {"class": int(cls), "n": int(mine.sum()), "precision": float(membership[mine].mean())}
        row["fid"], row["n_ref"] = float("nan"), 0
        if with_fid:
            theirs = ref_labels == cls
            row["n_ref"] = int(theirs.sum())
            if row["n"] >= 2 and row["n_ref"] >= 2:
                row["fid"] = frechet_distance_lowrank(pool[mine], reference_pool[theirs])
        rows.append(row)
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def _ranked(table: pd.DataFrame, column: str, worst_first: bool, top: int) -> list[list[float]]:
    valid = table.dropna(subset=[column]).sort_values([column, "class"], ascending=not worst_first)
    return [
        [int(c), float(v)] for c, v in zip(valid["class"][:top], valid[column][:top], strict=True)
    ]


def per_class_summary(table: pd.DataFrame, top: int = SUMMARY_TOP) -> dict[str, Any]:
    """The `per_class` entry of metrics.json: spread, and the `top` worst and best classes.

    Worst = lowest precision / highest FID; each list holds `[class, value]` pairs.
    """
    summary: dict[str, Any] = {
        "csv": PER_CLASS_CSV,
        "classes": int(len(table)),
        "samples_per_class_min": int(table["n"].min()) if len(table) else 0,
        "samples_per_class_max": int(table["n"].max()) if len(table) else 0,
        "precision_min": float(table["precision"].min()),
        "precision_median": float(table["precision"].median()),
        "precision_max": float(table["precision"].max()),
        "worst_precision": _ranked(table, "precision", worst_first=False, top=top),
        "best_precision": _ranked(table, "precision", worst_first=True, top=top),
        "fid_available": bool(table["fid"].notna().any()),
    }
    if summary["fid_available"]:
        summary.update(
            fid_mean=float(table["fid"].mean()),
            fid_median=float(table["fid"].median()),
            worst_fid=_ranked(table, "fid", worst_first=True, top=top),
            best_fid=_ranked(table, "fid", worst_first=False, top=top),
        )
    else:
        summary["fid_note"] = (
            "per-class FID needs a reference with class labels (a `labels` key); the reference "
            "has none, so only precision per class is given"
        )
    return summary


def per_class_delta(baseline: pd.DataFrame, treated: pd.DataFrame) -> pd.DataFrame:
    """Per-class treated − baseline deltas of FID and precision, and where they oppose the mean.

    Args:
        baseline, treated: `per_class_table` outputs of a baseline run and a guided run with the
            same labels (paired: same classes, seeds).

    Returns:
        One row per class present in both: `fid_*`, `precision_*` of both runs, `delta_fid`,
        `delta_precision`, and `fid_against_mean` / `precision_against_mean`: the class's delta
        has the opposite sign of the mean delta over classes (guidance helps most classes but
        hurts this one, or the reverse).
    """
    merged = baseline.merge(treated, on="class", suffixes=("_baseline", "_treated"))
    out = pd.DataFrame({"class": merged["class"], "n": merged["n_treated"]})
    for key in ("fid", "precision"):
        out[f"{key}_baseline"] = merged[f"{key}_baseline"]
        out[f"{key}_treated"] = merged[f"{key}_treated"]
        delta = merged[f"{key}_treated"] - merged[f"{key}_baseline"]
        out[f"delta_{key}"] = delta
        mean_sign = np.sign(delta.mean()) if delta.notna().any() else 0.0
        out[f"{key}_against_mean"] = (np.sign(delta) * mean_sign < 0) & delta.notna()
    return out
