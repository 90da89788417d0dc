"""Spectral CLI input handling without a model: streamed images and every check before work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssg_eval.analysis.cli import OUTPUT_NAMES, main, run_spectral_analysis
from ssg_eval.analysis.images import iter_png_images, reference_image_shape
from ssg_eval.features.extract import iter_npz_images
from ssg_eval.runs.npz import npz_array_header


def _images(num, side, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (num, side, side, 3), dtype=np.uint8)


def make_run(root, name, *, side=8, seed=0, model_name="tiny"):
    """A finished-looking run dir: manifest config + one shard (no model is ever built here)."""
    run = root / "runs" / name
    (run / "shards").mkdir(parents=True)
    config = {
        "model": {"name": model_name, "patch_nums": [1, 2, 3], "num_classes": 10},
        "sampler": {"num_samples": 20, "chunk_size": 8, "seed": seed, "rng": "per_sample"},
        "guidance": {"name": "cfg", "order": ["cfg_ramp"]},
    }
    (run / "manifest.json").write_text(json.dumps({"config": config, "shards": {}}))
    np.savez(
        run / "shards" / "chunk_00000.npz",
        images=_images(8, side),
        labels=np.arange(8),
        indices=np.arange(8),
    )
    return run


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_images_stream_in_batches(tmp_path, save):
    images = _images(7, 6)
    save(tmp_path / "ref.npz", arr_0=images)
    assert npz_array_header(tmp_path / "ref.npz", "arr_0") == ((7, 6, 6, 3), np.dtype(np.uint8))
    batches = list(iter_npz_images(tmp_path / "ref.npz", batch=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert np.array_equal(np.concatenate(batches), images)
    with pytest.raises(ValueError, match="no key 'images'"):
        npz_array_header(tmp_path / "ref.npz", "images")


def test_png_folder_reference(tmp_path):
    from PIL import Image

    images = _images(3, 5)
    for i, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{i:03d}.png")
    assert reference_image_shape(tmp_path) == (5, 5, 3)
    assert np.array_equal(np.concatenate(list(iter_png_images(tmp_path, batch=2))), images)
    Image.fromarray(_images(1, 4)[0]).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match="differ in size"):
        reference_image_shape(tmp_path)


@pytest.fixture
def pair(tmp_path):
    baseline = make_run(tmp_path, "base")
    treated = make_run(tmp_path, "ssg")
    np.savez(tmp_path / "ref.npz", arr_0=_images(4, 8))
    return baseline, treated, tmp_path / "ref.npz", tmp_path / "out"


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ("no_manifest", FileNotFoundError, "manifest.json"),
        ("no_reference", FileNotFoundError, "reference"),
        ("reference_size", ValueError, "image sizes differ"),
        ("other_model", ValueError, "different models"),
        ("other_seed", ValueError, "sampler.seed"),
        ("too_many_samples", ValueError, "num_latent_samples"),
        ("outputs_exist", FileExistsError, "--overwrite"),
        ("bad_mode", ValueError, "latent_mode"),
    ],
)
def test_inputs_are_rejected_before_any_work(pair, change, error, match):
    baseline, treated, reference, out = pair
    kwargs = {"num_latent_samples": 4}
    if change == "no_manifest":
        (treated / "manifest.json").unlink()
    elif change == "no_reference":
        reference = reference.with_name("missing.npz")
    elif change == "reference_size":
        np.savez(reference, arr_0=_images(2, 16))
    elif change == "other_model":
        treated = make_run(baseline.parents[1], "other", model_name="tiny_b")
    elif change == "other_seed":
        treated = make_run(baseline.parents[1], "other", seed=1)
    elif change == "too_many_samples":
        kwargs["num_latent_samples"] = 21
    elif change == "outputs_exist":
        out.mkdir()
        (out / OUTPUT_NAMES["pixel_csv"]).write_text("old")
    elif change == "bad_mode":
        kwargs["latent_mode"] = "teacher"
    with pytest.raises(error, match=match):
        run_spectral_analysis(baseline, treated, reference, out, **kwargs)
    assert not out.exists() or change == "outputs_exist"


def test_cli_reports_one_line_and_exits_2(pair, capsys):
    baseline, treated, _, out = pair
    argv = [
        "spectra",
        "--baseline",
        str(baseline),
        "--ssg",
        str(treated),
        "--reference",
        str(baseline / "nope.npz"),
        "--out",
        str(out),
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ssg-analysis: error:") and "nope.npz" in err[0]
