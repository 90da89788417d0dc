"""Label and feature lint checks: labels present, class balance, IS split coverage, near-copies.

Pure functions on label and feature arrays returning `Finding`s; no file I/O, no Inception.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from ssg_eval.lint.findings import (
    IS_SPLIT_SIZE,
    NEAR_DUPLICATE_COSINE,
    SPLIT_COVERAGE_FAIL,
    Finding,
    Status,
)

_NO_LABELS = "labels are needed for the class checks"


def check_labels(labels: np.ndarray | None, num: int, source: str | None) -> Finding:
    """Labels present, one non-negative integer per image."""
    effect = (
        "without labels the class balance and the IS split coverage cannot be checked; "
        "FID and IS themselves do not need them"
    )
    if labels is None:
        return Finding("labels", Status.WARN, "no labels (keys `labels` or `arr_1`)", effect, {})
    labels = np.asarray(labels)
    numbers = {"source": source, "shape": list(labels.shape), "dtype": str(labels.dtype)}
    if labels.ndim != 1 or len(labels) != num or not np.issubdtype(labels.dtype, np.integer):
        return Finding(
            "labels",
            Status.FAIL,
            f"{source} is {labels.dtype} {labels.shape}; expected "
            f"{num} integer labels, one per image",
            effect,
            numbers,
        )
    if len(labels) and labels.min() < 0:
        return Finding(
            "labels",
            Status.FAIL,
            f"{source} holds negative labels ({labels.min()})",
            effect,
            numbers,
        )
    return Finding("labels", Status.PASS, f"{num} labels from `{source}`", effect, numbers)


def check_class_balance(labels: np.ndarray, num_classes: int | None = None) -> Finding:
    """Equal counts per class (ADM protocol: 50 per class); else how far from uniform."""
    classes = int(num_classes or (labels.max() + 1))
    counts = np.bincount(labels, minlength=classes)[:classes]
    numbers = {
        "classes": classes,
        "present": int((counts > 0).sum()),
        "min_count": int(counts.min()),
        "max_count": int(counts.max()),
    }
    effect = (
        "a class-conditional FID depends on the class mix; labels drawn at random instead "
        "of N / classes per class make FID noisier and not comparable with balanced runs"
    )
    if counts.min() == counts.max():
        return Finding(
            "class_balance",
            Status.PASS,
            f"{counts[0]} per class over {classes} classes",
            effect,
            numbers,
        )
    p_value = float(scipy.stats.chisquare(counts).pvalue)
    numbers["chi2_p_uniform"] = p_value
    kind = "consistent with labels drawn at random" if p_value > 1e-3 else "skewed"
    return Finding(
        "class_balance",
        Status.WARN,
        f"per-class counts {counts.min()}..{counts.max()} "
        f"over {classes} classes ({numbers['present']} present; {kind}, chi² p = "
        f"{p_value:.2g})",
        effect,
        numbers,
    )


def check_split_coverage(labels: np.ndarray, split_size: int = IS_SPLIT_SIZE) -> Finding:
    """Each consecutive IS split should hold every class (class-sorted files do not)."""
    present = np.unique(labels).size
    coverage = np.array(
        [
            np.unique(labels[s : s + split_size]).size / present
            for s in range(0, len(labels), split_size)
        ]
    )
    numbers = {
        "splits": len(coverage),
        "min_coverage": float(coverage.min()),
        "mean_coverage": float(coverage.mean()),
        "split_size": split_size,
    }
    effect = (
        "IS is averaged over consecutive splits; a split holding a tenth of the classes "
        "has a narrow marginal and IS collapses (about 60 instead of 300 on ImageNet)"
    )
    if coverage.min() >= 1:
        return Finding(
            "is_split_coverage",
            Status.PASS,
            f"all {len(coverage)} IS split(s) hold all {present} classes",
            effect,
            numbers,
        )
    status = Status.FAIL if coverage.min() < SPLIT_COVERAGE_FAIL else Status.WARN
    hint = (
        "the file looks class-sorted; store samples with label = index % classes"
        if status is Status.FAIL
        else "a few classes missing per split"
    )
    return Finding(
        "is_split_coverage",
        status,
        f"IS splits of {split_size} hold "
        f"{coverage.min():.1%}..{coverage.max():.1%} of the classes: {hint}",
        effect,
        numbers,
    )


def check_prediction_order(logits: np.ndarray, split_size: int = IS_SPLIT_SIZE) -> Finding:
    """Label-free stand-in for the split coverage: IS in the given vs a shuffled order."""
    from ssg_eval.metrics.inception_score import check_prediction_order as order_warnings

    effect = "class-sorted files collapse IS (consecutive splits see few classes)"
    messages = order_warnings(logits, split_size)
    status = Status.WARN if messages else Status.PASS
    text = messages[0] if messages else "IS in the given order matches a shuffled order"
    return Finding("is_split_coverage", status, text, effect, {"from": "logits"})


def near_duplicate_pairs(
    features: np.ndarray, labels: np.ndarray | None, threshold: float, block: int = 1024
) -> tuple[int, float]:
    """Pairs with cosine similarity >= threshold of mean-centred features, and the largest one.

    Within each class when labels are given (cheap), else over all pairs in row blocks.
    """
    x = np.asarray(features, np.float32)
    x = x - x.mean(0)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    groups = (
        [np.flatnonzero(labels == c) for c in np.unique(labels)]
        if labels is not None
        else [np.arange(len(x))]
    )
    pairs, largest = 0, -1.0
    for rows in groups:
        for start in range(0, len(rows), block):
            sim = x[rows[start : start + block]] @ x[rows[start:]].T  # (b, n - start)
            values = sim[np.triu(np.ones(sim.shape, dtype=bool), k=1)]  # each pair once
            if values.size:
                pairs += int((values >= threshold).sum())
                largest = max(largest, float(values.max()))
    return pairs, largest


def check_near_duplicates(
    features: np.ndarray | None,
    labels: np.ndarray | None,
    threshold: float = NEAR_DUPLICATE_COSINE,
) -> Finding:
    """Near-copies in Inception pool3 space (exact copies are `duplicates`)."""
    effect = (
        "near-copies (memorised or collapsed samples) lower diversity: recall falls and "
        "FID rises although each image may look fine"
    )
    if features is None:
        return Finding("near_duplicates", Status.PASS, "not checked (no --features)", effect, {})
    pairs, largest = near_duplicate_pairs(features, labels, threshold)
    scope = "within classes" if labels is not None else "over all pairs"
    numbers = {"pairs": pairs, "threshold": threshold, "max_cosine": largest, "scope": scope}
    status = Status.WARN if pairs else Status.PASS
    return Finding(
        "near_duplicates",
        status,
        f"{pairs} pair(s) {scope} with centred pool3 cosine >= {threshold} (largest {largest:.4f})",
        effect,
        numbers,
    )
