"""The tuner on the tiny model: real sampling stages, a cheap stand-in feature network.

The stand-in (a fixed random projection of 8x8 average-pooled pixels) replaces the CPU Inception
(~0.3 s per image) so the whole search runs in seconds; `test_tune_cli.py` (slow) runs the real
network through `python -m ssg_eval.tune`.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from ssg_eval.runs.io import atomic_write_npz
from ssg_eval.tune.__main__ import run_trial, run_tune
from ssg_eval.tune.evaluate import PipelineEvaluator
from tests.conftest import CONF_DIR

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class StandInFeatures(torch.nn.Module):
    """uint8 (B, 3, H, W) -> pool (2048), spatial (2023), logits (1008): fixed random maps."""

    weights_sha256 = "stand-in"

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.pool = torch.randn(192, 2048, generator=gen) / 8
        self.spatial = torch.randn(192, 2023, generator=gen) / 8
        self.logits = torch.randn(2048, 1008, generator=gen) / 4

    def forward(self, images_BCHW):
        x = torch.nn.functional.adaptive_avg_pool2d(images_BCHW.float() / 255, 8).flatten(1)
        x = x - 0.5
        pool = torch.tanh(x @ self.pool)
        return {"pool": pool, "spatial": x @ self.spatial, "logits": pool @ self.logits}


@pytest.fixture(scope="module", autouse=True)
def stand_in_network():
    """Every `build_inception` call (features stage, reference features) gets the stand-in."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("ssg_eval.features.inception.build_inception",
                      lambda *args, **kwargs: StandInFeatures())  # fmt: skip
        yield


StandInEvaluator = PipelineEvaluator


class Killed(Exception):
    pass


