"""The fast Inception path against torch-fidelity's own functions (random weights, small batch).

The fused uint8 resize must equal `interpolate_bilinear_2d_like_tensorflow1x` bit for bit; the
features (BN folded, channels-last) must stay within 1e-5 relative of torch-fidelity's forward.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from ssg_eval.features.extract import extract_features
from ssg_eval.features.inception import build_inception
from ssg_eval.features.preprocess import uint8_to_inception_input
from tests.inception_helpers import random_inception, random_weights_path, synthetic_images

MAX_REL_DIFF = 1e-5  # max |ours - theirs| / max |theirs|, per output


@pytest.mark.parametrize("height, width", [(256, 256), (32, 32), (512, 384), (299, 299), (1, 7)])
def test_fused_resize_is_bit_identical_to_torch_fidelity(height, width):
    images = np.random.default_rng(height * 1000 + width).integers(
        0, 256, (2, height, width, 3), dtype=np.uint8
    )
    ours = uint8_to_inception_input(torch.from_numpy(images))
    nchw = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    theirs = interpolate_bilinear_2d_like_tensorflow1x(nchw, size=(299, 299), align_corners=False)
    theirs = (theirs - 128) / 128
    assert ours.shape == theirs.shape == (2, 3, 299, 299)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(ours, theirs)


@pytest.fixture(scope="module")
def theirs_and_images():
    """torch-fidelity's extractor (its own forward) + a hook giving the raw Mixed_6d.branch1x1."""
    images = synthetic_images(2, 48, seed=5)
    net = FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"],
        feature_extractor_weights_path=str(random_weights_path()),
    )  # fmt: skip
    taps = []
    net.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, out: taps.append(out))
    with torch.inference_mode():
        pool, logits = net(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    act = taps[0]  # (2, 192, 17, 17); ADM keeps channels [:7] in NHWC order
    spatial = act[:, :7].permute(0, 2, 3, 1).reshape(len(images), -1)
    theirs = {"pool": pool.numpy(), "logits": logits.numpy(), "spatial": spatial.numpy()}
    return theirs, images


def max_rel_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_fast_features_agree_with_torch_fidelity(theirs_and_images):
    theirs, images = theirs_and_images
    assert random_inception().impl == "fast"
    ours = extract_features([images], random_inception(), batch_size=2, device="cpu",
                            progress=False, num_images=2)  # fmt: skip
    for key, value in theirs.items():
        assert ours[key].shape == value.shape and np.abs(value).max() > 0, key
        assert max_rel_diff(ours[key], value) <= MAX_REL_DIFF, (key, max_rel_diff(ours[key], value))


def test_torch_fidelity_impl_is_its_forward_exactly(theirs_and_images):
    theirs, images = theirs_and_images
    model = build_inception(str(random_weights_path()), "cpu", impl="torch_fidelity")
    ours = extract_features([images], model, batch_size=2, device="cpu", progress=False)
    for key, value in theirs.items():
        assert np.array_equal(ours[key], value), key


class PixelStub(torch.nn.Module):
    """Row features that depend on each image (sum of pixels times a per-key ramp)."""

    def forward(self, images_BCHW):
        total = images_BCHW.float().sum(dim=(1, 2, 3))[:, None]
        dims = {"pool": 2048, "spatial": 2023, "logits": 1008}
        return {k: total * torch.arange(1.0, d + 1) for k, d in dims.items()}


def test_preallocated_outputs_match_and_check_the_count():
    images = synthetic_images(5, 8, seed=9)
    kwargs = {"batch_size": 2, "device": "cpu", "progress": False}
    parts = extract_features([images], PixelStub(), **kwargs)
    filled = extract_features([images[:1], images[1:]], PixelStub(), num_images=5, **kwargs)
    for key in parts:
        assert np.array_equal(parts[key], filled[key]), key
    expected = images.astype(np.float32).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(filled["pool"][:, 0], expected)  # stream order kept
    with pytest.raises(ValueError, match="had 5 images, expected num_images=6"):
        extract_features([images], PixelStub(), num_images=6, **kwargs)
    with pytest.raises(ValueError, match="more than num_images=4"):
        extract_features([images], PixelStub(), num_images=4, **kwargs)


def test_unknown_impl_names_the_config_key():
    with pytest.raises(ValueError, match="metrics.inception_impl='onnx'"):
        build_inception(str(random_weights_path()), "cpu", impl="onnx")


def test_config_switches_validate(tiny_cfg):
    from hydra.errors import ConfigCompositionException

    from ssg_eval.features.extract import device_batch_size
    from ssg_eval.validation import validate

    validate(tiny_cfg("metrics.feature_batch_size=null", "metrics.inception_impl=torch_fidelity"))
    with pytest.raises(ConfigCompositionException) as info:  # a StrEnum: rejected when composed
        tiny_cfg("metrics.inception_impl=onnx")
    assert "inception_impl" in str(info.value) + str(info.value.__cause__)
    assert device_batch_size("cpu") == 32 and device_batch_size(torch.device("cuda", 0)) == 256
