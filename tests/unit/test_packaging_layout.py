"""pyproject's package list names every package and data folder; conf/ maps to ssg_eval.conf.

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
    # Folders of data files only are listed too (setuptools installs a folder's files only as
    # part of a listed package): the report's templates and every conf group but conf/local.
    data = {
        ".".join(p.parent.relative_to(REPO).parts)
        for p in (REPO / "ssg_eval").rglob("*.j2")
        if not (p.parent / "__init__.py").is_file()
    }
    groups = {
        "ssg_eval.conf." + ".".join(p.parent.relative_to(REPO / "conf").parts)
        for p in (REPO / "conf").rglob("*.yaml")
        if p.parent != REPO / "conf" and "local" not in p.relative_to(REPO / "conf").parts
    }
    assert "ssg_eval.report.templates" in data and "ssg_eval.conf.experiment" in groups
    assert set(setup["packages"]) == on_disk | data | groups | {"ssg_eval.conf"}
    assert setup["package-dir"] == {"ssg_eval.conf": "conf"}
    assert (REPO / "conf" / "__init__.py").is_file() and not (REPO / "ssg_eval" / "conf").exists()


def test_the_top_level_is_the_specified_one():
    required = {"pyproject.toml", "README.md", "conf", "ssg_eval", "reference_stats", "results",
                "tests", "Makefile"}  # fmt: skip
    assert required <= {p.name for p in REPO.iterdir()}