def killing_evaluator(after: int):
    class Killing(StandInEvaluator):
        calls = 0

        def measure(self, cand, n):
            if type(self).calls >= after:
                raise Killed(f"killed before measurement {after + 1}")
            type(self).calls += 1
            return super().measure(cand, n)

    return Killing


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Tiny checkpoints and a stand-in reference of held-out baseline samples (seed 1000003)."""
    from ssg_eval import smoke
    from ssg_eval.features.extract import extract_features
    from ssg_eval.metrics.stats import feature_statistics

    root = tmp_path_factory.mktemp("tune_assets")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "experiment=smoke",
                "model=tiny_d1",
                f"paths.results={root}",
                "runtime.device=cpu",
            ],
        )
    (root / "assets").mkdir()
    (root / "assets" / "inception_random.pth").write_bytes(b"stand-in")  # never loaded
    atomic_write_npz(root / "assets" / "reference_tiny.npz", arr_0=np.zeros((1, 48, 48, 3)))
    smoke.make_assets([cfg])  # checkpoints only: Inception and reference exist
    images = smoke.held_out_baseline_images(cfg, num=40)
    feats = extract_features([images], StandInFeatures(), batch_size=40, device="cpu",
                             progress=False)  # fmt: skip
    mu, sigma = feature_statistics(feats["pool"])
    mu_s, sigma_s = feature_statistics(feats["spatial"])
    atomic_write_npz(root / "assets" / "reference_tiny.npz", arr_0=images, mu=mu, sigma=sigma,
                     mu_s=mu_s, sigma_s=sigma_s)  # fmt: skip
    return root


def tune_cfg(assets, results, *extra, n_cap=40, n_final=80):
    """The `tune=tiny` config on a fresh results folder sharing the assets."""
    results.mkdir(parents=True, exist_ok=True)
    if not (results / "assets").exists():
        os.symlink(assets / "assets", results / "assets")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="tune", overrides=[
            "target=tiny_d1", "tune=tiny", f"results={results}", "make_smoke_assets=false",
            f"guidance_dir={results / 'conf_local'}", "stats.bootstrap_resamples=20",
            "space.betas=[0.0,2.0]", f"halving.n_cap={n_cap}", f"halving.n_final={n_final}",
            "overrides=['sampler.chunk_size=10','runtime.device=cpu','runtime.measure_latency=false',"
            "'metrics.metrics=[fid,is,precision,recall]']", *extra,
        ])  # fmt: skip


def state_of(results):
    return json.loads((results / "tune" / "tiny_d1" / "state.json").read_text())


@pytest.fixture(scope="module")
def reference_tune(assets, tmp_path_factory):
    results = tmp_path_factory.mktemp("tune_ref")
    written = run_tune(tune_cfg(assets, results), StandInEvaluator)
    return results, written


def test_tune_writes_report_and_tuned_guidance(reference_tune):
    results, written = reference_tune
    state = state_of(results)
    assert [r["n"] for r in state["rungs"]] == [20, 40]
    assert len(state["rungs"][0]["evaluated"]) == 3  # baseline + 1 beta x 2 readings
    assert state["final"]["n"] == 80 and state["winner"] in state["final"]["metrics"]
    for key in ("csv", "fid_vs_beta", "fid_is_front", "md", "summary_json"):
        assert written[key].is_file(), key
    import pandas as pd

    frame = pd.read_csv(written["csv"])
    ssg = frame[frame.candidate != "baseline"]
    assert (
        ssg["d_fid_ci_low"].le(ssg["d_fid"]).all() and ssg["d_fid_ci_high"].ge(ssg["d_fid"]).all()
    )
    assert ssg["d_fid_mde"].gt(0).all()
    md = written["md"].read_text()
    assert "FID gain is" in md and "device-hours" in md
    if state["winner"] != "baseline":
        text = written["guidance"].read_text()
        assert "space_fingerprint" in text and "commit" in text


def test_growth_reuses_samples_and_features(reference_tune):
    results, _ = reference_tune
    state = state_of(results)
    grown = state["evaluations"]["baseline@40"]
    assert grown["new_samples"] == 20  # only indices 20..39 were generated
    run = results / "runs" / "tune_tiny_d1_baseline"  # one run per candidate, whatever N
    assert sorted(p.name for p in (run / "shards").glob("chunk_*.npz"))[-1] == "chunk_00007.npz"
    # one cached feature file per shard: grown runs extracted their new shards only
    assert len(list((run / "features_cache").glob("chunk_*.npz"))) == 8
    assert state["spent"]["samples"] == sum(e["new_samples"] for e in state["evaluations"].values())
    largest = {}
    for e in state["evaluations"].values():
        largest[e["key"]] = max(largest.get(e["key"], 0), e["n"])
    assert state["spent"]["samples"] == sum(largest.values())  # nothing sampled twice


def test_killed_tune_resumes_to_the_same_decisions(assets, reference_tune, tmp_path):
    reference = state_of(reference_tune[0])
    with pytest.raises(Killed):
        run_tune(tune_cfg(assets, tmp_path), killing_evaluator(4))
    partial = state_of(tmp_path)
    assert len(partial["evaluations"]) == 4 and len(partial["rungs"]) == 1
    run_tune(tune_cfg(assets, tmp_path), StandInEvaluator)
    resumed = state_of(tmp_path)
    assert resumed["rungs"] == reference["rungs"]  # same decisions (deterministic selection)
    assert resumed["winner"] == reference["winner"]
    assert resumed["evaluations"].keys() == reference["evaluations"].keys()
    for key, entry in reference["evaluations"].items():
        assert resumed["evaluations"][key]["metrics"] == entry["metrics"], key
        assert resumed["evaluations"][key]["new_samples"] == entry["new_samples"], key


def test_budget_is_respected_on_the_tiny_model(assets, tmp_path):
    run_tune(tune_cfg(assets, tmp_path, "budget.max_samples=100"), StandInEvaluator)
    state = state_of(tmp_path)
    assert state["spent"]["samples"] <= 100
    assert state["stopped"] is not None and state["final"] is None
    shards = list((tmp_path / "runs").rglob("shards/chunk_*.npz"))
    assert len(shards) * 10 == state["spent"]["samples"]  # every generated sample was counted


def test_beta_zero_reproduces_the_baseline_bit_identically(assets):
    from ssg_eval.sampling.generate import build_sampling_model, generate_chunk
    from ssg_eval.sampling.plan import plan_from_config

    common = ["experiment=smoke", "model=tiny_d1", f"paths.results={assets}", "runtime.device=cpu",
              "sampler.num_samples=20", "sampler.chunk_size=20"]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        base = compose(config_name="config", overrides=common)
        zero = compose(config_name="config",
                       overrides=[*common, "guidance=cfg_ssg", "guidance.ssg.beta=0"])  # fmt: skip
        on = compose(config_name="config",
                     overrides=[*common, "guidance=cfg_ssg", "guidance.ssg.beta=2"])  # fmt: skip
    device = torch.device("cpu")
    images = [generate_chunk(build_sampling_model(c, device), c, plan_from_config(c), 0, device)
              for c in (base, zero, on)]  # fmt: skip
    assert np.array_equal(images[0], images[1])
    assert not np.array_equal(images[0], images[2])


def test_optuna_trial_mode_measures_one_paired_point(assets, tmp_path):
    value = run_trial(tune_cfg(assets, tmp_path, "mode=trial", "trial.beta=0.75"), StandInEvaluator)
    trials = json.loads((tmp_path / "tune" / "tiny_d1" / "trials.json").read_text())
    assert trials[-1]["params"]["beta"] == 0.75 and trials[-1]["objective"] == value
    assert trials[-1]["metrics"]["fid"] != trials[-1]["baseline_metrics"]["fid"]


def test_optuna_sweeper_composes():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="tune", return_hydra_config=True, overrides=[
            "target=var_d16", "mode=trial", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.storage=null"])  # fmt: skip
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.n_trials == 3 and cfg.mode == "trial"


def test_known_function_of_beta_is_optimised_on_the_tiny_model(assets, tmp_path):
    """Real tiny runs, metric replaced by FID = 1 + (beta - 1)^2: the search must return beta 1."""
    from ssg_eval.metrics.keys import FID, IS

    class KnownMetric(PipelineEvaluator):
        def metrics_of(self, cfg, run):
            assert len(run.labels) == cfg.sampler.num_samples  # the runs really happened
            beta = float(cfg.guidance.ssg.beta) if "ssg" in cfg.guidance.order else 0.0
            return {FID: 1 + (beta - 1) ** 2, IS: 1.0}

    cfg = tune_cfg(assets, tmp_path, "space.betas=[0.0,0.5,1.0,2.0]",
                   "space.readings={default: {}}", "stats.bootstrap_resamples=0",
                   n_cap=20, n_final=20)  # fmt: skip
    run_tune(cfg, KnownMetric)
    state = state_of(tmp_path)
    assert state["winner"] == "b1-constant-t1-default"
    assert state["final"]["metrics"]["b1-constant-t1-default"][FID] == 1.0
