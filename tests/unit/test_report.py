"""Report tables from synthetic run artifacts: columns, paper numbers, paired deltas, files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ssg_eval.report.render import render_tables
from ssg_eval.report.table import RUN_COLUMNS, collect_runs, summary_table

PAPER = {
    "source": "test source",
    "rows": {"var_d16": {"cfg": {"fid": 3.42, "is": 275.6}, "cfg_ssg": {"fid": 3.27, "is": 285.3}}},
}


def _guidance(name: str, beta: float) -> dict:
    ssg = {
        "beta": beta, "beta_schedule": "constant", "beta_end": None,
        "beta_list": None, "placement": "after_cfg", "prior_source": "guided_pre_ssg",
        "prior_mode": "dse", "interpolation": "bilinear", "coarse_block_scale": "sqrt_area_ratio",
    }  # fmt: skip
    return {
        "name": name,
        "order": ["cfg_ramp", "ssg"] if name == "cfg_ssg" else ["cfg_ramp"],
        "cfg_ramp": {"scale": 1.5, "schedule": "linear_ramp"},
        "ssg": ssg,
    }


def write_run(
    results, name, *, model="var_d16", guidance="cfg", seed=0, fid=3.0, beta=0.5, extra=None
):
    run = results / "runs" / name
    run.mkdir(parents=True)
    config = {
        "model": {"name": model, "label": "VAR-d16", "params_quoted": "310M",
                  "patch_nums": [1, 2, 3, 4, 5, 6, 8, 10, 13, 16]},
        "guidance": _guidance(guidance, beta),
        "sampler": {"num_samples": 50000, "seed": seed},
        "runtime": {"autocast_dtype": "float32", "use_tf32": False},
    }  # fmt: skip
    manifest = {
        "config": config,
        "config_hash": "abc",
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "timings": {"images_per_s": 10.0, "latency": {"seconds_per_image": 0.5}},
    }
    metrics = {"fid": fid, "sfid": 8.0, "is": 280.0 + seed, "is_std": 1.0, "precision": 0.8,
               "recall": 0.5, **(extra or {})}  # fmt: skip
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    return run


def test_collect_runs_has_fixed_columns_and_full_precision(tmp_path):
    write_run(tmp_path, "a", fid=3.123456789012)
    frame = collect_runs(tmp_path)
    assert list(frame.columns[: len(RUN_COLUMNS)]) == RUN_COLUMNS
    assert frame.loc[0, "fid"] == 3.123456789012


def test_summary_pairs_seeds_and_quotes_paper(tmp_path):
    fids = {("cfg", 0): 3.50, ("cfg", 1): 3.60, ("cfg_ssg", 0): 3.30, ("cfg_ssg", 1): 3.45}
    for (guidance, seed), fid in fids.items():
        write_run(tmp_path, f"{guidance}_{seed}", guidance=guidance, seed=seed, fid=fid)
    table = summary_table(collect_runs(tmp_path), PAPER, {})
    ssg = table[table.guidance == "cfg_ssg"].iloc[0]
    assert ssg["fid"] == pytest.approx((3.30 + 3.45) / 2)
    assert ssg["fid_std"] == pytest.approx(pd.Series([3.30, 3.45]).std())
    assert ssg["delta_fid"] == pytest.approx(((3.30 - 3.50) + (3.45 - 3.60)) / 2)
    assert ssg["paper_fid"] == 3.27
    assert ssg["paper_delta_fid"] == pytest.approx(3.27 - 3.42)
    assert ssg["seeds"] == "0,1"


def test_render_writes_csv_md_and_sweep(tmp_path):
    for beta, fid in [(0.0, 3.5), (0.5, 3.3), (1.0, 3.4)]:
        guidance = "cfg_ssg"
        write_run(tmp_path, f"b{beta}", guidance=guidance, fid=fid, beta=beta)
    out = render_tables(tmp_path, stem="t", title="T", paper=PAPER, sweep_plot=True)
    assert {"csv", "md", "runs_csv", "sweep_csv", "sweep_md", "sweep_png"} <= set(out)
    md = out["md"].read_text()
    assert "quoted, not re-measured: test source" in md
    sweep = pd.read_csv(out["sweep_csv"])
    assert sorted(sweep["beta"]) == [0.0, 0.5, 1.0]
    assert out["sweep_png"].read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp"))


def test_render_without_runs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        render_tables(tmp_path, stem="t", title="T")


def test_explicit_missing_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        collect_runs(tmp_path, runs=["nope"])


def test_deltas_are_paired_against_the_named_baseline(tmp_path):
    """Every row's delta is against `baseline` (here CFG), seed by seed; the baseline has none."""
    fids = {"none": (5.0, 5.4), "cfg": (3.5, 3.6), "cfg_ssg": (3.3, 3.45), "icg": (3.9, 3.8)}
    for guidance, values in fids.items():
        for seed, fid in enumerate(values):
            write_run(tmp_path, f"{guidance}_{seed}", guidance=guidance, seed=seed, fid=fid)
    table = summary_table(collect_runs(tmp_path), PAPER, {}, baseline="cfg").set_index("guidance")
    for guidance in ("none", "cfg_ssg", "icg"):
        paired = [fids[guidance][s] - fids["cfg"][s] for s in (0, 1)]
        assert table.loc[guidance, "delta_fid"] == pytest.approx(sum(paired) / 2)
        assert table.loc[guidance, "delta_fid_n"] == 2
        assert table.loc[guidance, "delta_fid_ci_low"] < table.loc[guidance, "delta_fid"]
    assert pd.isna(table.loc["cfg", "delta_fid"])
    by_none = summary_table(collect_runs(tmp_path), PAPER, {}, baseline="none")
    ssg = by_none.set_index("guidance").loc["cfg_ssg"]
    assert ssg["delta_fid"] == pytest.approx(((3.3 - 5.0) + (3.45 - 5.4)) / 2)


