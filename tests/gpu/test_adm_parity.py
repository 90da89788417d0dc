"""Parity with the ADM evaluator's published numbers on its own sample batch (GPU, real files).

Runs only when SSG_EVAL_INCEPTION, SSG_EVAL_REFERENCE and SSG_EVAL_ADM_SAMPLES point to the
torch-fidelity Inception weights, `VIRTUAL_imagenet256_labeled.npz` and
`admnet_guided_upsampled_imagenet256.npz`; 60k images go through Inception (minutes on a GPU,
hours on CPU). Golden values: guided-diffusion `evaluations/README.md`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from ssg_eval.metrics.compute import evaluate_npz

ENV = ("SSG_EVAL_INCEPTION", "SSG_EVAL_REFERENCE", "SSG_EVAL_ADM_SAMPLES")
GOLDEN = {  # ADM evaluator.py on admnet_guided_upsampled_imagenet256.npz
    "is": 215.8370361328125,
    "fid": 3.9425574129223264,
    "sfid": 6.140433703346162,
    "precision": 0.8265,
    "recall": 0.5309,
}
TOLERANCE = {"is": 0.1, "fid": 1e-3, "sfid": 1e-3, "precision": 0.003, "recall": 0.003}

pytestmark = [
    pytest.mark.adm_parity,
    pytest.mark.gpu,
    pytest.mark.skipif(
        not all(os.environ.get(k) and Path(os.environ[k]).is_file() for k in ENV),
        reason=f"needs {', '.join(ENV)} pointing to the real files",
    ),
]


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    out = tmp_path_factory.mktemp("adm_parity") / "metrics.json"
    evaluate_npz(
        os.environ["SSG_EVAL_ADM_SAMPLES"],
        os.environ["SSG_EVAL_REFERENCE"],
        out,
        inception_weights=os.environ["SSG_EVAL_INCEPTION"],
        device="cuda" if torch.cuda.is_available() else "cpu",
        batch_size=64,
        split_size=5000,
        k=3,
        block_size=10_000,
        distance_dtype="float16",
        fid_method="eigh",
        progress=False,
    )
    return json.loads(out.read_text())["metrics"]


@pytest.mark.parametrize("key", list(GOLDEN))
def test_matches_adm(metrics, key):
    assert abs(metrics[key] - GOLDEN[key]) <= TOLERANCE[key], (key, metrics[key], GOLDEN[key])
