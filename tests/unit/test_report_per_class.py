"""Report: optional feature-metric columns and the per-class delta files of guided vs baseline."""

from __future__ import annotations

import pandas as pd

from ssg_eval.report.per_class import write_per_class_report
from ssg_eval.report.table import metric_keys


def test_feature_metric_columns_appear_only_when_some_run_has_them():
    frame = pd.DataFrame({"fid": [1.0, 2.0], "kid": [None, 0.01], "density": [None, None]})
    keys = metric_keys(frame)
    assert "kid" in keys and "density" not in keys and keys[0] == "fid"


def test_per_class_report_pairs_runs_of_the_same_model_and_seed(tmp_path):
    runs = {"m_cfg_s0": [10.0, 12.0, 9.0], "m_ssg_s0": [8.0, 11.0, 9.5], "m_ssg_s1": [1.0, 1, 1]}
    for name, fids in runs.items():
        (tmp_path / "runs" / name).mkdir(parents=True)
        table = pd.DataFrame({"class": [0, 1, 2], "n": 5, "precision": [0.5, 0.6, 0.7],
                              "fid": fids, "n_ref": 5})  # fmt: skip
        table.to_csv(tmp_path / "runs" / name / "per_class.csv", index=False)
    frame = pd.DataFrame({"run": list(runs), "model": "m", "seed": [0, 0, 1],
                          "guidance": ["cfg", "ssg", "ssg"]})  # fmt: skip
    written = write_per_class_report(tmp_path, frame, "t", baseline="cfg")
    deltas = pd.read_csv(written["per_class_csv"])
    assert deltas["treated_run"].unique().tolist() == ["m_ssg_s0"]  # seed 1 has no baseline
    assert deltas["delta_fid"].tolist() == [-2.0, -1.0, 0.5]
    assert deltas["fid_against_mean"].tolist() == [False, False, True]
    text = written["per_class_md"].read_text()
    assert "1 classes move against the mean" in text and "2 (+0.5)" in text
    assert write_per_class_report(tmp_path, frame[frame.seed == 1], "u", "cfg") == {}