def test_missing_baseline_gives_no_deltas(tmp_path):
    write_run(tmp_path, "a", guidance="cfg_ssg")
    table = summary_table(collect_runs(tmp_path), PAPER, {}, baseline="cfg")
    assert "delta_fid" not in table or table["delta_fid"].isna().all()


def test_quoted_cells_carry_their_source_and_mixed_sources_give_no_paper_delta(tmp_path):
    paper = {
        "source": "default table",
        "sources": {"other": "another paper, Table 9"},
        "rows": {"var_d16": {"cfg": {"fid": 3.42}, "cfg_ssg": {"fid": 3.27},
                             "none": {"fid": 4.0, "source": "other"}}},
    }  # fmt: skip
    for guidance in ("none", "cfg", "cfg_ssg"):
        write_run(tmp_path, guidance, guidance=guidance)
    out = render_tables(tmp_path, stem="t", title="T", paper=paper, baseline="cfg")
    table = pd.read_csv(out["csv"]).set_index("guidance")
    assert table.loc["none", "paper_source"] == "other"
    assert table.loc["cfg_ssg", "paper_source"] == "default"
    assert table.loc["cfg_ssg", "paper_delta_fid"] == pytest.approx(3.27 - 3.42)
    assert pd.isna(table.loc["none", "paper_delta_fid"])  # 4.0 and 3.42 come from two sources
    md = out["md"].read_text()
    assert "[other] quoted, not re-measured: another paper, Table 9" in md
    assert "`cfg` row" in md


def test_unknown_quoted_source_is_a_clear_error(tmp_path):
    write_run(tmp_path, "a")
    paper = {"rows": {"var_d16": {"cfg": {"fid": 1.0, "source": "nope"}}}}
    with pytest.raises(ValueError, match="source 'nope'.*report.paper.sources"):
        summary_table(collect_runs(tmp_path), paper, {})


def test_fd_dinov2_is_a_column_only_when_measured(tmp_path):
    for guidance, fd in (("cfg", 50.0), ("cfg_ssg", 47.5)):
        write_run(tmp_path, guidance, guidance=guidance, extra={"fd_dinov2": fd})
    out = render_tables(tmp_path, stem="t", title="T", paper=PAPER)
    table = pd.read_csv(out["csv"]).set_index("guidance")
    assert table.loc["cfg_ssg", "delta_fd_dinov2"] == pytest.approx(-2.5)
    assert "FD-DINOv2" in out["md"].read_text()
    plain = tmp_path / "plain"
    write_run(plain, "a")
    out = render_tables(plain, stem="t", title="T", paper=PAPER)
    assert "FD-DINOv2" not in out["md"].read_text()
    assert "fd_dinov2" not in pd.read_csv(out["csv"]).columns
