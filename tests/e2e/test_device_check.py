"""The prepared GPU device check in its CI form: `device_check.py --cpu --quick` in a subprocess.

Checks that the one table is printed with finite figures (the row parts included: the chunk loop
serial and overlapped, features while sampling), that the JSON line is written, and that the
global time guard skips the remaining parts but still prints the table.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SUBPROCESS_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "device_check.py"
FINITE_ROWS = (
    "sampling img/s, CFG",
    "sampling img/s, CFG+SSG",
    "SSG overhead %",
    "Inception img/s, batch 1",
    "P/R s",
    "FID s",
    "sFID s",
    "IS s",
    "peak memory GiB",
    "projected min, one 50k row, CFG",
    "projected min, one 50k row, CFG+SSG",
    "decode + host transfer % of batch",
    "sampling img/s, host transfer overlapped",
    "sampling img/s, decode+host overlapped",
    "sampling img/s, chunk loop serial",
    "sampling img/s, chunk loop overlapped",
    "overlap gain %",
    "features while sampling overhead %",
)
SKIPPED_ROWS = {
    "Inception img/s, batch 64 (production)": "skipped (--quick)",
    "sampling img/s, CFG, float32": "skipped (main dtype)",
    "sampling img/s, CFG+SSG, float32": "skipped (main dtype)",
}


def run_check(results: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu", "--quick", "--results-dir", str(results), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
    )  # fmt: skip


def table(stdout: str) -> dict[str, str]:
    """figure -> value cell of the printed Markdown table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[0] != "figure":
            rows[cells[0]] = cells[1]
    return rows


def records(results: Path) -> list[dict]:
    path = results / "bench" / "device_check.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    results = tmp_path_factory.mktemp("device_check")
    proc = run_check(results)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return results, proc


def test_quick_prints_every_row_with_finite_numbers(quick):
    _, proc = quick
    assert proc.stdout.startswith("device_check: cpu | torch ")
    rows = table(proc.stdout)
    assert set(rows) == set(FINITE_ROWS) | set(SKIPPED_ROWS), rows
    for figure in FINITE_ROWS:
        assert math.isfinite(float(rows[figure])), (figure, rows[figure])
    for figure in ("sampling img/s, CFG", "Inception img/s, batch 1", "P/R s", "peak memory GiB"):
        assert float(rows[figure]) > 0, figure
    for figure, reason in SKIPPED_ROWS.items():
        assert rows[figure] == reason


def test_quick_appends_one_json_line_with_provenance(quick):
    results, _ = quick
    (record,) = records(results)
    assert record["bench"] == "device_check" and record["quick"] is True
    assert record["device_name"] == "cpu" and record["torch"]
    assert record["dtype"] == "float32" and record["batch"] == 1
    assert record["commit"]
    assert record["sizes"]["pr_samples"] == 2000 and record["sizes"]["pr_reference"] == 500
    assert 0 <= record["results"]["pr"]["precision"] <= 1
    split = record["results"]["decode_host"]
    assert min(split["steps_s"], split["decode_s"], split["host_s"]) > 0
    assert split["images_per_s_serial"] < split["images_per_s_host_hidden"]
    assert math.isfinite(record["projected_min_cfg_ssg"])
    overlap, features = record["results"]["overlap"], record["results"]["features_while_sampling"]
    assert min(overlap["images_per_s_serial"], overlap["images_per_s_overlapped"]) > 0
    assert features["images_per_s_features"] > 0 and features["feature_batch"] == 64
    statuses = {k: v for k, v in record["status"].items() if v != "ok"}
    assert set(statuses) == {"inception_production", "sampling_float32"}


@pytest.mark.slow  # a second device-check run; the quick run above stays in make test
def test_time_guard_skips_the_rest_and_still_prints_the_table(tmp_path):
    proc = run_check(tmp_path, "--time-budget-s", "0", "--num-images", "1")
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = table(proc.stdout)
    assert math.isfinite(float(rows["SSG overhead %"]))
    for figure in ("Inception img/s, batch 1", "P/R s", "FID s", "sFID s", "IS s",
                   "decode + host transfer % of batch"):  # fmt: skip
        assert rows[figure] == "skipped (time guard)", figure
    assert rows["projected min, one 50k row, CFG+SSG"] == "n/a"
    (record,) = records(tmp_path)
    assert record["status"]["pr"] == "skipped (time guard)"
    assert record["projected_min_cfg_ssg"] is None
