"""Shards: the float -> uint8 rule, atomic write + verify, ordered streaming and the ADM export."""

from __future__ import annotations

import hashlib
import zipfile
from fractions import Fraction

import numpy as np
import pytest
import torch

from ssg_eval.sampling import shards
from ssg_eval.sampling.plan import SamplePlan
from ssg_eval.sampling.shards import (
    export_samples_npz,
    images_sha256,
    iter_run_images,
    shard_path,
    shard_problem,
    to_uint8,
    verify_shard,
    write_shard,
)

SHAPE = (4, 4, 3)


def _reference(x: float, rounding: str) -> int:
    """Exact rational floor(255·x + 0.5) / floor(255·x), clamped."""
    value = 255 * Fraction(float(x)) + (Fraction(1, 2) if rounding == "nearest" else 0)
    return min(255, max(0, value.numerator // value.denominator))


# ------------------------------------------------------------------------------------------------
# to_uint8
# ------------------------------------------------------------------------------------------------
def test_nearest_rounds_half_up_and_clamps():
    x = np.array([0.0, 1.0, 0.5, -0.3, 1.7, 1 / 255, 254.49 / 255, 254.51 / 255])
    images = np.broadcast_to(x, (1, 3, 1, len(x)))
    nearest = to_uint8(images, "nearest")
    truncate = to_uint8(images, "truncate")
    for channel in range(3):
        assert nearest[0, 0, :, channel].tolist() == [0, 255, 128, 0, 255, 1, 254, 255]
        assert truncate[0, 0, :, channel].tolist() == [0, 255, 127, 0, 255, 1, 254, 254]


@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
def test_rounding_matches_exact_rational_rule_at_boundaries(rounding):
    # float32 neighbours of every k/255 and (k + 0.5)/255 boundary, plus random values.
    ks = np.arange(256, dtype=np.float64)
    centers = np.concatenate([ks / 255, (ks + 0.5) / 255]).astype(np.float32)
    below = np.nextafter(centers, np.float32(-1))
    above = np.nextafter(centers, np.float32(2))
    rng = np.random.default_rng(0)
    values = np.concatenate([centers, below, above, rng.random(3000, dtype=np.float32)])
    values = values[: len(values) // 3 * 3]
    got = to_uint8(torch.from_numpy(values).reshape(1, 3, 1, -1), rounding)
    want = np.array([_reference(v, rounding) for v in values], dtype=np.uint8)
    assert np.array_equal(got.transpose(0, 3, 1, 2).reshape(-1), want)


def test_layout_is_nhwc_and_bfloat16_is_accepted():
    images = torch.zeros(2, 3, 5, 7)
    images[1, 2, 4, 6] = 1.0
    out = to_uint8(images.to(torch.bfloat16))
    assert out.shape == (2, 5, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert out[1, 4, 6, 2] == 255 and out.sum() == 255


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_rejected(bad):
    images = np.zeros((1, 3, 2, 2))
    images[0, 1, 1, 0] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        to_uint8(images)


def test_bad_rounding_and_shape_are_rejected():
    with pytest.raises(ValueError, match="uint8_rounding"):
        to_uint8(np.zeros((1, 3, 2, 2)), "round")
    with pytest.raises(ValueError, match="shape"):
        to_uint8(np.zeros((1, 2, 2, 3)))


# ------------------------------------------------------------------------------------------------
# write / verify
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def plan() -> SamplePlan:
    return SamplePlan(num_samples=20, num_classes=10, chunk_size=8, seed=0)


def _chunk_images(plan: SamplePlan, chunk: int) -> np.ndarray:
    indices = plan.chunk_indices(chunk)
    return (indices[:, None, None, None] + np.zeros((1, *SHAPE), dtype=np.int64)).astype(np.uint8)


def _write(run_dir, plan, chunk, **changes):
    indices = plan.chunk_indices(chunk)
    arrays = {"images": _chunk_images(plan, chunk), "labels": plan.labels(indices),
              "indices": indices} | changes  # fmt: skip
    return write_shard(run_dir, chunk, arrays["images"], arrays["labels"], arrays["indices"])


def test_written_shard_verifies(tmp_path, plan):
    path = _write(tmp_path, plan, 1)
    assert path == shard_path(tmp_path, 1) and path.name == "chunk_00001.npz"
    assert verify_shard(path, plan, 1, SHAPE) and verify_shard(path, plan, 1, SHAPE, deep=True)
    with np.load(path) as data:
        assert sorted(data.files) == ["images", "indices", "labels"]
        assert data["images"].dtype == np.uint8 and data["indices"].dtype == np.int64
    assert not list(tmp_path.rglob("*.tmp"))


def test_verify_rejects_wrong_content(tmp_path, plan):
    path = _write(tmp_path, plan, 0)
    assert shard_problem(path, plan, 1, SHAPE) is not None  # another chunk's file
    assert "expected" in shard_problem(path, plan, 0, (8, 8, 3))
    assert shard_problem(tmp_path / "nope.npz", plan, 0, SHAPE) == "missing"
    labels = plan.labels(plan.chunk_indices(0))
    _write(tmp_path, plan, 0, labels=(labels + 1) % 10)
    assert "labels" in shard_problem(path, plan, 0, SHAPE)
    _write(tmp_path, plan, 0, indices=plan.chunk_indices(0)[::-1].copy())
    assert "indices" in shard_problem(path, plan, 0, SHAPE)
    np.savez(path, images=_chunk_images(plan, 0), labels=labels, indices=plan.chunk_indices(0),
             extra=np.zeros(1))  # fmt: skip
    assert "keys" in shard_problem(path, plan, 0, SHAPE)
    np.savez(path, images=_chunk_images(plan, 0).astype(np.float32), labels=labels,
             indices=plan.chunk_indices(0))  # fmt: skip
    assert "float32" in shard_problem(path, plan, 0, SHAPE)


def test_verify_rejects_unreadable_files(tmp_path, plan):
    path = _write(tmp_path, plan, 0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated: no zip central directory
    assert "unreadable" in shard_problem(path, plan, 0, SHAPE)
    path.write_bytes(b"not a zip file")
    assert not verify_shard(path, plan, 0, SHAPE)


def test_failed_write_leaves_no_partial_file(tmp_path, plan, monkeypatch):
    good = _write(tmp_path, plan, 0)
    before = good.read_bytes()

    def crash(handle, **arrays):
        handle.write(b"PK partial")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="injected"):
        _write(tmp_path, plan, 0)
    with pytest.raises(OSError, match="injected"):
        _write(tmp_path, plan, 1)
    assert good.read_bytes() == before  # the old shard survives a failed rewrite
    assert not shard_path(tmp_path, 1).exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_write_rejects_inconsistent_arrays(tmp_path, plan):
    with pytest.raises(ValueError, match="uint8"):
        _write(tmp_path, plan, 0, images=_chunk_images(plan, 0).astype(np.float32))
    with pytest.raises(ValueError, match="labels"):
        _write(tmp_path, plan, 0, labels=np.zeros(3, dtype=np.int64))


# ------------------------------------------------------------------------------------------------
# streaming and export
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def full_run(tmp_path, plan):
    for chunk in range(plan.num_chunks):
        _write(tmp_path, plan, chunk)
    return tmp_path


@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
def test_iter_run_images_streams_in_index_order(full_run, plan, batch_size):
    batches = list(iter_run_images(full_run, batch_size))
    sizes = [len(b[0]) for b in batches]
    assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    images = np.concatenate([b[0] for b in batches])
    indices = np.concatenate([b[2] for b in batches])
    assert np.array_equal(indices, np.arange(plan.num_samples))
    assert np.array_equal(images[:, 0, 0, 0], np.arange(plan.num_samples))
    assert np.array_equal(np.concatenate([b[1] for b in batches]), plan.labels(indices))


def test_iter_run_images_refuses_gaps(full_run, plan):
    shard_path(full_run, 1).unlink()
    with pytest.raises(ValueError, match="expected 8"):
        list(iter_run_images(full_run, 4))
    with pytest.raises(FileNotFoundError):
        list(iter_run_images(full_run / "empty", 4))


def test_export_is_adm_compatible_deterministic_and_hashed(full_run, plan):
    hasher = hashlib.sha256()
    path = export_samples_npz(full_run, plan, hasher=hasher)
    first = path.read_bytes()
    with np.load(path) as data:
        assert data["arr_0"].shape == (plan.num_samples, *SHAPE)
        assert data["arr_0"].dtype == np.uint8
        assert np.array_equal(data["arr_0"][:, 0, 0, 0], np.arange(plan.num_samples))
        assert np.array_equal(data["labels"], plan.labels(range(plan.num_samples)))
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["arr_0.npy", "labels.npy"]
        assert archive.testzip() is None
    assert export_samples_npz(full_run, plan).read_bytes() == first
    assert hasher.hexdigest() == images_sha256(full_run, plan)
    assert not list(full_run.rglob("*.tmp"))


def test_export_refuses_incomplete_runs(full_run, plan):
    shard_path(full_run, 2).unlink()
    with pytest.raises(FileNotFoundError, match=r"missing chunks \[2\]"):
        export_samples_npz(full_run, plan)
    assert not (full_run / shards.SAMPLES_NPZ).exists()


def test_failed_export_leaves_no_partial_file(full_run, plan, monkeypatch):
    export_samples_npz(full_run, plan)
    before = (full_run / shards.SAMPLES_NPZ).read_bytes()
    real = shards.iter_run_images

    def crash_after_one_batch(*args):
        iterator = real(*args)
        yield next(iterator)
        raise OSError("disk full (injected)")

    monkeypatch.setattr(shards, "iter_run_images", crash_after_one_batch)
    with pytest.raises(OSError, match="injected"):
        export_samples_npz(full_run, plan)
    assert (full_run / shards.SAMPLES_NPZ).read_bytes() == before
    assert not list(full_run.rglob("*.tmp"))
