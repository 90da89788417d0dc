"""The image scan the export records equals a scan of the exported file, and `overwrite` drops it.

The metrics stage lints a run from this record instead of reading `samples.npz` again, so the
record must be exactly what `ssg-lint` would compute from the file.
"""

from __future__ import annotations

import json

import numpy as np

from ssg_eval.lint.scan import iter_chunks, scan_images
from ssg_eval.runs.layout import SAMPLES_SCAN, run_dir
from ssg_eval.runs.npz import open_npz_array
from ssg_eval.sampling.runner import sample_run
from tests.faults.conftest import tiny


def test_recorded_scan_equals_a_scan_of_the_exported_file(tmp_path):
    cfg = tiny(tmp_path)
    directory = run_dir(cfg)
    sample_run(cfg)
    with np.load(directory / SAMPLES_SCAN) as data:
        stored = dict(data)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert str(stored["images_sha256"]) == manifest["samples"]["images_sha256"]
    images = open_npz_array(directory / "samples.npz", "arr_0")
    fresh = scan_images(iter_chunks(images, 3), len(images))  # other chunking, same scan
    assert np.array_equal(stored["minimum"], fresh.minimum)
    assert np.array_equal(stored["maximum"], fresh.maximum)
    assert [row.tobytes() for row in stored["digests"]] == fresh.digests
    assert np.array_equal(stored["subset"], fresh.subset)
    np.testing.assert_array_equal(stored["block_steps"], fresh.block_steps)
    np.testing.assert_allclose(stored["channel_means"], fresh.channel_means, rtol=1e-12)


def test_a_run_without_an_export_records_no_scan(tmp_path):
    cfg = tiny(tmp_path, "sampler.save_samples_npz=false")
    sample_run(cfg)
    assert not (run_dir(cfg) / SAMPLES_SCAN).exists()
