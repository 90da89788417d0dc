"""Suite files (`conf/suite/*.yaml`): the grid they expand to, their checks, and that every cell of
every suite composes and validates."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ssg_eval.errors import ConfigError
from ssg_eval.stages.suite import load_suite
from ssg_eval.validation import validate
from tests.conftest import CONF_DIR, compose_config

SUITES = sorted(p.stem for p in (CONF_DIR / "suite").glob("*.yaml"))
# Guidance configs added by the reference-guidance family; suites naming them are skipped until
# those configs exist in this tree.
PENDING_GUIDANCE = {"icg", "autoguidance", "autoguidance_ssg"}


def _load_or_skip(name: str):
    try:
        return load_suite(name)
    except ConfigError as err:
        pending = [g for g in PENDING_GUIDANCE if f"'{g}'" in str(err)]
        if pending and "guidance names" in str(err):
            pytest.skip(f"suite {name} needs guidance configs {sorted(pending)} not in this tree")
        raise


def test_smoke_suite_keeps_its_run_names():
    """Other tools rely on the smoke run names; the grid must reproduce them exactly."""
    suite = load_suite("smoke")
    names = []
    for seed in suite.seeds:
        for cell in suite.cells():
            cfg = compose_config([*cell, f"sampler.seed={seed}"], config_name="config")
            names.append(str(cfg.run_name))
    guidance = ("cfg", "cfg_ssg")
    expected = [f"tiny_d{d}_{g}_s{s}" for s in (0, 1) for d in (1, 2, 3) for g in guidance]
    assert names == expected


def test_table1_suite_is_four_models_by_two_guidance_on_one_experiment():
    suite = load_suite("table1")
    assert suite.models == ("var_d16", "var_d20", "var_d24", "var_d30")
    assert suite.guidance == ("cfg", "cfg_ssg")
    cells = suite.cells()
    assert len(cells) == 8 and all(c[0] == "experiment=table1" for c in cells)


def _compose_all(overrides_list: list[list[str]], config_name: str = "config") -> list:
    """Compose many override lists inside one Hydra initialisation (cheaper than one each)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return [compose(config_name=config_name, overrides=o) for o in overrides_list]


@pytest.mark.parametrize("name", SUITES)
def test_every_suite_cell_composes_validates_and_matches_its_reference(name):
    from ssg_eval.metrics.reference import load_manifest

    suite = _load_or_skip(name)
    cells = suite.cells()
    cfgs = _compose_all([[*cell, "paths.results=/results"] for cell in cells])
    manifest = load_manifest()
    for cell, cfg in zip(cells, cfgs, strict=True):
        validate(cfg)
        assert cfg.model.name == cell[1].removeprefix("model=")
        assert cfg.guidance.name == cell[2].removeprefix("guidance=")
        entry = manifest.get(cfg.metrics.reference_name)  # smoke references: built per model
        if entry is not None:  # the image size (16 x last patch_num) equals the reference's
            side = 16 * cfg.model.patch_nums[-1]
            assert entry["keys"]["arr_0"]["shape"][1:] == [side, side, 3], (cell, entry)
    assert len({str(c.run_name) for c in cfgs}) == len(cells)  # no two cells share a run dir
    (report,) = _compose_all([[f"experiment={suite.experiment}"]], config_name="report")
    assert report.report.baseline in suite.guidance  # the deltas have a baseline row


def test_exclude_removes_cells(tmp_path):
    conf = _conf_copy(tmp_path)
    _write_suite(
        conf, "ex", models=["var_d16", "var_d30"], guidance=["cfg", "cfg_ssg"],
        exclude=[{"model": "var_d16", "guidance": "cfg_ssg"}],
    )  # fmt: skip
    cells = load_suite("ex", conf).cells()
    pairs = [(c[1], c[2]) for c in cells]
    assert pairs == [
        ("model=var_d16", "guidance=cfg"),
        ("model=var_d30", "guidance=cfg"),
        ("model=var_d30", "guidance=cfg_ssg"),
    ]


