"""Our npz pipeline vs `torch_fidelity.calculate_metrics` on the same random-weight Inception.

Both sides run torch-fidelity's `inception-v3-compat` network on the same 10 + 10 synthetic
images (32x32, resized to 299 inside the network), so differences come only from the metric
arithmetic. Settings are chosen where the two protocols coincide: IS with 10 samples in
`isc_splits=2` equal parts == our consecutive `split_size=5` chunks, no shuffling; P/R with
inception pool3 features, k=3, our float32 distance mode (torch-fidelity has no fp16 mode).

Tolerances (documented; measured on these images: FID rel 6e-7, IS rel 7e-8, IS std rel 2e-5,
P/R identical, 0.7 / 0.7):
- FID: relative 1e-5 (measured 6e-7). With 10 samples in 2048 dims both covariances have rank 9;
  torch-fidelity (like ADM's sqrtm) takes square roots of ~2000 numerically-zero eigenvalues of a
  2048 x 2048 product, which adds noise of order 1e-5 to tr sqrt(S1 S2). Ours takes the exact 9 x 9
  path here (`frechet_distance_features`), equal to the nuclear-norm value to 2e-9 relative.
- IS mean: relative 1e-5 (float32 softmax like ADM vs torch-fidelity's float64); IS std: 1e-3.
- Precision/recall: absolute 1e-6 (identical fractions; theirs are float32 `.item()` values).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch_fidelity

from ssg_eval.metrics.cli import main as cli_main
from ssg_eval.metrics.compute import evaluate_npz
from ssg_eval.metrics.frechet import frechet_distance
from ssg_eval.metrics.stats import feature_statistics
from tests.inception_helpers import random_weights_path, synthetic_images

NUM, SIZE, SPLIT = 10, 32, 5


class _Images(torch.utils.data.Dataset):
    """uint8 NHWC numpy -> torch-fidelity's uint8 3xHxW tensors."""

    def __init__(self, images_NHWC: np.ndarray):
        self.images = images_NHWC

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.images[index]).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    root = tmp_path_factory.mktemp("npz")
    real = synthetic_images(NUM, SIZE, seed=31)
    fake = synthetic_images(NUM, SIZE, seed=32, spread=0.9)  # overlapping: P, R not 0 or 1
    np.savez(root / "real.npz", arr_0=real)  # no mu: ADM computes stats from arr_0 features
    np.savez(root / "fake.npz", arr_0=fake)
    return root, real, fake


