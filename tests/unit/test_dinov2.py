"""FD-DINOv2: dgm-eval's preprocessing, DINOv2's positional-embedding rule, strict loading of the
release layout, and the distance against a Fréchet distance written out with scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg

from ssg_eval.features import dinov2
from ssg_eval.features.dinov2 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_dinov2,
    dinov2_features,
    preprocess,
    resample_pos_embed,
)
from ssg_eval.metrics.fd_dinov2 import fd_dinov2
from ssg_eval.smoke import synthetic_images

# A tiny network in DINOv2's layout (ViT with LayerScale, patch 14, a 37 x 37 release grid).
TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
ARCH = "vit_small_patch14_dinov2"


def dgm_eval_transform(image: np.ndarray) -> torch.Tensor:
    """dgm-eval's DINOv2 transform as it states it, in torchvision, on a PIL image."""
    import torchvision.transforms as tf

    return tf.Compose([
        tf.Resize((224, 224), tf.InterpolationMode.BICUBIC),
        tf.ToTensor(),
        tf.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])(Image.fromarray(image))  # fmt: skip


def release_file(tmp_path, seed=0):
    """Random weights saved like DINOv2's release: 518 px grid (37 x 37) plus `mask_token`."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(ARCH, pretrained=False, img_size=518, num_classes=0, **TINY)
    state = dict(model.state_dict(), mask_token=torch.zeros(1, TINY["embed_dim"]))
    path = tmp_path / f"dinov2_tiny_{seed}.pth"
    torch.save(state, path)
    return path, model


def tiny_model(path):
    return build_dinov2(path, "cpu", arch=ARCH, architecture_overrides=TINY)


@pytest.mark.parametrize("side", [256, 48])  # downscale (antialiased) and upscale
def test_preprocess_is_dgm_eval_transform(side):
    images = synthetic_images(3, side, seed=side)
    ours = preprocess(images)
    assert ours.shape == (3, 3, 224, 224) and ours.dtype == torch.float32
    reference = torch.stack([dgm_eval_transform(img) for img in images])
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)


def _keys_cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _dinov2_rule_numpy(grid_MMC: np.ndarray, out: int, offset: float = 0.1) -> np.ndarray:
    """DINOv2's rule written out: bicubic (a = -0.75), scale (out + offset)/M, clamped edges."""
    size = grid_MMC.shape[0]
    scale = (out + offset) / size
    src = (np.arange(out) + 0.5) / scale - 0.5
    weights = np.zeros((out, size))
    for i, x in enumerate(src):
        base = int(np.floor(x))
        for k in range(base - 1, base + 3):
            weights[i, min(max(k, 0), size - 1)] += _keys_cubic(x - k)
    return np.einsum("ih,jw,hwc->ijc", weights, weights, grid_MMC)


def test_pos_embed_resampling_is_dinov2_rule():
    rng = np.random.default_rng(0)
    pos_1LC = torch.from_numpy(rng.normal(size=(1, 1 + 37 * 37, 5)).astype(np.float32))
    out = resample_pos_embed(pos_1LC, 16)
    assert out.shape == (1, 1 + 16 * 16, 5)
    torch.testing.assert_close(out[:, 0], pos_1LC[:, 0])  # the CLS position is kept
    expected = _dinov2_rule_numpy(pos_1LC[0, 1:].numpy().reshape(37, 37, 5).astype(np.float64), 16)
    np.testing.assert_allclose(out[0, 1:].numpy().reshape(16, 16, 5), expected, atol=1e-5)


def test_release_layout_loads_strictly_and_gives_cls_features(tmp_path):
    path, original = release_file(tmp_path)
    model = tiny_model(path)
    assert model.weights_sha256 and model.pos_embed.shape == (1, 1 + 16 * 16, TINY["embed_dim"])
    torch.testing.assert_close(model.blocks[1].ls2.gamma, original.blocks[1].ls2.gamma)
    images = synthetic_images(5, 64, seed=3)
    feats = dinov2_features([images[:2], images[2:]], model, batch_size=3, device="cpu")
    x = torch.stack([dgm_eval_transform(img) for img in images])
    with torch.no_grad():
        tokens = model.forward_features(x)  # (B, 1 + 256, C) after the final norm
    np.testing.assert_allclose(feats, tokens[:, 0].numpy(), atol=1e-5)  # the CLS token
    assert feats.shape == (5, TINY["embed_dim"]) and feats.dtype == np.float32


