"""Adding a processor or a metric touches exactly the places `ssg_eval/registry.py` lists.

For every registered processor: its builder and describer resolve, a schema dataclass is the type
of the `GuidanceConfig` field of its name, a conf/guidance file lists it in `order`, and no other
module names several processors (nothing else keeps a list of them). Every metric name is in the
config enum, and validation refuses a name without a computation.
"""

from __future__ import annotations

import ast
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import ssg_eval
from ssg_eval import registry
from ssg_eval.config import METRIC_NAMES, GuidanceConfig, MetricName
from ssg_eval.errors import ConfigError
from ssg_eval.registry import METRICS, PROCESSOR_DISPLAY, PROCESSORS, lookup
from ssg_eval.validation import validate
from tests.conftest import CONF_DIR, compose_config

PACKAGE = Path(ssg_eval.__file__).parent


def _guidance_orders() -> dict[str, list[str]]:
    out = {}
    for path in sorted((CONF_DIR / "guidance").glob("*.yaml")):
        out[path.name] = list(OmegaConf.load(path).get("order") or [])
    return out


def _places(name: str) -> dict[str, bool]:
    hints = typing.get_type_hints(GuidanceConfig)
    schema = hints.get(name)
    return {
        "builder": callable(lookup(PROCESSORS, name, "guidance.order")),
        "describer": callable(lookup(PROCESSOR_DISPLAY, name, "guidance.order")),
        "schema field": isinstance(schema, type) and is_dataclass(schema),
        "conf/guidance file": any(name in order for order in _guidance_orders().values()),
    }


@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_every_processor_has_its_places(name):
    places = _places(name)
    assert all(places.values()), places
    schema = typing.get_type_hints(GuidanceConfig)[name]
    defaults = OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True)
    assert isinstance(lookup(PROCESSOR_DISPLAY, name, "x")(defaults), str)


def test_the_tables_and_the_schema_name_the_same_processors():
    assert set(PROCESSOR_DISPLAY) == set(PROCESSORS)
    assert {f.name for f in fields(GuidanceConfig)} == {"name", "order", *PROCESSORS}
    listed = {n for order in _guidance_orders().values() for n in order}
    assert listed == set(PROCESSORS)


def _processor_names_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and node.value in PROCESSORS
    }  # fmt: skip


def test_nothing_else_lists_processor_names():
    # The registry lists them; a processor's own module names itself. Any other module may name
    # one processor it depends on (autoguidance's guide model, SSG's beta), never a list.
    own = {Path(registry.__file__).resolve()}
    for target in PROCESSORS.values():
        own.add((PACKAGE / (target.split(":")[0].removeprefix("ssg_eval.").replace(".", "/")
                            + ".py")).resolve())  # fmt: skip
    listing = {
        str(path.relative_to(PACKAGE)): sorted(names)
        for path in PACKAGE.rglob("*.py")
        if path.resolve() not in own and len(names := _processor_names_in(path)) > 1
    }
    assert not listing, f"modules listing processors outside the registry: {listing}"


def test_metric_names_are_one_enum_and_the_registry_names_a_subset():
    assert [m.value for m in MetricName] == list(METRIC_NAMES)
    assert all(m.name == m.value for m in MetricName)  # Hydra matches YAML strings by name
    assert set(METRICS) <= set(METRIC_NAMES)
    for name, target in METRICS.items():
        assert callable(lookup(METRICS, name, "metrics.metrics")), target


@pytest.mark.parametrize("planned", ["kid", "fwd"])
def test_a_planned_metric_fails_validation_in_one_line(planned, monkeypatch):
    # a name in MetricName without a METRICS line (planned, not built yet) is refused up front
    monkeypatch.setattr(registry, "METRICS", {k: v for k, v in METRICS.items() if k != planned})
    cfg = compose_config([f"metrics.metrics=[fid,{planned}]"])
    with pytest.raises(ConfigError, match=f"names \\['{planned}'\\].*computed metrics") as err:
        validate(cfg)
    assert "\n" not in str(err.value)
