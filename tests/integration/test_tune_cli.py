"""`python -m ssg_eval.tune` end to end on the tiny model with the real (random) Inception.

Slow: the CPU Inception costs ~0.3 s per image. Covers the grid + halving CLI, its idempotent
rerun, the Optuna sweeper (hydra-optuna-sweeper, in-memory storage) and `GUIDANCE=tuned`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ssg_eval.stages.tuned import tuned_cell_overrides
from tests.conftest import CONF_DIR

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-m", "ssg_eval.tune", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~1 min on an idle 2-core box; the CPU Inception dominates
def test_tune_cli_halving_then_optuna_then_table1_cell(tmp_path):
    common = ["target=tiny_d1", "tune=tiny", f"results={tmp_path}", "space.betas=[0.0,2.0]",
              "space.readings={default: {}}", f"guidance_dir={tmp_path / 'local'}",
              "stats.bootstrap_resamples=10"]  # fmt: skip
    proc = run(*common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ssg-tune: wrote" in proc.stdout
    state = json.loads((tmp_path / "tune" / "tiny_d1" / "state.json").read_text())
    assert state["final"] is not None
    again = run(*common)  # idempotent: nothing new is measured
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "tune" / "tiny_d1" / "state.json").read_text()) == state
    sweep = run("-m", *common, "mode=trial", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
                "hydra.sweeper.sampler.seed=0", "trial.beta=interval(0,2)")  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    trials = json.loads((tmp_path / "tune" / "tiny_d1" / "trials.json").read_text())
    assert len(trials) == 2 and all(0 <= t["params"]["beta"] <= 2 for t in trials)
    # the winner feeds Table 1 through Hydra's search path
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cell = ["experiment=smoke", "model=tiny_d1", "guidance=cfg_ssg"]
        ssg = compose(config_name="config", overrides=cell)
        extra = tuned_cell_overrides(ssg, tmp_path / "local")
        if state["winner"] != "baseline":
            tuned = compose(config_name="config",
                            overrides=[*cell, *extra])  # fmt: skip
            assert tuned.guidance.ssg.beta == 2.0 and tuned.run_name.endswith("_tuned")
