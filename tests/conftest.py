"""Shared fixtures: Hydra composition of the project's configs on CPU with tmp results."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import ssg_eval.config  # noqa: F401  (registers the structured-config schemas)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# One timeout scheme: pytest-timeout stops any test after TEST_TIMEOUT_S (pyproject's `timeout`;
# a test that needs more says so with @pytest.mark.timeout). A subprocess a test starts gets
# at most SUBPROCESS_TIMEOUT_S of it, so a slow child fails with its own output before
# pytest-timeout kills the whole test (tests/unit/test_timeouts.py checks every test module).
TEST_TIMEOUT_S = 600
SUBPROCESS_TIMEOUT_S = TEST_TIMEOUT_S - 120


def _keys(overrides: list[str]) -> set[str]:
    return {o.lstrip("+~").partition("=")[0] for o in overrides}


def compose_config(
    overrides: list[str] | None = None,
    config_name: str = "config",
    return_hydra_config: bool = False,
):
    """Compose `config_name` from the project's conf/ with `overrides` (no validation).

    The root config names no model; unless the overrides pick a model or an experiment, the tiny
    model and its sampler are selected (the test suite's default cell).
    """
    overrides = list(overrides or [])
    if not _keys(overrides) & {"model", "experiment"} and config_name != "report":
        overrides = ["model=tiny", *([] if "sampler" in _keys(overrides) else ["sampler=tiny"]),
                     *overrides]  # fmt: skip
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name=config_name,
            overrides=overrides,
            return_hydra_config=return_hydra_config,
        )


@pytest.fixture
def tiny_cfg(tmp_path):
    """Factory: the tiny model on CPU with results under tmp_path, plus extra overrides."""

    def make(*overrides: str, config_name: str = "config"):
        base = ["model=tiny", "sampler=tiny", "runtime.device=cpu", f"paths.results={tmp_path}"]
        return compose_config(base + list(overrides), config_name=config_name)

    return make
