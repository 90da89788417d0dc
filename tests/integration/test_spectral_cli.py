"""Spectral analysis end to end on the tiny model: sample runs on CPU, then both figures.

The β = 0 SSG run is the closed-form check: SSG is then an exact no-op, so every latent delta
must be exactly 0 in both modes (in `forced` mode this also proves the token replay leaves the
sampler's RNG stream where the baseline had it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ssg_eval.analysis.cli import OUTPUT_NAMES, main, run_spectral_analysis  # noqa: E402
from ssg_eval.analysis.images import npz_array_header  # noqa: E402
from ssg_eval.runs.layout import run_dir  # noqa: E402
from ssg_eval.smoke import synthetic_images  # noqa: E402
from ssg_eval.validation import validate  # noqa: E402
from tests.conftest import compose_config  # noqa: E402

NUM_LATENT = 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Baseline (CFG), CFG + SSG and CFG + SSG with β = 0 on the tiny model, plus a reference."""
    from ssg_eval.sampling.runner import sample_run

    results = tmp_path_factory.mktemp("results")

    def sample(*overrides: str):
        base = [
            "model=tiny",
            "sampler=tiny",
            "runtime.device=cpu",
            f"paths.results={results}",
            "sampler.num_samples=10",
            "runtime.measure_latency=false",
        ]
        cfg = compose_config(base + list(overrides))
        validate(cfg)
        sample_run(cfg)
        return run_dir(cfg)

    baseline = sample("guidance=cfg")
    treated = sample("guidance=cfg_ssg")
    neutral = sample("guidance=cfg_ssg", "guidance.ssg.beta=0", "run_name=tiny_cfg_ssg_beta0_s0")
    shard = sorted((baseline / "shards").glob("chunk_*.npz"))[0]
    (_, side, _, _), _ = npz_array_header(shard, "images")
    reference = results / "reference.npz"
    np.savez(reference, arr_0=synthetic_images(12, side, seed=0))
    return {"baseline": baseline, "ssg": treated, "neutral": neutral, "reference": reference}


def test_spectra_writes_both_figures_and_tables(runs, tmp_path):
    out = run_spectral_analysis(
        runs["baseline"], runs["ssg"], runs["reference"], tmp_path, num_latent_samples=NUM_LATENT
    )
    assert sorted(out) == sorted(OUTPUT_NAMES)
    for key in ("latent_png", "pixel_png"):
        assert out[key].read_bytes()[:4] == b"\x89PNG"
    latent = pd.read_csv(out["latent_csv"])
    assert sorted(set(latent["to_step"])) == [2, 3]  # tiny: scales 1-2-3, two transitions
    assert set(latent["num_samples"]) == {NUM_LATENT} and set(latent["mode"]) == {"forced"}
    first = latent[latent.to_step == 2]
    assert first["prev_patch_num"].iloc[0] == 1 and first["nyquist_bin"].iloc[0] == 1
    assert np.isfinite(latent["delta_mean"]).all() and np.isfinite(latent["delta_std"]).all()
    for step, panel in latent.groupby("to_step"):  # β > 0: SSG at step b moves f̂ at every b
        assert (panel["delta_mean"] != 0).any(), f"latent delta after step {step} is all zero"
    pixel = pd.read_csv(out["pixel_csv"])
    assert pixel["freq"].iloc[0] == 0 and np.isfinite(pixel["baseline_ratio"]).all()
    assert not np.allclose(pixel["baseline_amplitude"], pixel["ssg_amplitude"])
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_spectral_analysis(runs["baseline"], runs["ssg"], runs["reference"], tmp_path)


@pytest.mark.parametrize("mode", ["forced", "free"])
def test_neutral_ssg_gives_exactly_zero_latent_delta(runs, tmp_path, mode):
    out = run_spectral_analysis(
        runs["baseline"],
        runs["neutral"],
        runs["reference"],
        tmp_path,
        num_latent_samples=NUM_LATENT,
        latent_mode=mode,
    )
    latent = pd.read_csv(out["latent_csv"])
    assert (latent["delta_mean"] == 0).all() and (latent["delta_std"] == 0).all()
    pixel = pd.read_csv(out["pixel_csv"])
    assert np.array_equal(pixel["baseline_amplitude"], pixel["ssg_amplitude"])


def test_cli_command_prints_one_final_line(runs, tmp_path, capsys):
    main(
        [
            "spectra",
            "--baseline",
            str(runs["baseline"]),
            "--ssg",
            str(runs["ssg"]),
            "--reference",
            str(runs["reference"]),
            "--out",
            str(tmp_path),
            "--num-latent-samples",
            "2",
            "--latent-mode",
            "free",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "pixel_spectrum.png") in lines[0]


def test_regenerated_samples_match_the_stored_images(runs):
    import torch
    from omegaconf import OmegaConf

    from ssg_eval.analysis.latent import sample_indices
    from ssg_eval.runs.io import read_json
    from ssg_eval.sampling.generate import build_sampling_model
    from ssg_eval.sampling.shards import iter_run_images

    cfg = OmegaConf.create(read_json(runs["ssg"] / "manifest.json")["config"])
    model = build_sampling_model(cfg, torch.device("cpu"))
    indices = list(range(int(cfg.sampler.batch_size)))  # the stored chunk's first forward batch
    regenerated = sample_indices(
        model.var, model.vae, cfg, indices, model.processors, None, torch.device("cpu")
    )
    stored, _, stored_indices = next(iter_run_images(runs["ssg"], len(indices)))
    assert stored_indices.tolist() == indices
    assert np.array_equal(regenerated, stored)


def test_a_shrunk_run_is_read_at_its_own_n(runs, tmp_path):
    """Shrinking N keeps the later shards on disk; the spectra read the first N samples only.

    Both runs are sampled at N = 20 (chunks of 8), then at N = 10: chunk 1 is regenerated
    shorter and chunk 2 stays on disk unread, so the pixel spectra must equal those of the
    fixture's runs, sampled at N = 10 from the start (the spectra used to read every shard
    present and stop at chunk 2: "starts at index 16, expected 10").
    """
    from omegaconf import OmegaConf

    from ssg_eval.runs.io import read_json
    from ssg_eval.sampling.runner import sample_run

    shrunk = {}
    for key in ("baseline", "ssg"):
        config = read_json(runs[key] / "manifest.json")["config"]
        config["paths"]["results"] = str(tmp_path / "results")
        for n in (20, 10):
            config["sampler"]["num_samples"] = n
            cfg = OmegaConf.create(config)
            sample_run(cfg)
        shrunk[key] = run_dir(cfg)
        assert (shrunk[key] / "shards" / "chunk_00002.npz").is_file()  # beyond N, kept
    spectra = []
    for pair, out in ((shrunk, tmp_path / "out_shrunk"), (runs, tmp_path / "out_fresh")):
        written = run_spectral_analysis(
            pair["baseline"], pair["ssg"], runs["reference"], out, num_latent_samples=1
        )
        spectra.append(pd.read_csv(written["pixel_csv"]))
    pd.testing.assert_frame_equal(spectra[0], spectra[1], check_exact=True)
