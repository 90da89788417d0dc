"""The GPU's reduced-precision paths, run on the CPU under CPU autocast (bf16, and fp16).

No device has been lent, so a dtype or device bug in these paths would otherwise hide until one
is: the sampler's fp16 autocast (bf16 is in test_fast_path.py), the feature networks (Inception,
DINOv2) and the half-precision distance blocks of precision/recall, which must stay float32 (or
ADM's fp16 emulation) even when called inside an autocast region (features while sampling run
inside the sampler's process), and the on-device uint8 quantisation of the CUDA overlap.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssg_eval.features.extract import extract_chunk_features
from ssg_eval.metrics.precision_recall import precision_recall
from ssg_eval.sampling.shards import quantize_on_device, to_uint8
from tests.inception_helpers import random_inception, synthetic_images
from tests.unit.test_metrics_pr import adm_precision_recall, relu_features

AUTOCAST = [torch.bfloat16, torch.float16]


@pytest.fixture(scope="module")
def tiny_models():
    from ssg_eval.models.load import build_model
    from tests.conftest import compose_config

    cfg = compose_config(["model=tiny", "sampler=tiny", "guidance=cfg_ssg", "runtime.device=cpu"])
    var, vae, _ = build_model(cfg.model)
    return cfg, var, vae


def test_sampler_float16_autocast_runs_on_cpu_and_stays_close(tiny_models):
    from tests.unit.test_fast_path import sample

    ref_images, ref_tokens = sample(tiny_models, "cfg_ssg")
    images, tokens = sample(tiny_models, "cfg_ssg", autocast_dtype=torch.float16)
    assert images.dtype == torch.float32 and bool(torch.isfinite(images).all())
    equal = torch.cat([(a == b).flatten() for a, b in zip(tokens, ref_tokens, strict=True)])
    assert float(equal.float().mean()) >= 0.9  # fp16 logits flip a few near-tied draws
    assert float((images - ref_images).abs().mean()) < 0.05


@pytest.mark.parametrize("dtype", AUTOCAST)
def test_sampler_keeps_guided_logits_and_latents_float32_under_autocast(tiny_models, dtype):
    # Autocast covers the transformer passes only: the processors, truncation and f̂ see float32.
    from ssg_eval.guidance import build_processors
    from ssg_eval.sampling.draw import make_generators
    from ssg_eval.sampling.loop import generate_batch

    cfg, var, vae = tiny_models
    seen: list[tuple] = []
    generate_batch(
        var, vae, torch.arange(4) % 10, make_generators(range(4), "cpu"),
        build_processors(cfg.guidance, list(cfg.model.patch_nums)), top_k=8, top_p=0.96,
        autocast_dtype=dtype, decode_dtype=torch.bfloat16,
        observer=lambda si, info: seen.append((info["logits_BlV"].dtype,
                                               info["f_hat_BCHW"].dtype)),
    )  # fmt: skip
    assert len(seen) == len(cfg.model.patch_nums)
    assert set(seen) == {(torch.float32, torch.float32)}


@pytest.mark.parametrize("dtype", AUTOCAST)
def test_inception_stays_float32_inside_an_autocast_region(dtype):
    images = synthetic_images(3, 32, seed=4)
    model = random_inception()
    plain = extract_chunk_features(images, model, batch_size=2, device="cpu")
    with torch.autocast("cpu", dtype=dtype):
        host = extract_chunk_features(images, model, batch_size=2, device="cpu")
        tensor = extract_chunk_features(torch.from_numpy(images), model, batch_size=2,
                                        device="cpu")  # fmt: skip
    for key, value in plain.items():
        assert host[key].dtype == np.float32 and np.array_equal(host[key], value), key
        assert np.array_equal(tensor[key], value), key


@pytest.mark.parametrize("dtype", AUTOCAST)
def test_dinov2_stays_float32_inside_an_autocast_region(tmp_path, dtype):
    from ssg_eval.features.dinov2 import dinov2_features
    from tests.unit.test_dinov2 import release_file, tiny_model

    model = tiny_model(release_file(tmp_path)[0])
    images = synthetic_images(3, 32, seed=5)
    plain = dinov2_features([images], model, 2, "cpu")
    with torch.autocast("cpu", dtype=dtype):
        inside = dinov2_features([images], model, 2, "cpu")
    assert inside.dtype == np.float32 and np.array_equal(inside, plain)


@pytest.mark.parametrize("dtype", [torch.float32, *AUTOCAST])
@pytest.mark.parametrize("rounding", ["nearest", "truncate"])
def test_on_device_uint8_equals_to_uint8(dtype, rounding):
    # Every rounding boundary (k + 0.5) / 255 as float32, its neighbours, and out-of-range values.
    k = np.arange(256)
    edges = ((k + 0.5) / 255).astype(np.float32)
    values = np.concatenate([edges, np.nextafter(edges, np.float32(0)),
                             np.nextafter(edges, np.float32(1)), k / np.float32(255),
                             np.linspace(-0.2, 1.2, 233, dtype=np.float32)])  # fmt: skip
    images = torch.from_numpy(values).reshape(1, 3, -1, 1).to(dtype)
    quantized, finite = quantize_on_device(images, rounding)
    assert bool(finite) and quantized.dtype == torch.uint8
    assert np.array_equal(quantized.numpy(), to_uint8(images, rounding))
    _, finite = quantize_on_device(images.float().index_fill(2, torch.tensor([5]), float("nan")))
    assert not bool(finite)


@pytest.mark.parametrize("dtype", AUTOCAST)
@pytest.mark.parametrize("distances", ["float16", "float32"])
def test_precision_recall_distance_blocks_inside_an_autocast_region(dtype, distances):
    # Near-ties with the radii: a matmul in the autocast dtype would move the counts.
    real, fake = relu_features(0, 200, 256), relu_features(100, 200, 256)
    expected = adm_precision_recall(real, fake, block=64, fp16=distances == "float16")
    with torch.autocast("cpu", dtype=dtype):
        got = precision_recall(real, fake, block_size=64, distance_dtype=distances)
    assert got == expected
