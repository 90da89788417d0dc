"""Our FWD aggregate equals the released `pytorchfwd` (1.0.1) on the same images.

`pytorchfwd` pins numpy 1.x, scipy 1.11.1 and ptwt 0.1.8, so it never enters the project's
environment: the test builds a throwaway venv with those pins (torch and its own dependencies are
borrowed from this environment through a .pth file placed after the venv's own site-packages) and
runs the package's own `compute_fwd` on PNG folders, exactly as its command line does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssg_eval.analysis.bands import band_arrays
from ssg_eval.smoke import synthetic_images

PINS = ["numpy==1.26.4", "scipy==1.11.1", "PyWavelets==1.8.0", "tqdm", "pillow"]
NO_DEPS = ["pytorchfwd==1.0.1", "ptwt==0.1.8"]  # their torch/torchvision come from here


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    if proc.returncode != 0:
        text = proc.stderr + proc.stdout
        if any(s in text for s in ("No matching distribution", "Could not find a version",
                                   "connection", "Connection", "Temporary failure")):  # fmt: skip
            pytest.skip(f"package registry unreachable for the throwaway venv: {text[-300:]}")
        raise AssertionError(text[-3000:])


def _write_pngs(images: np.ndarray, folder: Path) -> None:
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a throwaway venv and pip install (children of up to 900 s each)
def test_fwd_equals_pytorchfwd_on_the_same_images(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    _pip(venv, *PINS)
    _pip(venv, "--no-deps", *NO_DEPS)
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    Path(site, "borrowed_torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    generated = synthetic_images(80, 64, seed=21, noise=10.0)
    reference = synthetic_images(90, 64, seed=22, spread=0.8, noise=14.0)
    _write_pngs(reference, tmp_path / "ref")
    _write_pngs(generated, tmp_path / "gen")
    script = ("import pytorchfwd.fwd as f; f.NUM_PROCESSES = 0; "
              f"print(repr(float(f.compute_fwd([{str(tmp_path / 'ref')!r}, "
              f"{str(tmp_path / 'gen')!r}], 'haar', 4, False, 32, None))))")  # fmt: skip
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, OMP_NUM_THREADS="2"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = float(proc.stdout.strip().splitlines()[-1])
    ours = band_arrays(generated, np.arange(80) % 10, reference, wavelet="haar", level=4,
                       method="sqrtm")["fwd"]  # fmt: skip
    assert float(ours) == pytest.approx(theirs, rel=1e-6), (float(ours), theirs)
    eigh = band_arrays(generated, np.arange(80) % 10, reference, level=4)["fwd"]
    assert float(eigh) == pytest.approx(theirs, rel=1e-5)
