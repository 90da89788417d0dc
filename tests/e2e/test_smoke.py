"""The README's main job end to end on CPU, once: `python -m ssg_eval.smoke --seeds 0`.

`make test` runs the smoke suite at one seed (half the cost; the seed-spread columns are covered
by tests/unit/test_report.py); both seeds run in tests/e2e/test_fresh_clone.py (slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SUBPROCESS_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]


def run_smoke(results: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.run(
        [sys.executable, "-m", "ssg_eval.smoke", f"paths.results={results}", *args, "--seeds", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
    )  # fmt: skip


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    results = tmp_path_factory.mktemp("smoke")
    proc = run_smoke(results)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return results, proc


def test_smoke_writes_table_with_all_cells(smoke_results):
    results, proc = smoke_results
    assert "pipeline check, not a reproduction" in proc.stdout
    table = pd.read_csv(results / "smoke_table1.csv")
    assert sorted(table["model"]) == sorted(["tiny_d1", "tiny_d2", "tiny_d3"] * 2)
    assert set(table["guidance"]) == {"cfg", "cfg_ssg"}
    assert set(table["seeds"].astype(str)) == {"0"}
    for key in ("fid", "sfid", "is", "precision", "recall"):
        assert table[key].notna().all(), key
    assert table.loc[table.guidance == "cfg_ssg", "delta_fid"].notna().all()
    md = (results / "smoke_table1.md").read_text()
    assert "PIPELINE CHECK, NOT A REPRODUCTION" in md
    runs = pd.read_csv(results / "smoke_table1_runs.csv")
    assert len(runs) == 6 and runs["commit"].notna().all()


def test_smoke_writes_spectral_plots(smoke_results):
    results, _ = smoke_results
    spectral = results / "smoke_table1_spectral"
    for name in ("latent_spectrum.png", "latent_spectrum.csv", "pixel_spectrum.png",
                 "pixel_spectrum.csv"):  # fmt: skip
        assert (spectral / name).is_file(), name


def test_suite_dry_run_rewrites_nothing(smoke_results):
    """`dry_run=true` on the finished suite prints plans; no file changes (spectral included)."""
    results, _ = smoke_results
    files = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.stages.suite", "smoke", f"paths.results={results}",
         "dry_run=true", "--seeds", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
        env=dict(os.environ, OMP_NUM_THREADS="2"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dry run: report smoke_table1" in proc.stdout
    after = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    changed = sorted(str(p) for p in set(after) | set(files) if after.get(p) != files.get(p))
    assert not changed, changed


def test_smoke_manifests_record_one_numeric_environment(smoke_results):
    results, _ = smoke_results
    for manifest in (results / "runs").rglob("manifest.json"):
        groups = json.loads(manifest.read_text())["numeric_environments"]
        assert len(groups) == 1 and "unrecorded" not in groups, manifest


@pytest.mark.slow  # a second smoke run; resume/skip is covered in make test by test_sampling_run
def test_smoke_rerun_samples_nothing_and_rewrites_same_table(smoke_results):
    results, _ = smoke_results
    shards = sorted((results / "runs").rglob("shards/*.npz"))
    assert shards
    before = {p: p.stat().st_mtime_ns for p in shards}
    manifests = {p: p.read_bytes() for p in (results / "runs").rglob("manifest.json")}
    table_before = (results / "smoke_table1.csv").read_text()
    proc = run_smoke(results)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {p: p.stat().st_mtime_ns for p in shards} == before
    assert {p: p.read_bytes() for p in manifests} == manifests
    assert (results / "smoke_table1.csv").read_text() == table_before


def assert_metrics_inside_their_range(runs: pd.DataFrame) -> None:
    """IS > 1, and precision and recall strictly inside (0, 1) on every row (not on average)."""
    assert (runs["is"] > 1.0).all(), runs["is"].tolist()
    for key in ("precision", "recall"):
        assert ((runs[key] > 0) & (runs[key] < 1)).all(), (key, runs[key].tolist())


def test_smoke_metrics_respond_to_the_samples(smoke_results):
    """The embedded default is informative: IS > 1, P and R inside (0, 1), FID sees noise."""
    import numpy as np

    from ssg_eval.features.extract import extract_features
    from ssg_eval.features.inception import build_inception
    from ssg_eval.metrics.frechet import frechet_distance_features
    from ssg_eval.metrics.reference import load_reference

    results, _ = smoke_results
    runs = pd.read_csv(results / "smoke_table1_runs.csv")
    assert_metrics_inside_their_range(runs)
    baseline = runs[(runs.model == "tiny_d1") & (runs.guidance == "cfg")]
    assert len(baseline) == 1
    assets = results / "assets"
    reference = load_reference(assets / "reference_tiny.npz", name="reference_tiny.npz",
                               verify_sha256=False)  # fmt: skip
    noise = np.random.default_rng(0).integers(0, 256, (20, 48, 48, 3), dtype=np.uint8)
    inception = build_inception(str(assets / "inception_random.pth"), "cpu")
    pool = extract_features([noise], inception, batch_size=20, device="cpu", progress=False)["pool"]
    noise_fid = frechet_distance_features(pool, reference.mu, reference.sigma)
    assert (baseline["fid"] < noise_fid).all() and (baseline["fid"] < 0.1 * noise_fid).all()


def test_smoke_report_page_renders_in_chromium(smoke_results, tmp_path):
    """The smoke page in a real browser: no console error, every image loaded, Table 1 = CSV."""
    from tests.browser_helpers import assert_numbers_match_csv, open_page, require_browser

    require_browser()
    results, _ = smoke_results
    page = results / "smoke_table1_report" / "index.html"
    seen = open_page(page, tmp_path / "profile", tmp_path / "smoke_page.png")
    assert seen["errors"] == [] and seen["failed"] == [] and seen["broken"] == []
    assert seen["images"] >= 4 + 3  # sweep, bands, two spectra, one grid per SSG run
    checked = [n for n in seen["numbers"] if n["csv"] == "smoke_table1.csv"]
    assert len(checked) >= 6 * 5 and assert_numbers_match_csv(seen["numbers"], results)
    assert {n["col"] for n in seen["numbers"] if n["csv"] == "smoke_table1_bands.csv"} >= {
        "delta",
        "ci_low",
        "ci_high",
    }
