"""pyproject's explicit package list names every package on disk, and conf/ maps to ssg_eval.conf.

The list is explicit because `conf/` (repository root) installs as `ssg_eval.conf`, which
setuptools' package discovery cannot express; this test keeps the list from going stale.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_package_on_disk_is_listed_and_conf_is_mapped():
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ssg_eval").rglob("__init__.py")
    }
    assert set(setup["packages"]) == on_disk | {"ssg_eval.conf"}
    assert setup["package-dir"] == {"ssg_eval.conf": "conf"}
    assert (REPO / "conf" / "__init__.py").is_file() and not (REPO / "ssg_eval" / "conf").exists()


def test_the_top_level_is_the_specified_one():
    required = {"pyproject.toml", "README.md", "conf", "ssg_eval", "reference_stats", "results",
                "tests", "Makefile"}  # fmt: skip
    assert required <= {p.name for p in REPO.iterdir()}
