"""JSON records of the wrong shape (valid JSON, wrong content) are named with the field and the fix.

Every reader of manifest.json, identity.json, features.json, metrics.json, the tune state and the
lock's holder file goes through `ssg_eval.runs.records`; none of these cases runs a model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssg_eval.errors import UnreadableFileError
from ssg_eval.runs.layout import run_dir
from tests.faults.conftest import tiny

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, payload) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(
    ("payload", "field"), [({}, "is a required property"), ([1, 2], "top level")]
)
def test_features_stage_names_the_field_of_a_wrong_shape_manifest(tmp_path, payload, field):
    from ssg_eval.stages.features import run_features

    cfg = tiny(tmp_path, config_name="config")
    path = _write(run_dir(cfg) / "manifest.json", payload)
    with pytest.raises(UnreadableFileError) as err:
        run_features(cfg)
    message = str(err.value)
    assert str(path) in message and field in message and "rerun the sample stage" in message


def test_a_wrong_shape_manifest_counts_as_unfinished_sampling(tmp_path):
    from ssg_eval.stages.pipeline import sampling_done

    cfg = tiny(tmp_path, config_name="config")
    _write(run_dir(cfg) / "manifest.json", [1, 2])
    assert sampling_done(cfg) is False  # the sample stage then rewrites it


def _report_run(results: Path, metrics) -> Path:
    run = results / "runs" / "a"
    config = {"model": {"name": "tiny", "patch_nums": [1, 2, 3]},
              "guidance": {"name": "cfg", "order": ["cfg_ramp"],
                           "cfg_ramp": {"scale": 1.5, "schedule": "linear_ramp"}},
              "sampler": {"num_samples": 20, "seed": 0}, "runtime": {}}  # fmt: skip
    _write(run / "manifest.json", {"config": config, "config_hash": "abc"})
    return _write(run / "metrics.json", metrics)


def test_report_cli_refuses_empty_metrics_json_in_one_line(tmp_path):
    """`metrics.json = {}` used to give a row of empty metrics and exit 0."""
    path = _report_run(tmp_path, {})
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.stages.report", f"paths.results={tmp_path}",
         "report.page=false"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and "field metrics" in lines[0] and "overwrite=true" in lines[0]
    assert not (tmp_path / "table1.csv").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"metrics": {}}, "field metrics"), ({"metrics": {"fid": "3.1"}}, "field metrics.fid")],
)
def test_report_names_the_field_of_wrong_shape_metrics(tmp_path, payload, field):
    from ssg_eval.report.table import collect_runs

    path = _report_run(tmp_path, payload)
    with pytest.raises(UnreadableFileError, match=field) as err:
        collect_runs(tmp_path)
    assert str(path) in str(err.value)


def test_metrics_stage_names_a_wrong_shape_features_record(tmp_path):
    from ssg_eval.stages.metrics import _inputs

    path = _write(tmp_path / "features.json", ["not", "a", "record"])
    (tmp_path / "features.npz").write_bytes(b"")

    class Ref:
        image_shape = (48, 48, 3)

    with pytest.raises(UnreadableFileError, match="top level") as err:
        _inputs(tiny(tmp_path), tmp_path, {"config_hash": "x", "image_shape": [48, 48, 3]}, Ref)
    assert str(path) in str(err.value) and "rerun the features stage" in str(err.value)


def test_identity_of_the_wrong_shape_is_named_and_overwrite_replaces_it(tmp_path):
    from ssg_eval.runs.claim import check_identity

    path = _write(tmp_path / "identity.json", {"config_hash": "x"})
    with pytest.raises(UnreadableFileError, match="field identity") as err:
        check_identity(tmp_path, {"a": 1}, overwrite=False, fix="")
    assert str(path) in str(err.value)
    assert check_identity(tmp_path, {"a": 1}, overwrite=True, fix="") == "replace"


def test_tune_state_of_the_wrong_shape_is_named(tmp_path):
    from ssg_eval.tune.halving import run_halving
    from ssg_eval.tune.space import BASELINE, Candidate

    state = {
        "fingerprint": "f",
        "evaluations": [],
        "rungs": [],
        "spent": {"samples": 0, "device_s": 0},
    }
    path = _write(tmp_path / "state.json", state)
    with pytest.raises(UnreadableFileError, match="field evaluations") as err:
        run_halving([Candidate(BASELINE, {}, (), ssg=False)], lambda *_: None,
                    state_path=path, sizes=[10], n_final=10, keep_fraction=0.5,
                    objective="fid", budget={}, fingerprint="f")  # fmt: skip
    assert str(path) in str(err.value) and "tune.name" in str(err.value)


def test_a_lock_holder_file_of_the_wrong_shape_reads_as_unknown(tmp_path):
    from ssg_eval.runs.lock import RunLock

    lock = RunLock(tmp_path, "r", "sample")
    _write(lock.holder_path, [1, 2])
    assert lock._holder() == "another process (holder unknown)"
