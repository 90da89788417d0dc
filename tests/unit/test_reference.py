"""Reference batches: validation errors name file and key; ADM-format build; feature cache."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from ssg_eval.metrics import reference as reference_module
from ssg_eval.metrics.reference import (
    build_reference_npz,
    center_crop_arr,
    load_reference,
    reference_cache_key,
    reference_features,
)
from ssg_eval.metrics.stats import feature_statistics
from ssg_eval.utils.hashing import sha256_file
from tests.inception_helpers import random_inception, synthetic_images

SMALL = {"mu": (8,), "sigma": (8, 8), "mu_s": (6,), "sigma_s": (6, 6)}


def small_arrays(**overrides):
    """arr_0 plus tiny statistics matching the test manifest entry below."""
    arrays = {"arr_0": np.zeros((4, 16, 16, 3), dtype=np.uint8)}
    arrays.update({key: np.eye(*shape) if len(shape) == 2 else np.zeros(shape)
                   for key, shape in SMALL.items()})  # fmt: skip
    arrays.update(overrides)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.fixture
def manifest(tmp_path):
    """A manifest with an entry `ref.npz` (tiny shapes); returns (path, writer for the sha)."""
    path = tmp_path / "manifest.json"

    def write(sha256=None):
        keys = {"arr_0": {"shape": [4, 16, 16, 3], "dtype": "uint8"}}
        keys.update(
            {k: {"shape": list(s), "dtype": ["float64", "float32"]} for k, s in SMALL.items()}
        )
        entry = {
            "role": "reference",
            "sha256": sha256,
            "source_url": "https://example/ref.npz",
            "keys": keys,
        }
        path.write_text(json.dumps({"files": {"ref.npz": entry}}))
        return path

    return write


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_valid_manifest_file_loads_lazily(tmp_path, manifest):
    path = write_npz(tmp_path / "ref.npz", **small_arrays(extra_key=np.zeros(2)))
    ref = load_reference(path, manifest_path=manifest(sha256_file(path)))
    assert ref.has_stats and ref.images is None and ref.num_images == 4
    assert ref.mu.dtype == np.float64 and ref.sigma_s.shape == (6, 6)
    assert ref.sha256 == sha256_file(path)
    assert np.array_equal(ref.load_images(), np.zeros((4, 16, 16, 3), np.uint8))


def test_unknown_sha256_warns_and_wrong_sha256_raises(tmp_path, manifest, caplog):
    path = write_npz(tmp_path / "ref.npz", **small_arrays())
    with caplog.at_level(logging.WARNING, logger="ssg_eval"):
        load_reference(path, manifest_path=manifest(None))
    assert "sha256 not verified" in caplog.text
    with pytest.raises(ValueError, match="sha256 .* differs"):
        load_reference(path, manifest_path=manifest("0" * 64))
    load_reference(path, manifest_path=manifest("0" * 64), verify_sha256=False)


def test_missing_file_names_expected_file_and_where_to_put_it(tmp_path, manifest):
    with pytest.raises(FileNotFoundError) as err:
        load_reference(tmp_path / "ref.npz", manifest_path=manifest())
    message = str(err.value)
    for part in ("ref.npz", "reference_stats/ref.npz", "SSG_EVAL_REFERENCE", "metrics.reference",
                 "https://example/ref.npz"):  # fmt: skip
        assert part in message


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"arr_0": None}, "key 'arr_0' missing"),
        ({"sigma_s": None}, "key 'sigma_s' missing"),
        ({"sigma": np.eye(8)[:, :7]}, "key 'sigma' has shape \\(8, 7\\), expected \\(8, 8\\)"),
        ({"mu": np.array([np.nan] * 8)}, "key 'mu' contains non-finite"),
        ({"arr_0": np.zeros((4, 16, 16, 3), np.float32)}, "key 'arr_0' has dtype float32"),
        ({"arr_0": np.zeros((4, 3, 16, 16), np.uint8)}, "key 'arr_0' has shape"),
        ({"arr_0": np.zeros((5, 16, 16, 3), np.uint8)}, "expected \\(4, 16, 16, 3\\)"),
        ({"mu": np.zeros(8, np.int64)}, "key 'mu' has dtype int64"),
    ],
)
def test_bad_manifest_files_name_file_and_key(tmp_path, manifest, overrides, match):
    path = write_npz(tmp_path / "ref.npz", **small_arrays(**overrides))
    with pytest.raises(ValueError, match=match) as err:
        load_reference(path, manifest_path=manifest())
    assert str(path) in str(err.value)


def test_files_outside_the_manifest_are_checked_for_adm_dims(tmp_path, manifest):
    good = {
        "arr_0": np.zeros((3, 8, 8, 3), np.uint8),
        "mu": np.zeros(2048),
        "sigma": np.eye(2048, dtype=np.float32),
        "mu_s": np.zeros(2023),
        "sigma_s": np.eye(2023),
    }
    path = write_npz(tmp_path / "smoke_ref.npz", **good)
    assert load_reference(path, manifest_path=manifest()).has_stats
    path = write_npz(tmp_path / "images_only.npz", arr_0=good["arr_0"])
    assert not load_reference(path, manifest_path=manifest()).has_stats
    path = write_npz(tmp_path / "bad.npz", **{**good, "mu_s": np.zeros(2048)})
    with pytest.raises(ValueError, match="key 'mu_s' has shape \\(2048,\\), expected \\(2023,\\)"):
        load_reference(path, manifest_path=manifest())


def test_not_an_npz_is_rejected(tmp_path, manifest):
    path = tmp_path / "ref.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_reference(path, manifest_path=manifest())


def test_center_crop_recipe_shapes():
    tall = np.random.default_rng(0).integers(0, 256, (600, 520, 3), dtype=np.uint8)
    assert center_crop_arr(tall, 256).shape == (256, 256, 3)
    square = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert np.array_equal(center_crop_arr(square, 64), square)


def test_build_reference_and_cached_features(tmp_path, monkeypatch):
    model = random_inception()
    images = synthetic_images(3, 32, seed=21)
    out = build_reference_npz(images, tmp_path / "smoke_ref.npz", model, batch_size=2,
                              center_crop=False, resolution=32, progress=False)  # fmt: skip
    ref = load_reference(out, manifest_path=tmp_path / "no_manifest.json")
    assert ref.has_stats and ref.num_images == 3 and ref.image_shape == (32, 32, 3)
    assert np.array_equal(ref.load_images(), images)
    feats = reference_features(ref, model, tmp_path / "cache", batch_size=2, device="cpu",
                               progress=False)  # fmt: skip
    key = reference_cache_key(ref.sha256, model.weights_sha256, 2, model.impl, "cpu")
    assert (tmp_path / "cache" / f"{key[:32]}_features.npz").is_file()
    mu, sigma = feature_statistics(feats["pool"])
    np.testing.assert_allclose(mu, ref.mu, rtol=1e-12)
    np.testing.assert_allclose(sigma, ref.sigma, rtol=1e-9, atol=1e-12)

    def fail(*args, **kwargs):
        raise AssertionError("the cache must be used")

    monkeypatch.setattr(reference_module, "extract_features", fail)
    cached = reference_features(ref, model, tmp_path / "cache", batch_size=2, device="cpu")
    for key in feats:
        assert np.array_equal(cached[key], feats[key])
    with pytest.raises(AssertionError, match="cache must be used"):  # other batch size: recompute
        reference_features(ref, model, tmp_path / "cache", batch_size=3, device="cpu")
    # another device kind (a GPU model, as named by features.extract.device_key): recompute
    monkeypatch.setattr(reference_module, "device_key", lambda device: "cuda-another_gpu")
    with pytest.raises(AssertionError, match="cache must be used"):
        reference_features(ref, model, tmp_path / "cache", batch_size=2, device="cpu")


def test_cache_key_covers_reference_weights_batch_path_and_device():
    base = ("a" * 64, "b" * 64, 64, "fast", "cpu")
    keys = {reference_cache_key(*base)}
    for index, other in enumerate(("c" * 64, "d" * 64, 32, "torch_fidelity", "cuda-nvidia_h200")):
        changed = list(base)
        changed[index] = other
        keys.add(reference_cache_key(*changed))
    assert len(keys) == 6 and reference_cache_key(*base) == reference_cache_key(*base)
