"""The other suites end to end: up-front missing-input lists of the real suites, and the tiny
versions of the 512 px and guidance tables through the production pipeline on CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ssg_eval.registry import PROCESSORS
from ssg_eval.smoke import run_smoke
from ssg_eval.stages.suite import run_suite
from tests.conftest import compose_config

FAST = ["sampler.num_samples=10", "runtime.measure_latency=false"]
# The smoke experiments extract features while sampling; these cells test sampling alone (no
# Inception asset is written).
SAMPLING_ONLY = "metrics.features_while_sampling=false"


def _require_guidance_family():
    missing = {"icg", "autoguidance"} - set(PROCESSORS)
    if missing:
        pytest.skip(f"processors {sorted(missing)} are not registered in this tree yet")


@pytest.mark.parametrize(
    ("suite", "names"),
    [
        ("table512", ["var_d36.pth", "vae_ch160v4096z32.pth", "VIRTUAL_imagenet512.npz",
                      "inception.pth"]),
        ("finetuned", ["VAR_d16_CCA.pth", "VAR_d20_CCA.pth", "VAR_d24_CCA.pth", "VAR_d30_CCA.pth",
                       "var_d16-ddo.pth", "var_d30-ddo.pth", "var_d24.pth",
                       "VIRTUAL_imagenet256_labeled.npz"]),
        ("guidance", ["var_d16.pth", "var_d30.pth", "guidance.autoguidance.guide.var_ckpt"]),
    ],
)  # fmt: skip
def test_suite_lists_every_missing_file_before_any_work(tmp_path, monkeypatch, suite, names):
    if suite == "guidance":
        _require_guidance_family()
    monkeypatch.setenv("SSG_EVAL_CKPT_DIR", str(tmp_path / "ckpt"))
    monkeypatch.setenv("SSG_EVAL_REFERENCE", str(tmp_path / "VIRTUAL_imagenet256_labeled.npz"))
    monkeypatch.setenv("SSG_EVAL_REFERENCE_512", str(tmp_path / "VIRTUAL_imagenet512.npz"))
    monkeypatch.setenv("SSG_EVAL_INCEPTION", str(tmp_path / "inception.pth"))
    with pytest.raises(FileNotFoundError, match="nothing was started") as info:
        run_suite(suite, [f"paths.results={tmp_path / 'res'}"])
    for name in names:
        assert name in str(info.value), name
    assert not (tmp_path / "res" / "runs").exists()


def test_tiny_512_cell_samples_on_its_own_schedule(tmp_path):
    """Fast case of the 512 suite: its tiny cell samples at the longer schedule's size."""
    from ssg_eval.sampling.runner import sample_run

    cfg = compose_config(
        ["experiment=smoke_512", "model.var_ckpt=null", "model.vae_ckpt=null",
         f"paths.results={tmp_path}", "runtime.device=cpu", *FAST, SAMPLING_ONLY],
        config_name="config",
    )  # fmt: skip
    sample_run(cfg)
    with np.load(tmp_path / "runs" / "tiny_512_cfg_s0" / "samples.npz") as data:
        assert data["arr_0"].shape == (10, 96, 96, 3)  # 16 x the last patch_num (6)


@pytest.mark.slow
def test_smoke_512_suite_end_to_end(tmp_path):
    written = run_smoke([f"paths.results={tmp_path}", *FAST], suite="smoke_512")
    table = pd.read_csv(written["csv"])
    assert list(table["guidance"]) == ["cfg", "cfg_ssg"]
    assert table["fid"].notna().all()
    cfg_row, ssg_row = table.iloc[0], table.iloc[1]
    assert cfg_row["paper_fid"] == 2.63 and cfg_row["paper_source"] == "var_readme"
    assert ssg_row["delta_fid"] == pytest.approx(ssg_row["fid"] - cfg_row["fid"])
    with np.load(tmp_path / "assets" / "reference_tiny_512.npz") as ref:
        assert ref["arr_0"].shape[1:] == (96, 96, 3)
    assert "[var_readme] quoted, not re-measured" in written["md"].read_text()


def test_tiny_autoguidance_cell_samples_with_its_guide(tmp_path):
    """Fast case of the guidance suite: one autoguidance+SSG cell with its guide asset."""
    from ssg_eval.sampling.runner import sample_run
    from ssg_eval.smoke import make_checkpoints
    from ssg_eval.stages.suite import load_suite

    _require_guidance_family()
    suite = load_suite("smoke_guidance")
    cell = [c for c in suite.cells() if c[1:3] == ["model=tiny_d3", "guidance=autoguidance_ssg"]]
    cfg = compose_config(
        [*cell[0], f"paths.results={tmp_path}", "runtime.device=cpu", *FAST, SAMPLING_ONLY],
        config_name="config",
    )
    created = {p.name for p in make_checkpoints([cfg])}
    assert {"tiny_d1.pth", "tiny_d3.pth"} <= created  # the guide's checkpoint too
    sample_run(cfg)
    with np.load(tmp_path / "runs" / "tiny_d3_autoguidance_ssg_s0" / "samples.npz") as data:
        assert data["arr_0"].shape == (10, 48, 48, 3)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smoke_guidance_suite_end_to_end(tmp_path):
    _require_guidance_family()
    written = run_smoke([f"paths.results={tmp_path}", *FAST], suite="smoke_guidance")
    table = pd.read_csv(written["csv"])
    rows = set(zip(table["model"], table["guidance"], strict=True))
    assert ("tiny_d3", "autoguidance") in rows and ("tiny_d1", "autoguidance") not in rows
    assert len(rows) == 12 and set(table["seeds"]) == {"0,1"}
    treated = table[table.guidance != "cfg"]
    assert treated["delta_fid"].notna().all()  # paired against CFG on seeds 0 and 1
    assert treated["delta_fid_ci_low"].notna().all() and treated["delta_fid_n"].eq(2).all()
    assert table.loc[table.guidance == "cfg", "delta_fid"].isna().all()
