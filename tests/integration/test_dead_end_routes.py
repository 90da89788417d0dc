"""The documented routes that used to stop: make table1 GUIDANCE=tuned, the tiny tuned route,
two tunes of one model, a killed tune's samples, and smoke guidance that changes nothing.

None of these runs the Inception network; the full route on a fresh clone is in
tests/e2e/test_fresh_clone.py (slow).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from hydra import compose, initialize_config_dir

from ssg_eval.errors import RunLockedError
from tests.conftest import CONF_DIR

REPO = Path(__file__).resolve().parents[2]


def test_make_table1_guidance_tuned_parses_options_after_the_overrides(tmp_path):
    """The Makefile puts `--guidance tuned` before the Hydra overrides."""
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.stages.suite", "table1", "--guidance", "tuned",
         "launch.nproc_per_node=1", "launch.nnodes=1", f"paths.results={tmp_path}"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    assert "unrecognized arguments" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "needs a tuned guidance for var_d16; run make tune MODEL=var_d16 first" in lines[0]


def _tuned_file(results: Path, beta: float) -> Path:
    path = results / "tune" / "tiny_d1" / "guidance" / "tuned_tiny_d1.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "# as make tune writes it\ndefaults: [base_guidance, _self_]\nname: cfg_ssg\n"
        f"order: [cfg_ramp, ssg]\ncfg_ramp: {{scale: 1.5}}\nssg: {{beta: {beta}}}\n"
    )
    return path


def test_tiny_tuned_route_switches_the_ssg_cell_only(tmp_path):
    from ssg_eval.cli import compose_context
    from ssg_eval.stages.suite import compose_cells, load_suite

    _tuned_file(tmp_path, 2.0)
    with compose_context():
        cells = compose_cells(load_suite("smoke_tuned"), [f"paths.results={tmp_path}"], [0],
                              guidance="tuned")  # fmt: skip
    by_name = {str(cfg.run_name): cfg for cfg, _ in cells}
    assert sorted(by_name) == ["tiny_d1_cfg_s0", "tiny_d1_cfg_ssg_s0_tuned"]
    assert by_name["tiny_d1_cfg_ssg_s0_tuned"].guidance.ssg.beta == 2.0
    assert by_name["tiny_d1_cfg_s0"].report.output_stem == "smoke_tuned_table"  # not smoke's


def _tune_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="tune", overrides=["target=tiny_d1", "tune=tiny", *overrides])


def test_tiny_tune_reuses_make_smokes_assets():
    """`make tune MODEL=tiny_d1` used to copy the ~180 MB smoke assets a second time."""
    from ssg_eval.smoke import DEFAULT_RESULTS
    from ssg_eval.tune.__main__ import tune_dir_of
    from ssg_eval.tune.evaluate import PipelineEvaluator
    from ssg_eval.tune.space import BASELINE, Candidate

    cfg = _tune_cfg()
    smoke = Path(DEFAULT_RESULTS).resolve()
    assert tune_dir_of(cfg) == smoke / "tune" / "tiny_d1"
    base = PipelineEvaluator(cfg, tune_dir_of(cfg)).compose(Candidate(BASELINE, {}, (), False), 20)
    assert Path(base.metrics.reference) == smoke / "assets" / "reference_tiny.npz"
    assert Path(base.model.var_ckpt) == smoke / "assets" / "tiny_d1.pth"


def test_tune_measures_the_feature_metrics_of_an_experiment_that_asks_for_fwd(monkeypatch):
    """experiment=smoke asks for fwd, which compute_metrics refuses: make tune failed at rung 1."""
    import ssg_eval.metrics.compute as compute
    from ssg_eval.tune.__main__ import tune_dir_of
    from ssg_eval.tune.evaluate import PipelineEvaluator, RunFeatures
    from ssg_eval.tune.space import BASELINE, Candidate

    cfg = _tune_cfg()
    evaluator = PipelineEvaluator(cfg, tune_dir_of(cfg))
    base = evaluator.compose(Candidate(BASELINE, {}, (), False), 20)
    assert "fwd" in base.metrics.metrics
    seen = {}
    monkeypatch.setattr(compute, "compute_metrics", lambda *a, **k: seen.update(k) or {})
    monkeypatch.setattr(evaluator, "reference", lambda _cfg: (None, None))
    evaluator.metrics_of(base, RunFeatures({}, np.zeros(0), Path("."), 0, 0.0))
    assert "fid" in seen["metrics"] and set(seen["metrics"]) <= set(compute.ALL_METRICS)


def test_a_second_tune_is_refused_before_any_asset_is_built(tmp_path, monkeypatch):
    import ssg_eval.smoke as smoke
    from ssg_eval.tune.__main__ import run_tune, tune_dir_of

    built = []
    monkeypatch.setattr(smoke, "make_assets", lambda cfgs: built.append(cfgs) or [])
    cfg = _tune_cfg(f"results={tmp_path}")
    directory = tune_dir_of(cfg)
    directory.mkdir(parents=True)
    with FileLock(str(directory / ".tune.lock")):
        with pytest.raises(RunLockedError, match="another tune of tiny_d1 is running"):
            run_tune(cfg)
    assert built == []


def test_samples_made_before_a_kill_count_when_first_measured(tmp_path):
    """The killed session sampled the run; the restart finds it on disk (0 new samples)."""
    from ssg_eval.metrics.keys import FID, IS
    from ssg_eval.tune.halving import Measurement, run_halving
    from ssg_eval.tune.space import BASELINE, Candidate

    cands = [
        Candidate(BASELINE, {"beta": 0.0}, (), False),
        Candidate("b1", {"beta": 1.0}, (), True),
    ]

    def on_disk(cand, n):  # every run already holds its samples
        return Measurement({FID: 1.0 + cand.params["beta"], IS: 2.0}, new_samples=0, device_s=0.0)

    state = run_halving(cands, on_disk, state_path=tmp_path / "state.json", sizes=[10, 20],
                        n_final=40, keep_fraction=0.5, objective="fid", budget={},
                        fingerprint="f")  # fmt: skip
    measured = sorted((e["key"], e["n"]) for e in state["evaluations"].values())
    top = {key: max(n for k, n in measured if k == key) for key, _ in measured}
    assert state["spent"]["samples"] == sum(top.values())  # each run once, up to its largest N


SMOKE_GUIDANCE = ["none", "cfg", "icg", "autoguidance", "ssg", "cfg_ssg", "autoguidance_ssg"]


@pytest.fixture(scope="module")
def smoke_guidance_images(tmp_path_factory):
    """10 samples of every smoke_guidance cell, from the smoke's own checkpoints."""
    from ssg_eval.cli import compose_context
    from ssg_eval.sampling.generate import build_sampling_model, generate_chunk
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.smoke import make_checkpoints
    from ssg_eval.stages.suite import compose_cells, load_suite

    results = tmp_path_factory.mktemp("smoke_guidance")
    overrides = [f"paths.results={results}", "sampler.num_samples=10", "sampler.chunk_size=10",
                 "runtime.device=cpu"]  # fmt: skip
    with compose_context():
        cells = [cfg for cfg, _ in compose_cells(load_suite("smoke_guidance"), overrides, [0])]
    make_checkpoints(cells)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        images = {}
        for cfg in cells:
            model = build_sampling_model(cfg, torch.device("cpu"))
            chunk = generate_chunk(model, cfg, plan_from_config(cfg), 0, torch.device("cpu"))
            images[(cfg.model.name, cfg.guidance.name)] = chunk
    finally:
        torch.set_num_threads(threads)
    return images


@pytest.mark.parametrize("model", ["tiny_d1", "tiny_d3"])
def test_every_smoke_guidance_changes_the_samples(smoke_guidance_images, model):
    """On tiny_d1 the CFG ramp used to leave every image byte-identical to no guidance."""
    cells = {g: v for (m, g), v in smoke_guidance_images.items() if m == model}
    assert set(cells) == set(SMOKE_GUIDANCE) - ({"autoguidance", "autoguidance_ssg"}
                                               if model == "tiny_d1" else set())  # fmt: skip
    for guidance, images in cells.items():
        if guidance != "none":
            changed = (images != cells["none"]).any(axis=(1, 2, 3)).sum()
            assert changed >= 3, (guidance, int(changed))
    assert not np.array_equal(cells["cfg_ssg"], cells["cfg"])
