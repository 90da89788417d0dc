"""Inception Score exactly as ADM computes it, plus checks for the class-sorted-order trap.

Splits are consecutive, unshuffled chunks of `split_size` (the last may be shorter) and the
softmax runs in float32; pure arithmetic, no file I/O, never reorders the samples.
"""

from __future__ import annotations

import numpy as np

from ssg_eval.errors import ConfigError
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

ORDER_RATIO_WARNING = 0.9  # given-order IS below 90% of a shuffled-order IS: samples look sorted


def softmax_float32(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float32 (max-subtracted), like TF's `tf.nn.softmax` in ADM's graph."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    expd = np.exp(shifted)
    return expd / expd.sum(axis=1, keepdims=True)


def _split_scores(logits: np.ndarray, split_size: int) -> list[np.float32]:
    scores = []
    for start in range(0, len(logits), split_size):
        part = softmax_float32(logits[start : start + split_size])  # (n, C) float32
        with np.errstate(divide="ignore", invalid="ignore"):
            log_part = np.log(part)
            log_marginal = np.log(np.expand_dims(np.mean(part, 0), 0))
            # 0 * log 0 := 0; identical to ADM's `part * (log part - log mean)` when part > 0
            kl = np.where(part > 0, part * (log_part - log_marginal), np.float32(0))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return scores


def inception_score(logits: np.ndarray, split_size: int = 5000) -> tuple[float, float]:
    """ADM's Inception Score: exp(mean KL(p(y|x) ‖ p(y))) per consecutive split, averaged.

    Args:
        logits: (N, C) unbiased Inception logits (ADM: pool3 @ W, C = 1008), float; the given
            order is kept (never shuffled).
        split_size: samples per split (ADM: 5000); the last split is shorter when N is not a
            multiple.

    Returns:
        `(mean, std)` over splits as Python floats; ADM reports only the mean. std is the
        population standard deviation (numpy default), 0 for a single split.

    Raises:
        ValueError: empty or non-2-D logits, non-finite values, or split_size < 1.
    """
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be (N >= 1, C), got shape {logits.shape}")
    if split_size < 1:
        raise ConfigError(f"metrics.is_split_size={split_size} must be >= 1")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain non-finite values")
    scores = _split_scores(logits, split_size)
    return float(np.mean(scores)), float(np.std(scores))


def check_class_order(labels: np.ndarray, split_size: int) -> list[str]:
    """Warn when an IS split does not hold every class (class-sorted samples: IS ≈ 60, not 300).

    Args:
        labels: (N,) integer class labels in sample order.
        split_size: the IS split size (ADM: 5000).

    Returns:
        One message per split that misses classes (empty when every split covers all classes).
        A single loud summary is also logged at WARNING level.
    """
    labels = np.asarray(labels).reshape(-1)
    num_classes = int(np.unique(labels).size)
    messages = []
    for index, start in enumerate(range(0, len(labels), split_size)):
        chunk = labels[start : start + split_size]
        present = int(np.unique(chunk).size)
        if present < num_classes:
            messages.append(
                f"IS split {index} (samples {start}..{start + len(chunk) - 1}) covers {present} of "
                f"{num_classes} classes"
            )
    if messages:
        log.warning(
            "INCEPTION SCORE ORDER TRAP: %d of %d IS splits miss classes; consecutive %d-sample "
            "splits of class-sorted samples collapse IS (62 vs 298 on the same VAR samples). "
            "Store samples in index order with label = index %% num_classes.",
            len(messages), -(-len(labels) // split_size), split_size,
        )  # fmt: skip
    return messages


def check_prediction_order(logits: np.ndarray, split_size: int, seed: int = 0) -> list[str]:
    """Label-free version of `check_class_order` for bare npz files (the ADM CLI path).

    Compares the IS of the given order with the IS of one fixed random permutation; the
    reported IS always uses the given order.

    Returns:
        A one-element list with a warning when the given-order IS is below 90% of the shuffled
        one (the samples look class-sorted), else an empty list.
    """
    logits = np.asarray(logits)
    if len(logits) <= split_size:
        return []
    given, _ = inception_score(logits, split_size)
    order = np.random.default_rng(seed).permutation(len(logits))
    shuffled, _ = inception_score(logits[order], split_size)
    if given >= ORDER_RATIO_WARNING * shuffled:
        return []
    message = (
        f"IS in the given order ({given:.4g}) is {given / shuffled:.0%} of the IS of a shuffled "
        f"order ({shuffled:.4g}): the samples look class-sorted; ADM splits consecutive "
        f"{split_size}-sample chunks, so store samples in index order (label = index % classes)"
    )
    log.warning("INCEPTION SCORE ORDER TRAP: %s", message)
    return [message]
