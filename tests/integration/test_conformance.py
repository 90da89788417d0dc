"""`make conformance` end to end on tiny synthetic files (needs the `conformance` extra)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.inception_helpers import random_weights_path, synthetic_images

pytest.importorskip("torchmetrics")
pytest.importorskip("cleanfid")


@pytest.mark.slow
def test_conformance_table_on_tiny_files(tmp_path):
    from ssg_eval.conformance.cli import main

    np.savez(tmp_path / "s.npz", arr_0=synthetic_images(12, 32, seed=5, spread=0.9))
    np.savez(tmp_path / "r.npz", arr_0=synthetic_images(16, 32, seed=6))
    args = [str(tmp_path / "s.npz"), str(tmp_path / "r.npz"), "--out", str(tmp_path / "out"),
            "--inception-weights", str(random_weights_path()), "--batch-size", "16"]  # fmt: skip
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "out" / "conformance.csv").set_index(["metric", "tool"])
    # where the definitions agree, torch-fidelity's own code gives ssg_eval's numbers
    for metric in ("fid", "is", "kid"):
        assert table.loc[(metric, "torch-fidelity"), "agrees"], metric
    for metric in ("precision", "recall"):  # ADM's fp16 distances: ours in fp32 gives theirs
        row = table.loc[(metric, "torch-fidelity")]
        assert row["agrees"] or "equals `ssg_eval pr float32`" in row["cause"], metric
    assert table.loc[("fid", "torchmetrics antialias=False"), "agrees"]
    assert table.loc[("fid", "clean-fid legacy_tensorflow"), "agrees"]
    # where they do not, the delta is measured and its cause named
    for tool in ("torchmetrics", "clean-fid clean"):
        row = table.loc[("fid", tool)]
        assert not row["agrees"] and "resize" in row["cause"]
    assert table.loc[("all", "clean-fid (own network)"), "cause"].startswith("not run:")
    assert (tmp_path / "out" / "conformance.md").read_text().startswith("# Conformance")
