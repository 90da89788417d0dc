"""The README's routes on a fresh clone, in order, through make: smoke, tune, tuned table, sweep.

Slow (it builds its own .venv with `make install`, ~2-3 min, then runs the whole tiny pipeline):
`make smoke`, `make tune MODEL=tiny_d1`, `make smoke SMOKE=smoke_tuned GUIDANCE=tuned`, then a plain
`-m guidance.ssg.beta=0,0.5,1` multirun without a run name and its report. Every step must exit 0;
the wall time of each is printed (`pytest -s`) for docs/RELIABILITY.md and the reports.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.e2e.test_smoke import assert_metrics_inside_their_range

REPO = Path(__file__).resolve().parents[2]
STEP_TIMEOUT_S = 1500


def _step(clone: Path, command: list[str], walls: dict[str, float]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "SSG_EVAL_"))}
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True,
                          timeout=STEP_TIMEOUT_S)  # fmt: skip
    walls[" ".join(command)] = time.perf_counter() - start
    assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(4 * STEP_TIMEOUT_S + 1200)
def test_fresh_clone_smoke_tune_tuned_table_and_sweep(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
    walls: dict[str, float] = {}
    python = str(clone / ".venv" / "bin" / "python")
    _step(clone, ["make", "install"], walls)
    _step(clone, ["make", "smoke"], walls)
    smoke = clone / "results" / "smoke"
    runs = pd.read_csv(smoke / "smoke_table1_runs.csv")
    assert len(runs) == 12
    assert_metrics_inside_their_range(runs)  # every row of both seeds

    _step(clone, ["make", "tune", "MODEL=tiny_d1"], walls)
    tuned = smoke / "tune" / "tiny_d1" / "guidance" / "tuned_tiny_d1.yaml"
    assert tuned.is_file() and not (clone / "results" / "assets").exists()  # one asset copy
    _step(clone, ["make", "smoke", "SMOKE=smoke_tuned", "GUIDANCE=tuned"], walls)
    table = pd.read_csv(smoke / "smoke_tuned_table.csv")
    assert sorted(table["guidance"]) == ["cfg", "cfg_ssg"] and table["fid"].notna().all()
    assert (smoke / "runs" / "tiny_d1_cfg_ssg_s0_tuned" / "metrics.json").is_file()

    _step(clone, [python, "-m", "ssg_eval.stages.pipeline", "-m", "experiment=smoke",
                  "paths.results=results/smoke", "guidance=cfg_ssg",
                  "guidance.ssg.beta=0,0.5,1"], walls)  # fmt: skip
    names = [f"tiny_d1_cfg_ssg_s0_beta{b}" for b in ("0.0", "0.5", "1.0")]
    assert all((smoke / "runs" / n / "metrics.json").is_file() for n in names)
    _step(clone, [python, "-m", "ssg_eval.stages.report", "experiment=smoke",
                  "paths.results=results/smoke", "report.run_prefix=tiny_d1_cfg_ssg_s0_beta",
                  "report.output_stem=smoke_beta_sweep", "report.page=false"], walls)  # fmt: skip
    sweep = pd.read_csv(smoke / "smoke_beta_sweep_sweep.csv")
    assert sorted(sweep["beta"]) == [0.0, 0.5, 1.0]
    for command, wall in walls.items():
        print(f"{wall:8.1f} s  {command}")