@pytest.fixture(scope="module")
def ours(batches):
    root, _, _ = batches
    return evaluate_npz(
        root / "fake.npz", root / "real.npz", root / "metrics.json",
        inception_weights=random_weights_path(), device="cpu", batch_size=NUM,
        split_size=SPLIT, distance_dtype="float32", cache_dir=root / "cache", progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def theirs(batches):
    _, real, fake = batches
    return torch_fidelity.calculate_metrics(
        input1=_Images(fake), input2=_Images(real), cuda=False, batch_size=NUM,
        isc=True, fid=True, prc=True, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(random_weights_path()),
        feature_layer_isc="logits_unbiased", feature_layer_fid="2048", feature_layer_prc="2048",
        samples_shuffle=False, isc_splits=NUM // SPLIT, prc_neighborhood=3,
        prc_batch_size=10000, save_cpu_ram=True, cache=False, verbose=False,
    )  # fmt: skip


def test_fid_matches(ours, theirs):
    assert ours["metrics"]["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-5)


def test_inception_score_matches(ours, theirs):
    assert ours["metrics"]["is"] == pytest.approx(theirs["inception_score_mean"], rel=1e-5)
    assert ours["metrics"]["is_std"] == pytest.approx(theirs["inception_score_std"], rel=1e-3)


def test_precision_recall_match(ours, theirs):
    assert 0 < ours["metrics"]["precision"] < 1 and 0 < ours["metrics"]["recall"] < 1
    assert ours["metrics"]["precision"] == pytest.approx(theirs["precision"], abs=1e-6)
    assert ours["metrics"]["recall"] == pytest.approx(theirs["recall"], abs=1e-6)


def test_metrics_json_records_protocol_and_inputs(batches, ours):
    root, _, _ = batches
    stored = json.loads((root / "metrics.json").read_text())
    assert stored["metrics"] == ours["metrics"]
    assert stored["protocol"]["pr_distance_dtype"] == "float32"
    assert stored["protocol"]["is_split_size"] == SPLIT
    for role in ("samples", "reference", "inception_weights"):
        assert len(stored["inputs"][role]["sha256"]) == 64
    assert stored["provenance"]["versions"]["torch_fidelity"] == torch_fidelity.__version__
    assert stored["inputs"]["reference"]["stored_stats_used"] is False


def test_sfid_uses_nhwc_spatial_statistics(batches, ours):
    root, _, _ = batches
    cache = np.load(next((root / "cache").glob("*_features.npz")))
    assert cache["spatial"].shape == (NUM, 2023)
    assert np.isfinite(ours["metrics"]["sfid"]) and ours["metrics"]["sfid"] > 0


def cli(*args) -> int:
    return cli_main([str(a) for a in args])


def test_cli_refuses_to_overwrite_and_reports_one_line(batches, ours, capsys):
    root, _, _ = batches
    code = cli(root / "fake.npz", root / "real.npz", "--out", root / "metrics.json",
               "--inception-weights", random_weights_path())  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "exists" in err[-1] and err[-1].startswith("ssg_eval.metrics.cli: error:")


def test_cli_validates_before_inception(batches, tmp_path, capsys):
    root, _, _ = batches
    bad = tmp_path / "bad.npz"
    np.savez(bad, arr_0=np.zeros((4, 8, 8, 3), np.float32))
    missing_weights = tmp_path / "missing.pth"  # never reached: validation fails first
    code = cli(bad, root / "real.npz", "--out", tmp_path / "m.json",
               "--inception-weights", missing_weights)  # fmt: skip
    assert code == 2 and "expected uint8" in capsys.readouterr().err
    code = cli(root / "fake.npz", tmp_path / "VIRTUAL_imagenet256_labeled.npz",
               "--out", tmp_path / "m.json", "--inception-weights", missing_weights)  # fmt: skip
    assert (
        code == 2 and "reference_stats/VIRTUAL_imagenet256_labeled.npz" in capsys.readouterr().err
    )


def test_cli_end_to_end_with_cached_reference(batches, ours, tmp_path, capsys):
    root, _, fake = batches
    samples = tmp_path / "four.npz"
    np.savez(samples, arr_0=fake[:4])
    out = tmp_path / "four.json"
    code = cli(samples, root / "real.npz", "--out", out, "--device", "cpu",
               "--inception-weights", random_weights_path(), "--batch-size", NUM,
               "--cache-dir", root / "cache", "--no-progress")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    values = json.loads(out.read_text())["metrics"]
    assert set(values) == {"fid", "sfid", "is", "is_std", "precision", "recall"}
    assert 0 <= values["precision"] <= 1 and 0 <= values["recall"] <= 1


def test_eigh_and_sqrtm_agree_on_these_features(batches):
    root, _, _ = batches
    cache = np.load(next((root / "cache").glob("*_features.npz")))
    pool = cache["pool"][:, :256]  # 256 of 2048 dims keeps scipy's sqrtm cheap
    mu1, sigma1 = feature_statistics(pool[:5])
    mu2, sigma2 = feature_statistics(pool[5:])
    a = frechet_distance(mu1, sigma1, mu2, sigma2, method="eigh")
    b = frechet_distance(mu1, sigma1, mu2, sigma2, method="sqrtm")
    assert a == pytest.approx(b, rel=1e-6)
