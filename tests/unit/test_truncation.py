"""Truncation rules (docs/VAR.md): sort vs fast kept sets, a numpy transcription, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssg_eval.guidance.truncation import apply_truncation


def numpy_truncation(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float
) -> np.ndarray:
    """Plain transcription of the spec's rules on (N, V) float32 (stable sort; ties unresolved)."""
    x = logits.astype(np.float32).copy()
    if temperature != 1.0:
        x = (x / np.float32(temperature)).astype(np.float32)
    for row in x:
        if top_k > 0:
            kth_largest = np.sort(row)[::-1][top_k - 1]
            row[row < kth_largest] = -np.inf
        if top_p > 0:
            order = np.argsort(row, kind="stable")
            sorted_row = row[order].astype(np.float64)
            probs = np.exp(sorted_row - sorted_row[-1])
            cumsum = np.cumsum(probs / probs.sum()).astype(np.float32)
            remove_sorted = cumsum <= np.float32(1 - top_p)
            remove_sorted[-1] = False
            row[order[remove_sorted]] = -np.inf
    return x


def _random_logits(seed: int, shape: tuple[int, ...], ties: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if ties:  # few distinct values: many ties at every threshold
        return torch.randint(-4, 4, shape, generator=g).float() * 0.75
    return torch.randn(shape, generator=g) * 2.5


SETTINGS = [
    (1.0, 0, 0.0),
    (1.0, 5, 0.0),
    (1.0, 0, 0.8),
    (1.0, 7, 0.9),
    (1.0, 20, 0.5),
    (0.7, 12, 0.96),
    (1.3, 1, 0.3),
    (1.0, 64, 1.0),
    (1.0, 30, 1e-6),
    (1.0, 3, 0.999),
]


@pytest.mark.parametrize("temperature,top_k,top_p", SETTINGS)
@pytest.mark.parametrize("seed", range(6))
def test_fast_equals_sort_with_ties(seed, temperature, top_k, top_p):
    logits = _random_logits(seed, (3, 17, 64), ties=seed % 2 == 0)
    sort = apply_truncation(logits, temperature, top_k, top_p, impl="sort")
    fast = apply_truncation(logits, temperature, top_k, top_p, impl="fast")
    assert torch.equal(sort.isfinite(), fast.isfinite())
    assert torch.equal(sort, fast)


@pytest.mark.parametrize("temperature,top_k,top_p", SETTINGS)
def test_sort_matches_numpy_transcription(temperature, top_k, top_p):
    logits = _random_logits(100 + top_k, (2, 25, 96), ties=False)
    got = apply_truncation(logits, temperature, top_k, top_p, impl="sort")
    want = numpy_truncation(logits.view(-1, 96).numpy(), temperature, top_k, top_p)
    np.testing.assert_array_equal(np.isfinite(got.view(-1, 96).numpy()), np.isfinite(want))
    np.testing.assert_array_equal(got.view(-1, 96).numpy(), want)


@pytest.mark.parametrize("impl", ["sort", "fast"])
def test_top_k_keeps_every_tie_at_the_threshold(impl):
    logits = torch.tensor([[[5.0, 3.0, 3.0, 3.0, 1.0, 0.0]]])
    out = apply_truncation(logits, 1.0, 2, 0.0, impl=impl)
    assert out.isfinite().view(-1).tolist() == [True, True, True, True, False, False]
    kept_only_top_k_ties = numpy_truncation(logits.view(1, -1).numpy(), 1.0, 2, 0.0)
    np.testing.assert_array_equal(out.view(1, -1).numpy(), kept_only_top_k_ties)


@pytest.mark.parametrize("impl", ["sort", "fast"])
def test_top_p_never_removes_the_largest(impl):
    logits = torch.log(torch.tensor([[[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]]))
    tiny_p = apply_truncation(logits, 1.0, 3, 1e-9, impl=impl)
    assert tiny_p.isfinite().view(2, 3).tolist() == [[False, False, True], [True, False, False]]


@pytest.mark.parametrize("impl", ["sort", "fast"])
def test_returns_new_tensor_and_keeps_input(impl):
    logits = _random_logits(3, (2, 4, 32), ties=True)
    before = logits.clone()
    for args in [(1.0, 0, 0.0), (2.0, 4, 0.7), (1.0, 4, 0.0)]:
        out = apply_truncation(logits, *args, impl=impl)
        assert out.data_ptr() != logits.data_ptr()
        assert out.shape == logits.shape and out.dtype == logits.dtype
    assert torch.equal(logits, before)


def test_temperature_one_is_exactly_skipped_and_other_values_divide():
    logits = _random_logits(4, (1, 3, 16), ties=False)
    assert torch.equal(apply_truncation(logits, 1.0, 0, 0.0), logits)
    assert torch.equal(apply_truncation(logits, 0.5, 0, 0.0), logits / 0.5)


def test_invalid_arguments_name_the_config_key():
    logits = torch.zeros(1, 1, 8)
    with pytest.raises(ValueError, match="sampler.truncation_impl"):
        apply_truncation(logits, 1.0, 0, 0.0, impl="heap")
    with pytest.raises(ValueError, match="sampler.top_k"):
        apply_truncation(logits, 1.0, 9, 0.0)
