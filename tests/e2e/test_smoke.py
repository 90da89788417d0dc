"""The README's main job end to end on CPU, once: `python -m ssg_eval.smoke` (rerun: slow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


def run_smoke(results: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.run(
        [sys.executable, "-m", "ssg_eval.smoke", f"paths.results={results}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
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
    assert set(table["seeds"]) == {"0,1"}
    for key in ("fid", "sfid", "is", "precision", "recall"):
        assert table[key].notna().all(), key
    assert table.loc[table.guidance == "cfg_ssg", "delta_fid"].notna().all()
    md = (results / "smoke_table1.md").read_text()
    assert "PIPELINE CHECK, NOT A REPRODUCTION" in md
    runs = pd.read_csv(results / "smoke_table1_runs.csv")
    assert len(runs) == 12 and runs["commit"].notna().all()


def test_smoke_writes_spectral_plots(smoke_results):
    results, _ = smoke_results
    spectral = results / "smoke_table1_spectral"
    for name in ("latent_spectrum.png", "latent_spectrum.csv", "pixel_spectrum.png",
                 "pixel_spectrum.csv"):  # fmt: skip
        assert (spectral / name).is_file(), name


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


def test_smoke_metrics_respond_to_the_samples(smoke_results):
    """The embedded default is informative: IS > 1, P and R inside (0, 1), FID sees noise."""
    import numpy as np

    from ssg_eval.features.extract import extract_features
    from ssg_eval.features.inception import build_inception
    from ssg_eval.metrics.frechet import frechet_distance_features
    from ssg_eval.metrics.reference import load_reference

    results, _ = smoke_results
    runs = pd.read_csv(results / "smoke_table1_runs.csv")
    assert (runs["is"] > 1.0).all()
    baseline = runs[(runs.model == "tiny_d1") & (runs.guidance == "cfg")]
    assert len(baseline) == 2
    # the table's cell (mean over the two seeds): one 20-sample seed alone may reach 1.0
    table = pd.read_csv(results / "smoke_table1.csv")
    cell = table[(table.model == "tiny_d1") & (table.guidance == "cfg")].iloc[0]
    for key in ("precision", "recall"):
        assert 0 < cell[key] < 1, (key, baseline[key].tolist())
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
    assert seen["images"] >= 4 + 6  # sweep, bands, two spectra, one grid per SSG run
    checked = [n for n in seen["numbers"] if n["csv"] == "smoke_table1.csv"]
    assert len(checked) >= 6 * 5 and assert_numbers_match_csv(seen["numbers"], results)
    assert {n["col"] for n in seen["numbers"] if n["csv"] == "smoke_table1_bands.csv"} >= {
        "delta",
        "ci_low",
        "ci_high",
    }
