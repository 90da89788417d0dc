"""The conf/ files state only deltas from their schemas, except the two that document them.

`guidance/cfg_ssg.yaml` (every SSG switch, one per line) and `metrics/adm.yaml` (the ADM
protocol, every setting explicit) exist to document the defaults: for them the test proves that
every schema field is stated and equals the schema's default (bar the declared deltas). Every other
group file states no key at its schema's default. A slow test composes every experiment, model,
guidance and group option from this tree and from the commit before the files were cut, and finds
them identical bar the declared deliberate changes (a removed dead field, two added fields, one new
option, the tiny tune's results folder).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import typing
from dataclasses import is_dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ssg_eval.config import (
    GuidanceConfig,
    MetricsConfig,
    ModelConfig,
    PathsConfig,
    RuntimeConfig,
    SamplerConfig,
    SsgConfig,
)
from ssg_eval.tune.schema import TuneConfig
from tests.conftest import CONF_DIR

REPO = CONF_DIR.parent
SCHEMAS = {"model": ModelConfig, "guidance": GuidanceConfig, "sampler": SamplerConfig,
           "runtime": RuntimeConfig, "metrics": MetricsConfig, "paths": PathsConfig,
           "tune": TuneConfig}  # fmt: skip
# file -> (section documented, its schema, keys that are deliberate deltas)
DOCUMENTED = {
    "guidance/cfg_ssg.yaml": ("ssg", SsgConfig, set()),
    "metrics/adm.yaml": (None, MetricsConfig, {"reference", "inception_weights", "dinov2_weights"}),
}
BASE = "36876f8"  # the commit before the group files were cut to their deltas
REMOVED = {("metrics", "extractor")}  # the dead field removed since
# Deliberate changes since BASE: fields added (features while sampling and the decode overlap,
# absent from BASE's configs), options added, and values changed on purpose (the tiny tune
# works in `make smoke`'s results folder so that it reuses its assets).
ADDED = {("metrics", "features_while_sampling"), ("runtime", "overlap_decode")}
NEW_OPTIONS = {"experiment=smoke_tuned"}
CHANGED = {("tune=tiny", "results"): "results/smoke"}


def _file(relative: str) -> dict:
    content = OmegaConf.to_container(OmegaConf.load(CONF_DIR / relative), resolve=False)
    content.pop("defaults", None)
    return content


def _defaults(schema: type) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(schema), resolve=False, enum_to_str=True)


def _restated(stated: dict, schema: type, prefix: str = "") -> list[str]:
    """Keys of `stated` whose value equals the schema default (dataclass fields recurse)."""
    defaults = _defaults(schema)
    out = []
    for key, value in stated.items():
        if key not in defaults:
            continue  # not a schema key (Hydra refuses it at composition anyway)
        nested = _nested_schema(schema, key)
        if nested is not None and isinstance(value, dict):
            out += _restated(value, nested, f"{prefix}{key}.")
        elif value == defaults[key]:
            out.append(prefix + key)
    return out


def _nested_schema(schema: type, key: str) -> type | None:
    kind = typing.get_type_hints(schema)[key]
    return kind if isinstance(kind, type) and is_dataclass(kind) else None


@pytest.mark.parametrize("relative", sorted(DOCUMENTED))
def test_a_documenting_file_states_every_default_of_its_schema(relative):
    section, schema, deltas = DOCUMENTED[relative]
    stated = _file(relative)
    stated = stated[section] if section else stated
    defaults = _defaults(schema)
    missing = sorted(set(defaults) - set(stated))
    assert not missing, f"{relative} does not document {missing}"
    differing = sorted(k for k in defaults if k not in deltas and stated[k] != defaults[k])
    assert not differing, f"{relative} differs from {schema.__name__} in {differing}"


@pytest.mark.parametrize(
    "relative",
    sorted(
        str(p.relative_to(CONF_DIR))
        for group in SCHEMAS
        for p in (CONF_DIR / group).glob("*.yaml")
        if str(p.relative_to(CONF_DIR)) not in DOCUMENTED
    ),
)
def test_a_group_file_states_only_deltas(relative):
    schema = SCHEMAS[relative.split("/")[0]]
    restated = _restated(_file(relative), schema)
    assert not restated, f"{relative} restates the defaults of {schema.__name__}: {restated}"


def _dump(src: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, str(REPO / "tests" / "config_dump.py"), str(src / "conf"), str(out)],
        cwd=out.parent, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return json.loads(out.read_text())


@pytest.mark.slow
def test_every_composed_config_equals_the_base_commits(tmp_path):
    git = shutil.which("git")
    if git is None or subprocess.run([git, "cat-file", "-e", BASE], cwd=REPO).returncode:
        pytest.skip(f"the base commit {BASE} is not in this checkout")
    archive = tmp_path / "base.tar"
    with archive.open("wb") as handle:
        subprocess.run([git, "archive", BASE, "ssg_eval", "conf"], cwd=REPO, stdout=handle,
                       check=True)  # fmt: skip
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "base", filter="data")
    base = _dump(tmp_path / "base", tmp_path / "base.json")
    now = _dump(REPO, tmp_path / "now.json")
    for composed in base.values():
        for node, key in REMOVED:
            if isinstance(composed, dict):
                composed.get(node, {}).pop(key, None)
    for label, composed in now.items():
        for node, key in ADDED:
            if node in composed:  # a root config (not the tune's own)
                assert key in composed[node], f"{label}: {node}.{key} is missing"
                del composed[node][key]
    for (label, key), value in CHANGED.items():
        assert now[label][key] == value
        base[label][key] = value
    assert sorted(now) == sorted([*base, *NEW_OPTIONS])
    differing = [label for label in base if now[label] != base[label]]
    assert not differing, f"composed configs changed: {differing}"
    assert len(base) > 40 and all(isinstance(v, dict) for v in base.values())
