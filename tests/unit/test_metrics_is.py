"""Inception Score: closed forms, ADM's formula, torch-fidelity, and the class-order trap."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from ssg_eval.metrics.inception_score import (
    check_class_order,
    check_prediction_order,
    inception_score,
)


def adm_inception_score(logits: np.ndarray, split_size: int = 5000) -> float:
    """ADM evaluator.py compute_inception_score, transcribed (float32 softmax, numpy splits)."""
    logits = logits.astype(np.float32)
    shifted = logits - logits.max(axis=1, keepdims=True)
    preds = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i : i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return float(np.mean(scores))


def random_logits(num: int, classes: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(num, classes)) * 3).astype(np.float32)


def test_uniform_predictions_give_one():
    mean, std = inception_score(np.zeros((100, 1008), dtype=np.float32), split_size=30)
    assert mean == 1.0 and std == 0.0


def test_balanced_one_hot_gives_number_of_classes():
    labels = np.arange(200) % 10
    logits = np.full((200, 10), -60.0, dtype=np.float32)
    logits[np.arange(200), labels] = 60.0
    mean, std = inception_score(logits, split_size=50)
    assert mean == pytest.approx(10.0, rel=1e-5) and std == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize(("num", "split_size"), [(1234, 500), (1000, 1000), (999, 250)])
def test_identical_to_adm_formula(num, split_size):
    logits = random_logits(num, 1008, seed=num)
    mean, _ = inception_score(logits, split_size)
    assert mean == adm_inception_score(logits, split_size)


def _one_hot_logits(labels: np.ndarray, classes: int) -> np.ndarray:
    logits = np.full((len(labels), classes), -60.0, dtype=np.float32)
    logits[np.arange(len(labels)), labels] = 60.0
    return logits


def test_last_split_is_shorter():
    # Closed form: balanced one-hot predictions over c classes score exactly c per split. Splits
    # of 500 over 10 and 5 classes, then a short last split of 100 over 2 classes: ADM's
    # consecutive chunks give (10 + 5 + 2) / 3; dropping or padding the short split, or cutting
    # N into equal parts, gives something else.
    labels = np.concatenate([np.arange(500) % 10, np.arange(500) % 5, np.arange(100) % 2])
    mean, std = inception_score(_one_hot_logits(labels, 10), 500)
    assert mean == pytest.approx(17 / 3, rel=1e-5)
    assert std == pytest.approx(np.std([10.0, 5.0, 2.0]), rel=1e-4)


def test_matches_torch_fidelity_without_shuffle():
    logits = random_logits(1200, 1008, seed=2)
    ours = inception_score(logits, split_size=300)
    theirs = isc_features_to_metric(torch.from_numpy(logits), splits=4, shuffle=False)
    # float32 (ADM) vs float64 (torch-fidelity) softmax
    assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-5)
    assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-3, abs=1e-5)


def test_keeps_the_given_order():
    logits = random_logits(600, 20, seed=3)
    order = np.argsort(logits.argmax(1), kind="stable")
    assert inception_score(logits[order], 100)[0] < 0.9 * inception_score(logits, 100)[0]


def test_class_order_warns_for_sorted_labels(caplog):
    sorted_labels = np.repeat(np.arange(10), 50)  # 50 per class, class-sorted
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        messages = check_class_order(sorted_labels, split_size=100)
    assert len(messages) == 5 and "covers 2 of 10 classes" in messages[0]
    assert "INCEPTION SCORE ORDER TRAP" in caplog.text


def test_class_order_is_quiet_for_index_mod_labels(caplog):
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        assert check_class_order(np.arange(500) % 10, split_size=100) == []
    assert "ORDER TRAP" not in caplog.text


def test_prediction_order_flags_class_sorted_logits():
    labels = np.arange(2000) % 20
    logits = np.random.default_rng(4).normal(size=(2000, 20)).astype(np.float32)
    logits[np.arange(2000), labels] += 8
    order = np.argsort(labels, kind="stable")
    assert check_prediction_order(logits, split_size=500) == []
    assert "class-sorted" in check_prediction_order(logits[order], split_size=500)[0]


@pytest.mark.parametrize(
    ("logits", "split_size", "match"),
    [
        (np.zeros((0, 5)), 10, "N >= 1"),
        (np.array([[0.0, np.nan]]), 10, "non-finite"),
        (np.zeros((4, 5)), 0, "is_split_size"),
    ],
)
def test_bad_inputs_raise(logits, split_size, match):
    with pytest.raises(ValueError, match=match):
        inception_score(logits, split_size)