def test_suite_overrides_follow_the_cell_and_keep_interpolations(tmp_path):
    conf = _conf_copy(tmp_path)
    _write_suite(conf, "ov", overrides=["model.var_ckpt=${paths.results}/x.pth"])
    cell = load_suite("ov", conf).cells()[0]
    assert cell[3] == "model.var_ckpt=${paths.results}/x.pth"
    cfg = compose_config([*cell, "paths.results=/r"], config_name="config")
    assert cfg.model.var_ckpt == "/r/x.pth"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"models": ["var_d99"]}, "models names ['var_d99'] not in conf/model/"),
        ({"guidance": ["cfgg"]}, "guidance names ['cfgg'] not in conf/guidance/"),
        ({"experiment": "tabel1"}, "experiment names ['tabel1'] not in conf/experiment/"),
        ({"seeds": []}, "field seeds: [] should be non-empty"),
        ({"seeds": ["a"]}, "field seeds.0: 'a' is not of type 'integer'"),
        ({"exclude": ["tiny_d1"]}, "field exclude.0: 'tiny_d1' is not of type 'object'"),
        ({"cells": ["table1/d16_cfg"]}, "unknown keys ['cells']"),
        ({"experiment": None}, "missing keys ['experiment']"),
        ({"exclude": [{"model": "var_d99", "guidance": "cfg"}]}, "['var_d99']"),
    ],
)
def test_bad_suite_is_one_clear_error(tmp_path, change, fragment):
    conf = _conf_copy(tmp_path)
    _write_suite(conf, "bad", **change)
    with pytest.raises(ConfigError) as info:
        load_suite("bad", conf)
    assert fragment in str(info.value) and "bad.yaml" in str(info.value)


def test_unknown_suite_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"valid suites: \[.*'table1'"):
        load_suite("tabel1")


def _conf_copy(tmp_path: Path) -> Path:
    """A conf dir whose groups are the project's (symlinked) and whose suite/ is empty."""
    conf = tmp_path / "conf"
    (conf / "suite").mkdir(parents=True)
    for group in ("model", "guidance", "experiment"):
        (conf / group).symlink_to(CONF_DIR / group)
    return conf


def _write_suite(conf: Path, name: str, **change) -> None:
    spec = {"experiment": "table1", "models": ["var_d16"], "guidance": ["cfg"], "seeds": [0]}
    spec.update(change)
    spec = {k: v for k, v in spec.items() if v is not None}
    OmegaConf.save(OmegaConf.create(spec), conf / "suite" / f"{name}.yaml")


def test_512_table_uses_the_512_model_and_reference():
    cfg = compose_config(["experiment=table512", "guidance=cfg_ssg"], config_name="config")
    assert cfg.model.name == "var_d36" and cfg.model.shared_aln
    assert list(cfg.model.patch_nums) == [1, 2, 3, 4, 6, 9, 13, 18, 24, 32]
    assert cfg.metrics.reference_name == "VIRTUAL_imagenet512.npz"
    assert cfg.run_name == "var_d36_cfg_ssg_s0"


@pytest.mark.parametrize(
    ("combined", "parts"),
    [("autoguidance_ssg", ("autoguidance", "cfg_ssg")), ("cfg_ssg", ("cfg",))],
)
def test_combined_guidance_keeps_every_part(combined, parts):
    """A combined guidance row is its parts, key for key (no part reset to schema defaults)."""
    if not (CONF_DIR / "guidance" / f"{combined}.yaml").is_file():
        pytest.skip(f"guidance {combined} not in this tree")
    both = compose_config([f"guidance={combined}", "model=var_d30", "sampler=var_eval"])
    for part in parts:
        alone = compose_config([f"guidance={part}", "model=var_d30", "sampler=var_eval"])
        for name in alone.guidance.order:
            assert both.guidance[name] == alone.guidance[name], (combined, part, name)


FINETUNED = sorted(p.stem for p in (CONF_DIR / "model").glob("var_d*_*.yaml"))


@pytest.mark.parametrize("name", FINETUNED)
def test_finetuned_models_are_their_base_architecture(name):
    """CCA/DDO rows load into the unchanged VAR (same keys and shapes): only the file differs."""
    base = name.rsplit("_", 1)[0]
    tuned = compose_config([f"model={name}", "paths.ckpt_dir=/ckpt"]).model
    plain = compose_config([f"model={base}", "paths.ckpt_dir=/ckpt"]).model
    differing = {k for k in plain if tuned[k] != plain[k]}
    assert differing == {"name", "label", "var_ckpt"}
    assert tuned.var_ckpt.startswith("/ckpt/") and tuned.var_ckpt != plain.var_ckpt