def test_fd_dinov2_agrees_with_frechet_written_out(tmp_path):
    path, _ = release_file(tmp_path)
    model = tiny_model(path)
    samples = dinov2_features([synthetic_images(40, 64, seed=1)], model, 16, "cpu")
    reference = dinov2_features([synthetic_images(40, 64, seed=2, spread=0.5)], model, 16, "cpu")
    s1, s2 = samples.astype(np.float64), reference.astype(np.float64)
    mu1, mu2 = s1.mean(0), s2.mean(0)
    c1, c2 = np.cov(s1, rowvar=False), np.cov(s2, rowvar=False)
    covmean = linalg.sqrtm(c1 @ c2).real
    expected = float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))
    assert expected > 0
    for method in ("eigh", "sqrtm"):
        assert fd_dinov2(samples, reference, method=method) == pytest.approx(expected, rel=1e-6)
    assert fd_dinov2(samples, samples) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("weights", [None, "missing.pth"])
def test_missing_weights_is_one_clear_error(tmp_path, weights):
    weights = None if weights is None else tmp_path / weights
    with pytest.raises(FileNotFoundError) as info:
        build_dinov2(weights, "cpu")
    message = str(info.value)
    assert "metrics.dinov2_weights" in message and "SSG_EVAL_DINOV2" in message
    assert "\n" not in message


def test_wrong_layout_names_the_file_and_keys(tmp_path):
    path, _ = release_file(tmp_path)
    state = torch.load(path, weights_only=True)
    state["blocks.9.attn.qkv.weight"] = state.pop("blocks.1.attn.qkv.weight")
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"does not match .*blocks\.1\.attn\.qkv\.weight"):
        tiny_model(path)


def test_preflight_lists_dinov2_weights_when_fd_dinov2_is_requested(tiny_cfg, tmp_path):
    from ssg_eval.stages.preflight import missing_inputs

    base = tiny_cfg("metrics.metrics=[fid,fd_dinov2]", f"metrics.dinov2_weights={tmp_path}/x.pth")
    assert any(line.startswith("metrics.dinov2_weights:") for line in missing_inputs(base))
    assert not any("dinov2" in line for line in missing_inputs(tiny_cfg()))


@pytest.mark.slow
def test_stages_write_fd_dinov2_beside_fid(tiny_cfg, tmp_path, monkeypatch):
    """Wiring: features stage writes features_dinov2.npz, metrics stage adds `fd_dinov2`."""
    from functools import partial

    from ssg_eval.features.inception import build_inception, make_random_inception_weights
    from ssg_eval.metrics.reference import build_reference_npz
    from ssg_eval.runs.io import read_json
    from ssg_eval.sampling.runner import sample_run
    from ssg_eval.stages.features import run_features
    from ssg_eval.stages.metrics import run_metrics

    path, _ = release_file(tmp_path)
    monkeypatch.setattr(dinov2, "build_dinov2", partial(build_dinov2, architecture_overrides=TINY))
    weights = tmp_path / "inception.pth"
    make_random_inception_weights(weights, seed=0)
    build_reference_npz(synthetic_images(10, 48, seed=1), tmp_path / "ref.npz",
                        build_inception(weights, torch.device("cpu")), batch_size=10,
                        center_crop=False, resolution=48)  # fmt: skip
    cfg = tiny_cfg(
        "sampler.num_samples=10", "runtime.measure_latency=false", "runtime.device=cpu",
        f"metrics.reference={tmp_path / 'ref.npz'}", "metrics.reference_name=ref.npz",
        f"metrics.inception_weights={weights}", f"metrics.dinov2_weights={path}",
        f"metrics.dinov2_arch={ARCH}", "metrics.metrics=[fid,fd_dinov2]",
        config_name="config",
    )  # fmt: skip
    sample_run(cfg)
    run_features(cfg)
    metrics = read_json(run_metrics(cfg))["metrics"]
    run = tmp_path / "runs" / str(cfg.run_name)
    with np.load(run / "features_dinov2.npz") as data:
        samples = data["features"]
    with np.load(tmp_path / "ref.npz") as data:
        reference = dinov2_features([data["arr_0"]], tiny_model(path), 10, "cpu")
    assert samples.shape == (10, TINY["embed_dim"])
    assert metrics["fd_dinov2"] == pytest.approx(fd_dinov2(samples, reference), rel=1e-9)
    assert np.isfinite(metrics["fid"])
