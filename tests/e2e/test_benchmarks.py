"""Every benchmark runs in quick mode (so none can rot) and writes complete, consistent records.

No timing is asserted (shared CI machines make timings noise). What is checked is what a reader of
`benchmarks/README.md` relies on: every record carries its provenance, both sides of each
comparison are present and finite, derived ratios agree with the figures they come from, and the
agreement figures (FID eigh vs sqrtm, P/R ours vs ADM-style numpy) hold.
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


def _finite_positive(record: dict, *keys: str) -> None:
    for key in keys:
        value = record[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def check_processors(records: list[dict]) -> None:
    by_processor: dict[str, list[dict]] = {}
    for r in records:
        assert r["bench"] == "processors" and r["dtype"] and r["batch_size"] >= 1
        by_processor.setdefault(r["processor"], []).append(r)
    assert {"cfg_ramp", "ssg"} <= set(by_processor)  # with and without SSG, side by side
    for name, rows in by_processor.items():
        scales = [r for r in rows if r["scope"] == "scale"]
        totals = [r for r in rows if r["scope"] == "total"]
        assert sorted(r["scale_index"] for r in scales) == list(range(len(scales))), name
        assert len(totals) == 1 and len(scales) >= 2, name
        for r in rows:
            assert math.isfinite(r["time_ms_median"]) and r["time_ms_median"] >= 0, (name, r)
        for r in scales:
            assert r["time_ms_min"] <= r["time_ms_median"], (name, r)


def check_sampling(records: list[dict]) -> None:
    (r,) = records
    _finite_positive(r, "plain_s_median", "ssg_s_median", "plain_images_per_s", "ssg_images_per_s")
    overhead = 100 * (r["ssg_s_median"] / r["plain_s_median"] - 1)
    assert r["ssg_overhead_pct"] == pytest.approx(overhead, rel=1e-6, abs=1e-9)
    assert len(r["per_scale_plain_s"]) == len(r["per_scale_ssg_s"]) >= 2
    assert all(math.isfinite(t) and t >= 0 for t in r["per_scale_plain_s"] + r["per_scale_ssg_s"])
    assert r["dtype"] and r["batch_size"] >= 1


def check_metrics(records: list[dict]) -> None:
    benches = {r["bench"]: r for r in records}
    assert set(benches) == {"frechet", "precision_recall"}  # extraction: bench_features
    frechet = benches["frechet"]
    _finite_positive(frechet, "eigh_s", "sqrtm_s", "fid_eigh", "fid_sqrtm")
    assert frechet["speedup"] == pytest.approx(frechet["sqrtm_s"] / frechet["eigh_s"], rel=1e-6)
    assert frechet["fid_eigh"] == pytest.approx(frechet["fid_sqrtm"], rel=1e-6)
    pr = benches["precision_recall"]
    ours, numpy_side = pr["ours"], pr["numpy"]
    _finite_positive(ours, "time_s")
    _finite_positive(numpy_side, "time_s")
    assert pr["speedup"] == pytest.approx(numpy_side["time_s"] / ours["time_s"], rel=1e-6)
    assert pr["identical"] is True and ours["values"] == numpy_side["values"]
    assert all(0 < v < 1 for v in ours["values"])  # synthetic features: neither 0 nor 1


def check_features(records: list[dict]) -> None:
    (r,) = records
    assert r["bench"] == "extraction" and r["repeats"] >= 1 and r["batch_size"] >= 1
    _finite_positive(r, "ours_img_s", "torch_fidelity_img_s", "speedup")
    assert r["speedup"] == pytest.approx(r["ours_img_s"] / r["torch_fidelity_img_s"], rel=1e-6)
    assert set(r["max_rel_diff"]) == {"pool", "logits", "spatial"}
    assert all(0 <= v <= 1e-5 for v in r["max_rel_diff"].values()), r["max_rel_diff"]
    assert [x["images"] for x in r["rss"]] == [2, 4]
    assert all(x["peak_rss_mb"] > x["features_mb"] > 0 for x in r["rss"])


def check_row(records: list[dict]) -> None:
    (r,) = records
    assert r["bench"] == "row" and r["pattern"] == "FR" and len(r["rows"]) == 1
    _finite_positive(r, "row_s", "floor_s", "floor_inside_s")
    (row,) = r["rows"]
    assert 0 < row["floor_inside_s"] < row["total_s"]  # the floor is part of the row
    assert r["overhead_inside_pct"] == pytest.approx(
        100 * (row["total_s"] / row["floor_inside_s"] - 1), rel=1e-9
    )
    stages = r["stages"]
    assert list(stages) == ["check", "sample", "features", "metrics", "report"]
    assert stages["sample"]["written_bytes"]["samples.npz"] > r["samples_bytes"]
    assert stages["metrics"]["read_samples"] == 0  # metrics never reads images


CHECKS = {
    "bench_processors": ("processors.jsonl", check_processors),
    "bench_sampling": ("sampling.jsonl", check_sampling),
    "bench_metrics": ("metrics.jsonl", check_metrics),
    "bench_features": ("features.jsonl", check_features),
    "bench_row": ("row.jsonl", check_row),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_benchmark_quick_mode(name, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="2", SSG_EVAL_RESULTS=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick", "--only", name],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    file_name, check = CHECKS[name]
    assert sorted(p.name for p in (tmp_path / "bench").glob("*.jsonl")) == [file_name]
    records = [
        json.loads(line) for line in (tmp_path / "bench" / file_name).read_text().splitlines()
    ]
    assert records, f"{name} wrote no JSON line"
    for record in records:  # provenance of every line
        assert record["quick"] is True and len(record["commit"]) == 40, record
        assert record["device_info"]["type"] == "cpu", record
    check(records)
