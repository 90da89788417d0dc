"""Strict composition and dry runs: typos fail listing the choices, `dry_run=true` writes nothing.

The stage entry points run in-process (`main()` with a patched argv), exactly as their console
scripts do; the results tree is compared file by file before and after.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from ssg_eval.cli import check_composition
from ssg_eval.errors import ConfigError
from ssg_eval.sampling.runner import sample_run
from tests.conftest import compose_config
from tests.faults.conftest import TINY, tiny

REPO = Path(__file__).resolve().parents[2]
STAGES = ("sample", "features", "metrics", "report", "pipeline")


def test_experiment_typo_lists_the_experiments():
    with pytest.raises(ConfigError) as err:
        check_composition("config", ["experiment=table1/d16_cfg_sgg"])
    message = str(err.value)
    assert "experiment=table1/d16_cfg_sgg does not exist" in message
    assert "'table1'" in message and "'smoke'" in message
    check_composition("config", ["experiment=table1", "model=var_d16"])
    check_composition("config", ["experiment=beta_sweep"])


def test_experiment_typo_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.stages.sample", "experiment=table1/d16_cfg_sgg",
         f"paths.results={tmp_path / 'res'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "valid experiments" in lines[0], proc.stderr
    assert not (tmp_path / "res").exists()


def test_a_metric_typo_fails_at_composition_in_one_line_naming_the_metrics(tmp_path):
    # metrics.metrics is typed with the MetricName enum: the typo stops before any model is built.
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.stages.pipeline", "experiment=smoke", "model=tiny",
         f"paths.results={tmp_path / 'res'}", "metrics.metrics=[fid,fdd_dinov2]"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ssg-pipeline: error: "), proc.stderr
    assert "'fdd_dinov2'" in lines[0] and "metrics.metrics[1]" in lines[0]
    assert "expected one of [fid, sfid, is, precision, recall, fd_dinov2, fwd" in lines[0]
    assert not (tmp_path / "res").exists()


def test_the_root_names_no_model_and_samples_with_the_evaluation_recipe():
    with pytest.raises(ConfigError, match="You must specify 'model'"):
        check_composition("config", [])
    cfg = compose_config(["model=var_d16"], config_name="config")
    assert cfg.sampler.num_samples == 50_000 and cfg.sampler.top_k == 900  # the real sampler
    check_composition("config", ["model=tiny"])


def test_sweeps_over_experiments_compose(tmp_path):
    # A glob over experiments is a valid Hydra sweep: every matching experiment is one job.
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.stages.report", "-m", "experiment=glob(smoke*)",
         f"paths.results={tmp_path / 'res'}", "dry_run=true"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stems = [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("dry run")]
    smoke_experiments = list((REPO / "conf" / "experiment").glob("smoke*.yaml"))
    assert len(stems) == len(smoke_experiments) >= 3, proc.stdout
    assert not (tmp_path / "res").exists()


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("stage", STAGES)
def test_dry_run_writes_nothing(stage, tmp_path, monkeypatch, capsys):
    sampled = sample_run(tiny(tmp_path))  # a finished run: resumes must not touch it either
    before = tree(tmp_path)
    module = importlib.import_module(f"ssg_eval.stages.{stage}")
    argv = [stage, *TINY, f"paths.results={tmp_path}", "dry_run=true"]
    monkeypatch.setattr(sys, "argv", argv)
    module.main()
    assert "dry run" in capsys.readouterr().out
    assert tree(tmp_path) == before
    assert (sampled / "manifest.json").is_file()
    empty = tmp_path / "empty"
    monkeypatch.setattr(sys, "argv", [stage, *TINY, f"paths.results={empty}", "dry_run=true"])
    module.main()
    assert not empty.exists()
