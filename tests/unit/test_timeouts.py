"""The suite's timeouts are consistent: no subprocess may outlive the test that starts it.

pytest-timeout's per-test limit (pyproject) used to be 600 s while the smoke fixture let its
child run for 900 s: on a busy machine pytest killed the whole test with no output of the child.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from tests.conftest import SUBPROCESS_TIMEOUT_S, TEST_TIMEOUT_S

TESTS = Path(__file__).resolve().parents[1]
MARGIN_S = 60  # the test's own work besides its longest child


def _literal_timeouts(tree: ast.AST) -> tuple[list[int], list[int]]:
    """(`timeout=` literals of calls, `pytest.mark.timeout(N)` values) in a module."""
    calls, marks = [], []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        if func.endswith("mark.timeout") and node.args and isinstance(node.args[0], ast.Constant):
            marks.append(int(node.args[0].value))
        for keyword in node.keywords:
            if keyword.arg == "timeout" and isinstance(keyword.value, ast.Constant):
                calls.append(int(keyword.value.value))
    return calls, marks


def test_pytest_timeout_matches_the_constant():
    config = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())
    assert config["tool"]["pytest"]["ini_options"]["timeout"] == TEST_TIMEOUT_S
    assert SUBPROCESS_TIMEOUT_S + MARGIN_S <= TEST_TIMEOUT_S


def test_no_subprocess_outlives_its_test():
    too_long = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        calls, marks = _literal_timeouts(ast.parse(path.read_text()))
        budget = max([TEST_TIMEOUT_S, *marks]) - MARGIN_S
        late = [t for t in calls if t > budget]
        if late:
            too_long[str(path.relative_to(TESTS))] = (late, budget)
    assert not too_long, too_long
