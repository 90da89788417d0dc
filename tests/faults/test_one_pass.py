"""One pass over the bytes: after sampling, a row reads its samples once (the ADM export).

Every stage of a cell runs under a byte counter of the run directory, with the sha256 memo
cleared before each (as in separate stage processes). With features made while sampling, the
sample stage reads each shard once (the export, verified as it reads) and never reads its own
`samples.npz` back (its sha256 is computed while it is written), the features stage reads no shard
and each per-shard feature file once, metrics reads `features.npz` once and no image, the report
reads no npz.
"""

from __future__ import annotations

import hashlib
import json

import pytest

import ssg_eval.utils.hashing as hashing
from ssg_eval.runs.iocount import count_io
from ssg_eval.runs.layout import run_dir
from ssg_eval.sampling.runner import sample_run
from ssg_eval.stages.features import run_features
from ssg_eval.stages.metrics import run_metrics
from tests.faults.conftest import tiny

SLACK = 5 * 8192  # header reads (zip directory, .npy headers): a few opens of one buffer each


def sizes(directory, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_size for p in directory.glob(pattern)}


@pytest.mark.parametrize("while_sampling", [True, False])
def test_a_row_reads_its_samples_once_after_sampling(tmp_path, with_reference, while_sampling):
    cfg = tiny(tmp_path, *with_reference, f"metrics.features_while_sampling={while_sampling}",
               config_name="config")  # fmt: skip
    directory = run_dir(cfg)
    counts = {}
    for stage, call in (("sample", sample_run), ("features", run_features),
                        ("metrics", run_metrics)):  # fmt: skip
        hashing._SHA_CACHE.clear()
        with count_io(directory) as counts[stage]:
            call(cfg)
    shards = sizes(directory, "shards/*.npz")
    caches = sizes(directory, "features_cache/*.npz")
    sample, features, metrics = counts["sample"], counts["features"], counts["metrics"]
    for name, size in shards.items():  # the export: each shard once, plus its headers
        assert size <= sample.read[name] <= size + SLACK, (name, sample.read[name], size)
    assert sample.read["samples.npz"] == 0  # hashed while written, never read back
    manifest = json.loads((directory / "manifest.json").read_text())
    export = (directory / "samples.npz").read_bytes()
    assert manifest["samples"]["samples_npz_sha256"] == hashlib.sha256(export).hexdigest()
    assert {n: manifest["shards"][n.split("/")[1]] for n in shards} == {
        n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in shards
    }  # hashed while written: the recorded digests are the files'
    assert features.total_read("shards") == (0 if while_sampling else sum(shards.values()))
    for name, size in caches.items():
        assert features.read[name] == size  # merged: each per-shard file read once
    assert metrics.total_read("shards") == metrics.read["samples.npz"] == 0
    assert metrics.read["features.npz"] == (directory / "features.npz").stat().st_size
