"""The sample linter: one planted defect per test on small synthetic files, and a clean file."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ssg_eval.lint import cli
from ssg_eval.lint.findings import SampleLintError, Status
from ssg_eval.lint.preflight import lint_run
from ssg_eval.lint.run import lint_file
from ssg_eval.lint.scan import block_steps, blockiness
from ssg_eval.smoke import synthetic_images

N, CLASSES, SIZE, SPLIT = 240, 8, 32, 60  # 4 IS splits of 60 (the 5,000 of ADM, scaled down)


@pytest.fixture(scope="module")
def clean():
    """Balanced labels in index order (label = index % classes), distinct smooth images."""
    return synthetic_images(N, SIZE, seed=0), np.arange(N) % CLASSES


def write(tmp_path, name, images, labels=None, compressed=False):
    path = tmp_path / name
    arrays = {"arr_0": images} | ({} if labels is None else {"labels": labels})
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def lint(path, **kwargs):
    report = lint_file(path, expected_samples=N, split_size=SPLIT, **kwargs)
    return report, {f.check: f for f in report.findings}


def jpeg(image, quality=75):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.array(Image.open(buffer))


def test_clean_file_passes_every_check(tmp_path, clean):
    images, labels = clean
    reference = write(tmp_path, "ref.npz", synthetic_images(50, SIZE, seed=9))
    report, found = lint(write(tmp_path, "s.npz", images, labels), reference=reference)
    assert [f.check for f in report.findings if f.status is not Status.PASS] == []
    assert found["class_balance"].numbers["min_count"] == N // CLASSES
    assert all(f.effect for f in report.findings)  # each says what it does to FID / IS


def test_random_labels_warn_on_class_balance(tmp_path, clean):
    images, _ = clean
    labels = np.random.default_rng(0).integers(0, CLASSES, N)
    _, found = lint(write(tmp_path, "s.npz", images, labels))
    assert found["class_balance"].status is Status.WARN
    assert found["class_balance"].numbers["chi2_p_uniform"] > 1e-3  # "drawn at random"


def test_duplicated_seeds_per_class_fail(tmp_path, clean):
    """One seed per class: every sample of a class is the same image."""
    images, labels = clean
    copies = images[labels]  # image i := image of its class's first index
    report, found = lint(write(tmp_path, "s.npz", copies, labels))
    assert found["duplicates"].status is Status.FAIL
    assert found["duplicates"].numbers["copies"] == N - CLASSES
    assert found["duplicates"].numbers["copies_within_class"] == N - CLASSES
    assert report.status is Status.FAIL


def test_a_single_copy_only_warns(tmp_path, clean):
    images, labels = clean
    images = images.copy()
    images[5] = images[3]
    _, found = lint(write(tmp_path, "s.npz", images, labels))
    assert found["duplicates"].status is Status.WARN  # 1 of 240 < 1 %
    assert found["duplicates"].numbers["copies"] == 1


def test_class_sorted_file_fails_split_coverage(tmp_path, clean):
    images, labels = clean
    _, found = lint(write(tmp_path, "s.npz", images, np.sort(labels)))
    assert found["is_split_coverage"].status is Status.FAIL
    assert found["is_split_coverage"].numbers["min_coverage"] == pytest.approx(2 / CLASSES)


def test_wrong_size_against_the_reference_fails(tmp_path, clean):
    images, labels = clean
    reference = write(tmp_path, "ref.npz", synthetic_images(20, 2 * SIZE, seed=9))
    _, found = lint(write(tmp_path, "s.npz", images, labels), reference=reference)
    assert found["image_size"].status is Status.FAIL
    assert found["image_size"].numbers["reference"] == [2 * SIZE, 2 * SIZE]


def test_constant_images_fail(tmp_path, clean):
    images, labels = clean
    images = images.copy()
    images[[7, 100, 200]] = 0  # decode failures / NaN -> 0
    _, found = lint(write(tmp_path, "s.npz", images, labels))
    finding = found["constant_images"]
    assert finding.status is Status.FAIL  # 3 / 240 >= 1 %
    assert finding.numbers["all_black"] == 3 and finding.numbers["first"] == [7, 100, 200]


def test_jpeg_round_trip_fails_and_png_passes(tmp_path, clean):
    _, labels = clean
    images = synthetic_images(N, 64, seed=4)  # 64 px: enough block edges per image
    compressed = np.stack([jpeg(image) for image in images])
    _, found = lint(write(tmp_path, "s.npz", compressed, labels))
    assert found["jpeg_blockiness"].status is Status.FAIL
    _, found = lint(write(tmp_path, "c.npz", images, labels))
    assert found["jpeg_blockiness"].status is Status.PASS


def test_blockiness_ignores_a_16px_grid_and_sees_jpeg():
    """A VQ decoder's 16-px patch seams are not JPEG; 8-px block edges are."""
    images = synthetic_images(20, 64, seed=3, noise=1.0).astype(np.int16)
    seams = images.copy()
    seams[:, :, ::16] += 8
    seams[:, ::16, :] += 8
    assert blockiness(block_steps(np.clip(seams, 0, 255).astype(np.uint8))) < 1.02
    jpegs = np.stack([jpeg(image.astype(np.uint8)) for image in images])
    assert blockiness(block_steps(jpegs)) > 1.10


