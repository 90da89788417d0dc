"""The package's layer contract (pyproject.toml, import-linter) holds, and would catch a back-door.

CI runs `make test`, so this test is what keeps the contract enforced there; `make lint` runs the
same contract through `lint-imports`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter not installed")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_the_layer_contract_is_kept():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("ssg_eval/models/load.py", "from ssg_eval.runs import io as _io  # noqa: F401\n"),
        ("ssg_eval/metrics/stats.py", "from ssg_eval.runs import layout as _l  # noqa: F401\n"),
        ("ssg_eval/stages/suite.py", "import ssg_eval.tune.space as _t  # noqa: F401\n"),
    ],
)
def test_a_planted_back_door_breaks_the_contract(tmp_path, module, planted):
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy2(REPO / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(
        REPO / "ssg_eval", copy / "ssg_eval", ignore=shutil.ignore_patterns("__pycache__")
    )
    target = copy / module
    text = target.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(head + sep + planted + rest)
    proc = _lint(copy)
    assert proc.returncode != 0 and "is not allowed to import" in proc.stdout, proc.stdout[-2000:]
