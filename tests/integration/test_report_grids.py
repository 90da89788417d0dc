"""Paired sample grids on the tiny model: byte-identical across reruns and across world sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ssg_eval.report.assets import write_grid
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.finalize import finalize_run
from ssg_eval.sampling.plan import plan_from_config
from ssg_eval.sampling.runner import run_rank, sample_run

FAST = ("runtime.measure_latency=false", "runtime.num_threads=1")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sample(cfg, world_size: int):
    if world_size == 1:
        return sample_run(cfg)
    stats = [run_rank(cfg, rank, world_size) for rank in range(world_size)]
    finalize_run(cfg, run_dir(cfg), plan_from_config(cfg), stats)
    return run_dir(cfg)


def _grid(tiny_cfg, tmp_path, name: str, world_size: int) -> tuple[bytes, dict]:
    results = tmp_path / name
    for guidance in ("cfg", "cfg_ssg"):
        _sample(tiny_cfg(*FAST, f"guidance={guidance}", f"paths.results={results}"), world_size)
    pair = {"baseline_run": "tiny_cfg_s0", "guided_run": "tiny_cfg_ssg_s0"}
    png, note = write_grid(results / "runs", pair, 8, results / "grids")
    return png.read_bytes(), {"note": note, "png": png}


def test_grids_are_byte_identical_across_reruns_and_world_sizes(tiny_cfg, tmp_path):
    one, info = _grid(tiny_cfg, tmp_path, "one", 1)
    assert info["note"] == ""  # the token re-run reproduced the stored images exactly
    info["png"].unlink()
    again, _ = _grid(tiny_cfg, tmp_path, "one", 1)
    two, _ = _grid(tiny_cfg, tmp_path, "two", 2)
    assert one == again == two
    image = np.asarray(Image.open(info["png"]))
    # 8 rows of 96-px tiles (48-px samples enlarged x2) under a title strip
    assert image.shape[0] == 14 + 8 * (14 + 96 + 4) + 4
    orange = (image[..., 0] == 255) & (image[..., 1] == 140) & (image[..., 2] == 0)
    assert orange.any()  # SSG changed some tokens of these samples


def test_beta_zero_run_has_exactly_zero_band_deltas_through_the_stage(tiny_cfg, tmp_path):
    """SSG at β = 0 writes the baseline's samples: the stage's band arrays and every paired Δ
    are then exactly 0 with zero-width CIs; the streamed arrays equal the in-memory ones."""
    from types import SimpleNamespace

    from ssg_eval.analysis.bands import band_arrays, band_deltas
    from ssg_eval.runs.io import atomic_write_npz
    from ssg_eval.smoke import synthetic_images
    from ssg_eval.stages.spectral_bands import run_bands
    from ssg_eval.utils.hashing import sha256_file

    reference_images = synthetic_images(30, 48, seed=5)
    ref_path = atomic_write_npz(tmp_path / "ref.npz", arr_0=reference_images)
    reference = SimpleNamespace(
        path=ref_path, sha256=sha256_file(ref_path), image_shape=(48, 48, 3)
    )
    arrays = {}
    for guidance in ("cfg", "cfg_ssg"):
        cfg = tiny_cfg(*FAST, f"guidance={guidance}", "guidance.ssg.beta=0", "metrics.fwd_level=2")
        arrays[guidance] = run_bands(cfg, _sample(cfg, 1), reference, tmp_path / "cache")
    rows = band_deltas(arrays["cfg"], arrays["cfg_ssg"], num_resamples=20, seed=0,
                       psd_edges=[0.0, 0.25, 0.5, 1.0])  # fmt: skip
    assert len(rows) == 4 + 1 + 3
    for row in rows:
        assert row["delta"] == 0.0 and row["ci_low"] == row["ci_high"] == 0.0, row
    with np.load(run_dir(cfg).parent / "tiny_cfg_s0" / "samples.npz") as data:
        images = data["arr_0"]
    assert arrays["cfg"]["labels"].tolist() == [i % 10 for i in range(20)]
    memory = band_arrays(images, arrays["cfg"]["labels"], reference_images, level=2)
    for key in ("fwd_bands", "influence_bands", "psd", "ref_psd"):
        np.testing.assert_allclose(arrays["cfg"][key], memory[key], rtol=1e-6, atol=1e-9)
