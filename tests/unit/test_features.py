"""Inception features: random weights in torch-fidelity's layout, the sFID tap, batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from ssg_eval.features.extract import extract_features, iter_npz_images, open_npz_array, rebatch
from ssg_eval.features.inception import (
    WEIGHTS_ENV,
    build_inception,
    inception_layout,
    make_random_inception_weights,
)
from ssg_eval.features.spatial import SPATIAL_LAYER
from tests.inception_helpers import random_inception, random_weights_path, synthetic_images


@pytest.fixture(scope="module")
def images():
    return synthetic_images(4, 32, seed=11)


@pytest.fixture(scope="module")
def features_batch4(images):
    return extract_features(
        [images], random_inception(), batch_size=4, device="cpu", progress=False
    )


def test_random_weights_load_strictly_in_torch_fidelity_class():
    net = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048"], feature_extractor_weights_path=str(random_weights_path())
    )  # load_state_dict is strict inside torch-fidelity
    state = torch.load(random_weights_path(), weights_only=True)
    assert set(state) == set(net.state_dict()) == set(inception_layout())
    running_vars = [v for k, v in state.items() if k.endswith("running_var")]
    assert running_vars and all(bool((v > 0).all()) for v in running_vars)


def test_random_weights_are_deterministic(tmp_path):
    assert make_random_inception_weights(
        tmp_path / "a.pth", seed=3
    ) == make_random_inception_weights(tmp_path / "b.pth", seed=3)


def test_features_have_adm_shapes_and_are_finite(features_batch4):
    dims = {"pool": 2048, "spatial": 2023, "logits": 1008}
    for key, dim in dims.items():
        value = features_batch4[key]
        assert value.shape == (4, dim) and value.dtype == np.float32, key
        assert np.isfinite(value).all() and value.std() > 0, key


def test_logits_are_unbiased_pool_times_fc(features_batch4):
    weight = random_inception().network.fc.weight.detach().numpy()
    expected = features_batch4["pool"] @ weight.T
    np.testing.assert_allclose(features_batch4["logits"], expected, rtol=1e-4, atol=1e-4)


def test_spatial_tap_is_mixed_6d_branch1x1_in_nhwc_order(images, features_batch4):
    """Recompute the tap by hand through torch-fidelity's own submodules."""
    assert SPATIAL_LAYER == "Mixed_6d.branch1x1"
    net = random_inception().network
    x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
        x = (x - 128) / 128
        for name in ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1",
                     "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c",
                     "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c"]:  # fmt: skip
            x = getattr(net, name)(x)
        act_BCHW = net.Mixed_6d.branch1x1(x)  # (2, 192, 17, 17)
    assert act_BCHW.shape == (2, 192, 17, 17)
    expected_BhwC = act_BCHW[:, :7].permute(0, 2, 3, 1).numpy()  # ADM: spatial[..., :7], NHWC
    got = features_batch4["spatial"][:2].reshape(2, 17, 17, 7)
    np.testing.assert_allclose(got, expected_BhwC, rtol=1e-5, atol=1e-5)
    nchw = act_BCHW[:, :7].reshape(2, -1).numpy()
    assert not np.allclose(features_batch4["spatial"][:2], nchw)  # the order matters


def test_batch_size_one_agrees_with_batch_n(images, features_batch4):
    single = extract_features(
        [images], random_inception(), batch_size=1, device="cpu", progress=False
    )
    for key in features_batch4:
        np.testing.assert_allclose(single[key], features_batch4[key], rtol=1e-4, atol=1e-4)


def test_input_chunking_never_changes_features(images, features_batch4):
    chunks = [images[:1], images[1:4]]  # same batch_size, different caller chunks
    got = extract_features(chunks, random_inception(), batch_size=4, device="cpu", progress=False)
    for key in features_batch4:
        assert np.array_equal(got[key], features_batch4[key]), key


def test_rebatch_regroups_exactly():
    arrays = [np.full((n, 2, 2, 3), i, dtype=np.uint8) for i, n in enumerate([3, 1, 5, 2])]
    sizes = [len(b) for b in rebatch(arrays, 4)]
    assert sizes == [4, 4, 3]
    merged = np.concatenate(list(rebatch(arrays, 4)))
    assert np.array_equal(merged, np.concatenate(arrays))


class _NoModel(torch.nn.Module):
    def forward(self, x):  # pragma: no cover - validation fails before any forward pass
        raise AssertionError("validation should fail first")


@pytest.mark.parametrize(
    ("chunks", "match"),
    [
        ([np.full((2, 8, 8, 3), np.nan, dtype=np.float32)], "contains NaN"),
        ([np.zeros((2, 8, 8, 3), dtype=np.float32)], "expected uint8"),
        ([np.zeros((2, 3, 8, 8), dtype=np.uint8)], "looks NCHW"),
        ([np.zeros((2, 8, 8), dtype=np.uint8)], "NHWC"),
        ([np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 9, 9, 3), np.uint8)], "share H and W"),
        ([], "no images"),
    ],
)
def test_bad_inputs_raise_clear_errors(chunks, match):
    with pytest.raises(ValueError, match=match):
        extract_features(chunks, _NoModel(), batch_size=2, device="cpu", progress=False)


def test_missing_weights_give_one_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("must never download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as err:
        build_inception(None, "cpu")
    message = str(err.value)
    assert "metrics.inception_weights" in message and WEIGHTS_ENV in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in message
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_inception(tmp_path / "nope.pth", "cpu")


def test_truncated_or_foreign_weights_are_rejected(tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(random_weights_path().read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a loadable torch state dict"):
        build_inception(truncated, "cpu")
    foreign = tmp_path / "foreign.pth"
    torch.save({"fc.weight": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="first missing keys"):
        build_inception(foreign, "cpu")


@pytest.mark.parametrize("compressed", [False, True])
def test_iter_npz_images_streams_arr_0(tmp_path, compressed):
    arr = np.random.default_rng(0).integers(0, 256, (7, 5, 6, 3), dtype=np.uint8)
    path = tmp_path / "batch.npz"
    (np.savez_compressed if compressed else np.savez)(path, arr_0=arr, labels=np.arange(7))
    assert isinstance(open_npz_array(path, "arr_0"), np.memmap) is not compressed
    chunks = list(iter_npz_images(path, 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert np.array_equal(np.concatenate(chunks), arr)
