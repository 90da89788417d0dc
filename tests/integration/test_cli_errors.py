"""The error contract from every console script: a bug shows its traceback, a user error one line.

For each script one subprocess (`tests/cli_planting.py`) replaces the library function the script
hands to the error handler with one that raises a planted exception, and runs `main()` with a
valid command line once per exception. A builtin `KeyError` / `RuntimeError` / `ValueError` is a
bug: full traceback on stderr, exit 1. Every `ssg_eval.errors` class (and `FileNotFoundError` /
`FileExistsError`) is the user's to fix: exactly one line `<prog>: error: <message>`, exit 2.
The argparse scripts, where a run costs nothing, take every user error class; the Hydra stages
take two of them. The subprocesses run side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssg_eval import errors
from tests.conftest import SUBPROCESS_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]
BUGS = ("KeyError", "RuntimeError", "ValueError")
USER_ERRORS = (*[n for n in errors.__all__ if n != "UserError"], "FileNotFoundError",
               "FileExistsError")  # fmt: skip
SOME_USER_ERRORS = ("ConfigError", "FileNotFoundError")
RESULTS = "{tmp}/results"
HYDRA_CELL = ["experiment=smoke", "model=tiny", f"paths.results={RESULTS}", "dry_run=true"]
# console script -> (module, main, the library function its handler runs, argv, cheap to repeat)
SCRIPTS = {
    "ssg-sample": ("ssg_eval.stages.sample", "ssg_eval.stages.sample:sample_stage", HYDRA_CELL),
    "ssg-features": ("ssg_eval.stages.features", "ssg_eval.stages.features:run_features",
                     HYDRA_CELL),
    "ssg-metrics": ("ssg_eval.stages.metrics", "ssg_eval.stages.metrics:run_metrics", HYDRA_CELL),
    "ssg-report": ("ssg_eval.stages.report", "ssg_eval.stages.report:run_report",
                   ["experiment=smoke", f"paths.results={RESULTS}", "dry_run=true"]),
    "ssg-pipeline": ("ssg_eval.stages.pipeline", "ssg_eval.stages.pipeline:run_cell", HYDRA_CELL),
    "ssg-tune": ("ssg_eval.tune.__main__", "ssg_eval.tune.__main__:run_tune",
                 ["target=tiny_d1", "tune=tiny", f"results={RESULTS}", "hydra.run.dir={tmp}/run"]),
    "ssg-suite": ("ssg_eval.stages.suite", "ssg_eval.stages.suite:run_suite",
                  ["smoke", f"paths.results={RESULTS}"]),
    "ssg-smoke": ("ssg_eval.smoke", "ssg_eval.smoke:run_smoke", [f"paths.results={RESULTS}"]),
    "ssg-analysis": ("ssg_eval.analysis.cli", "ssg_eval.analysis.cli:run_spectral_analysis",
                     ["spectra", "--baseline", "b", "--ssg", "s", "--reference", "r.npz",
                      "--out", "{tmp}/spectra"]),
    "ssg_eval.metrics.cli": ("ssg_eval.metrics.cli", "ssg_eval.metrics.compute:evaluate_npz",
                             ["s.npz", "r.npz", "--out", "{tmp}/metrics.json"]),
}  # fmt: skip
ARGPARSE = {"ssg-suite", "ssg-smoke", "ssg-analysis", "ssg_eval.metrics.cli"}


def _kinds(script: str) -> tuple[str, ...]:
    return (*BUGS, *(USER_ERRORS if script in ARGPARSE else SOME_USER_ERRORS))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    """{script: {kind: {code, stderr}}}, every script's subprocess started at once."""
    root = tmp_path_factory.mktemp("planted")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    running = {}
    for script, (module, target, argv) in SCRIPTS.items():
        folder = root / script.replace(".", "_")
        folder.mkdir()
        spec = {"module": module, "target": target, "prog": script, "kinds": _kinds(script),
                "argv": [a.format(tmp=folder) for a in argv]}  # fmt: skip
        (folder / "spec.json").write_text(json.dumps(spec))
        command = [sys.executable, str(REPO / "tests" / "cli_planting.py"),
                   str(folder / "spec.json"), str(folder / "out.json")]  # fmt: skip
        running[script] = (folder, subprocess.Popen(command, cwd=folder, env=env,
                                                    stderr=subprocess.PIPE, text=True))  # fmt: skip
    out = {}
    for script, (folder, proc) in running.items():
        _, stderr = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        assert proc.returncode == 0, f"{script}: the planting harness failed:\n{stderr[-3000:]}"
        out[script] = json.loads((folder / "out.json").read_text())
        assert not (folder / "results").exists(), f"{script} wrote under paths.results"
    return out


@pytest.mark.parametrize(("script", "kind"), [(s, k) for s in SCRIPTS for k in BUGS])
def test_a_planted_bug_prints_its_traceback_and_exits_non_zero(outcomes, script, kind):
    got = outcomes[script][kind]
    assert got["code"] == 1, got
    stderr = got["stderr"]
    assert "Traceback (most recent call last)" in stderr, stderr
    assert f"{kind}: " in stderr and "planted" in stderr, stderr
    assert "raise_planted" in stderr  # the trace reaches the library function that raised
    assert f"{script}: internal error" in stderr


@pytest.mark.parametrize(("script", "kind"), [(s, k) for s in SCRIPTS for k in _kinds(s)
                                              if k not in BUGS])  # fmt: skip
def test_a_user_error_prints_one_line_and_exits_2(outcomes, script, kind):
    got = outcomes[script][kind]
    assert got["code"] == 2, got
    lines = got["stderr"].strip().splitlines()
    assert len(lines) == 1, got["stderr"]
    assert lines[0].startswith(f"{script}: error: planted {kind}"), lines


def test_every_user_error_class_is_planted():
    # One user-error test per class: the argparse scripts take every class errors.py defines.
    classes = {n for n in errors.__all__ if n != "UserError"}
    assert classes <= set(USER_ERRORS)
    assert all(issubclass(getattr(errors, n), errors.UserError) for n in classes)
