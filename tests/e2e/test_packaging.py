"""A non-editable wheel carries its configs: built from a copy of the tree, installed with
`pip install --target`, and run from another working directory with the repository out of reach.

The wheel is built without network or build isolation (setuptools from the running environment).
The fast check composes a stage config from the installed package; the slow one runs the smoke
entry point end to end (one seed) from the installed copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"  # installed as the package ssg_eval.conf

pytest.importorskip("setuptools")


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _installed_env(site: Path) -> dict[str, str]:
    """Only the installed copy is importable (no repository on PYTHONPATH)."""
    return dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="2")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, site dir): the working tree's package built and installed outside the repo."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src / "pyproject.toml")
    for folder in ("ssg_eval", "conf"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "conf" / "local").mkdir(exist_ok=True)
    (src / "conf" / "local" / "machine.yaml").write_text("secret: 1\n")
    (src / "conf" / "local" / "default.yaml").write_text("# @package _global_\nseed: 1\n")
    _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), ".", cwd=src)
    (wheel,) = (root / "dist").glob("ssg_eval-*.whl")
    site = root / "site"
    _pip("install", "-q", "--no-deps", "--target", str(site), str(wheel), cwd=root)
    return wheel, site


def test_wheel_ships_every_config_and_no_local_settings(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        f"ssg_eval/conf/{p.relative_to(CONF)}"
        for p in CONF.rglob("*.yaml")
        if "local" not in p.relative_to(CONF).parts
    }
    assert len(expected) > 30 and expected <= names, sorted(expected - names)
    assert "ssg_eval/metrics/reference_manifest.json" in names
    assert not [n for n in names if n.startswith("ssg_eval/conf/local/")]


def test_installed_stage_composes_from_another_directory(installed, tmp_path):
    _, site = installed
    proc = subprocess.run(
        [sys.executable, "-c", "import ssg_eval; print(ssg_eval.__file__)"], cwd=tmp_path,
        env=_installed_env(site), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    package = Path(proc.stdout.strip()).parent
    assert package == site / "ssg_eval"  # not the repository, not an editable install
    assert json.loads((package / "metrics" / "reference_manifest.json").read_text())["files"]
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.stages.sample", "experiment=table1", "guidance=cfg_ssg",
         "--cfg", "job"],
        cwd=tmp_path, env=_installed_env(site), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "name: var_d16" in proc.stdout and "beta:" in proc.stdout
    assert not (tmp_path / "results").exists()
    # the console script of the installed package, as a user types it
    proc = subprocess.run(
        [sys.executable, str(site / "bin" / "ssg-sample"), "experiment=smoke", "model=tiny_d1",
         "dry_run=true"],
        cwd=tmp_path, env=_installed_env(site), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        proc.stdout.startswith("dry run: tiny_d1_cfg_s0")
        and "no weights were loaded" in proc.stdout
    )
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.timeout(2400)  # the whole smoke from the installed wheel (its child has 1800 s)
def test_installed_smoke_runs_from_another_directory(installed, tmp_path):
    _, site = installed
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "ssg_eval.smoke", f"paths.results={results}", "--seeds", "0"],
        cwd=tmp_path, env=_installed_env(site), capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "pipeline check, not a reproduction" in proc.stdout
    assert (results / "smoke_table1.csv").is_file() and (results / "smoke_table1.md").is_file()
    assert len(list((results / "runs").glob("*/metrics.json"))) == 6
