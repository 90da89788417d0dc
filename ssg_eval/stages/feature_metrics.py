"""The metrics stage's edge of the feature metrics: the reference's labels in, `per_class.csv` out.

The values themselves come from `ssg_eval.metrics.feature_metrics` (pure); this module only reads
the reference batch's `labels` and writes the per-class table beside `metrics.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.errors import InputFileError
from ssg_eval.metrics.feature_metrics import feature_metrics
from ssg_eval.metrics.keys import FEATURE_METRICS, PER_CLASS
from ssg_eval.metrics.per_class import PER_CLASS_CSV
from ssg_eval.runs.io import atomic_write_text
from ssg_eval.runs.npz import load_npz, npz_keys

__all__ = ["feature_metrics_of_run", "reference_labels"]


def reference_labels(reference: Any) -> np.ndarray | None:
    """The reference batch's `labels` (one per image) when the npz has them, else None.

    Raises:
        InputFileError: a `labels` key whose length differs from `arr_0`.
    """
    if "labels" not in npz_keys(reference.path):
        return None
    labels = load_npz(reference.path, ["labels"])["labels"].reshape(-1)
    if len(labels) != reference.num_images:
        raise InputFileError(
            f"{reference.path}: `labels` holds {len(labels)} entries for {reference.num_images} "
            "images; store one class per image or drop the key"
        )
    return labels


def feature_metrics_of_run(
    cfg: Any, run_dir: Path, sample_features: dict, labels, reference, reference_features: dict
) -> dict[str, Any]:
    """`feature_metrics` for one run with its config; writes `per_class.csv` when requested."""
    wanted = [m for m in cfg.metrics.metrics if m in FEATURE_METRICS]
    if not wanted:
        return {}
    values, table = feature_metrics(
        wanted,
        sample_features,
        labels,
        reference,
        reference_features,
        reference_labels=reference_labels(reference) if PER_CLASS in wanted else None,
        fid_method=str(cfg.metrics.fid_method),
        pr_k=int(cfg.metrics.pr_k),
        pr_block_size=int(cfg.metrics.pr_block_size),
        pr_distance_dtype=str(cfg.metrics.pr_distance_dtype),
        pr_device="cpu",
    )
    if table is not None:
        atomic_write_text(Path(run_dir) / PER_CLASS_CSV, table.to_csv(index=False))
    return values
