"""User-facing commands: README make targets, the up-front missing-file check, and a β sweep
through Hydra multirun that ends in a sweep table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SUBPROCESS_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]


def run(args, tmp_path, **env):
    environment = dict(os.environ, OMP_NUM_THREADS="2", **env)
    return subprocess.run(
        args,
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def readme_make_targets() -> list[str]:
    text = (REPO / "README.md").read_text()
    return sorted(set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", text)))


def test_readme_names_make_targets_that_exist(tmp_path):
    targets = readme_make_targets()
    assert {"smoke", "test", "table1"} <= set(targets)
    for target in targets:
        proc = run(["make", "-n", target], tmp_path)
        assert proc.returncode == 0, f"make {target}: {proc.stderr}"
    proc = run(["make", "help"], tmp_path)
    for target in targets:
        assert re.search(rf"^\s+{target}\s", proc.stdout, re.M), target


def test_table1_lists_every_missing_file_before_any_work(tmp_path):
    proc = run(
        [
            sys.executable,
            "-m",
            "ssg_eval.stages.suite",
            "table1",
            f"paths.results={tmp_path / 'res'}",
        ],  # fmt: skip
        tmp_path,
        SSG_EVAL_CKPT_DIR=str(tmp_path / "ckpt"),
        SSG_EVAL_REFERENCE=str(tmp_path / "VIRTUAL_imagenet256_labeled.npz"),
        SSG_EVAL_INCEPTION=str(tmp_path / "inception.pth"),
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[0].startswith("ssg-suite: error: 7 input file(s) missing, nothing was started")
    text = proc.stderr
    names = ["var_d16.pth", "var_d20.pth", "var_d24.pth", "var_d30.pth", "vae_ch160v4096z32.pth",
             "VIRTUAL_imagenet256_labeled.npz", "inception.pth"]  # fmt: skip
    for name in names:
        assert name in text, name
    assert not (tmp_path / "res" / "runs").exists()


@pytest.fixture(scope="module")
def tiny_assets(tmp_path_factory):
    """Random-weight Inception and a synthetic ADM reference for the tiny model's 48x48 output."""
    import torch

    from ssg_eval.features.inception import build_inception, make_random_inception_weights
    from ssg_eval.metrics.reference import build_reference_npz
    from ssg_eval.smoke import synthetic_images

    root = tmp_path_factory.mktemp("assets")
    weights = root / "inception.pth"
    make_random_inception_weights(weights, seed=0)
    model = build_inception(weights, torch.device("cpu"))
    images = synthetic_images(10, 48, seed=1)
    build_reference_npz(images, root / "ref.npz", model, batch_size=10, center_crop=False,
                        resolution=48)  # fmt: skip
    return root


@pytest.mark.slow  # a second end-to-end pipeline run (the smoke e2e test is the one in make test)
def test_beta_sweep_multirun_gives_one_run_per_value_and_a_sweep_table(tmp_path, tiny_assets):
    results = tmp_path / "res"
    common = [
        "model=tiny", "sampler=tiny", "sampler.num_samples=10", "runtime.device=cpu",
        f"paths.results={results}", f"metrics.reference={tiny_assets / 'ref.npz'}",
        "metrics.reference_name=ref.npz",
        f"metrics.inception_weights={tiny_assets / 'inception.pth'}",
        "runtime.latency_repeats=1",
    ]  # fmt: skip
    proc = run(
        [sys.executable, "-m", "ssg_eval.stages.pipeline", "-m", "experiment=beta_sweep", *common,
         "guidance.ssg.beta=0,0.5"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.name for p in (results / "runs").iterdir())
    assert runs == ["tiny_ssg_b0.0_constant_s0", "tiny_ssg_b0.5_constant_s0"]
    proc = run(
        [sys.executable, "-m", "ssg_eval.stages.report", "experiment=beta_sweep", *common], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = pd.read_csv(results / "beta_sweep_sweep.csv")
    assert sorted(sweep["beta"]) == [0.0, 0.5]
    assert np.isfinite(sweep["fid"]).all()
    assert (results / "beta_sweep_sweep.png").is_file()