def test_layout_and_range_defects_fail(tmp_path, clean):
    images, labels = clean
    report, found = lint(write(tmp_path, "nchw.npz", images.transpose(0, 3, 1, 2), labels))
    assert found["layout"].status is Status.FAIL and "NCHW" in found["layout"].message
    assert len(report.findings) == 1  # nothing else can be read
    unit = (images / 255.0).astype(np.uint8)  # [0, 1] floats cast without scaling
    _, found = lint(write(tmp_path, "unit.npz", unit, labels))
    assert found["value_range"].status is Status.FAIL


def test_bgr_samples_warn_on_channel_order(tmp_path, clean):
    images, labels = clean
    tinted = images.copy()
    tinted[..., 0] = np.clip(tinted[..., 0].astype(int) + 60, 0, 255)  # reddish reference
    reference = write(tmp_path, "ref.npz", tinted)
    _, found = lint(write(tmp_path, "s.npz", tinted[..., ::-1], labels), reference=reference)
    assert found["channel_order"].status is Status.WARN


def test_near_duplicates_from_features(tmp_path, clean):
    images, labels = clean
    pool = np.random.default_rng(1).normal(size=(N, 64)).astype(np.float32)
    pool[9] = pool[1] + 0.01  # same class (9 % 8 == 1), near-identical features
    features = tmp_path / "f.npz"
    np.savez(features, pool=pool, labels=labels)
    _, found = lint(write(tmp_path, "s.npz", images, labels), features=features)
    assert found["near_duplicates"].status is Status.WARN
    assert found["near_duplicates"].numbers["pairs"] == 1


def test_compressed_file_streams_to_the_same_findings(tmp_path, clean):
    images, labels = clean
    stored, _ = lint(write(tmp_path, "s.npz", images, labels))
    streamed, _ = lint(write(tmp_path, "c.npz", images, labels, compressed=True))
    assert [f.numbers for f in stored.findings if f.check != "labels"] == [
        f.numbers for f in streamed.findings if f.check != "labels"
    ]


def test_cli_exit_status_and_json(tmp_path, clean, capsys):
    images, labels = clean
    good = write(tmp_path, "good.npz", images, labels)
    bad = write(tmp_path, "bad.npz", images, np.sort(labels))
    common = ["--expected-samples", str(N), "--is-split-size", str(SPLIT), "--no-progress"]
    assert cli.main([str(good), *common, "--json", str(tmp_path / "o.json")]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["status"] == "pass"
    assert cli.main([str(bad), *common]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert cli.main([str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_metrics_preflight_raises_one_line_on_failure(tmp_path, clean):
    images, labels = clean
    reference = write(tmp_path, "ref.npz", synthetic_images(20, SIZE, seed=9))

    class Ref:
        path = reference

    assert lint_run(tmp_path, Ref, None) is None  # no samples.npz: skipped
    write(tmp_path, "samples.npz", images, labels)
    assert lint_run(tmp_path, Ref, None).status is not Status.FAIL
    write(tmp_path, "samples.npz", images[labels], labels)  # one seed per class
    with pytest.raises(SampleLintError, match=r"duplicates: .*ssg-lint .*samples\.npz") as err:
        lint_run(tmp_path, Ref, None)
    assert "\n" not in str(err.value)


def test_metrics_preflight_only_warns_on_a_grid(tmp_path, clean, caplog):
    """The harness never writes JPEG: in its own runs a grid is reported, never a stop."""
    _, labels = clean
    images = np.stack([jpeg(image) for image in synthetic_images(N, 64, seed=4)])
    reference = write(tmp_path, "ref.npz", synthetic_images(20, 64, seed=9))
    write(tmp_path, "samples.npz", images, labels)

    class Ref:
        path = reference

    assert lint_run(tmp_path, Ref, None).status is Status.FAIL  # the file itself fails ...
    assert "never writes JPEG" in caplog.text  # ... but the stage only warns
