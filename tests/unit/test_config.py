"""Config composition and cross-field validation (`ssg_eval.config.validate`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import open_dict

from ssg_eval.errors import ConfigError
from ssg_eval.validation import validate
from tests.conftest import CONF_DIR, compose_config

EXPERIMENTS = sorted(
    str(p.relative_to(CONF_DIR / "experiment").with_suffix(""))
    for p in (CONF_DIR / "experiment").rglob("*.yaml")
)
STAGES = ["config", "report"]  # the roots: sample, features, metrics, pipeline compose config


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    cfg = compose_config([f"experiment={experiment}"], config_name="config")
    validate(cfg)
    assert "${" not in str(cfg.run_name)  # resolvable, deterministic run dir name
    assert cfg.run_name and cfg.experiment_name


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_config_composes_with_a_model(stage):
    validate(compose_config(["model=tiny", "sampler=tiny"], config_name=stage))


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
def test_every_model_file_composes(model):
    cfg = compose_config([f"model={model}"])
    assert cfg.model.name == model
    assert len(cfg.model.patch_nums) >= 1


def test_unknown_key_fails_at_composition():
    with pytest.raises(ConfigCompositionException):
        compose_config(["guidance.ssg.betaa=1"])


def test_wrong_type_fails_at_composition():
    with pytest.raises(ConfigCompositionException):
        compose_config(["sampler.num_samples=many"])


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["sampler.num_samples=25"], "sampler.num_samples=25 must be a positive multiple"),
        (["sampler.top_k=17"], "sampler.top_k=17"),
        (["sampler.top_p=1.5"], "sampler.top_p=1.5"),
        (["sampler.top_p=-0.1"], "sampler.top_p=-0.1"),
        (["sampler.temperature=0"], "sampler.temperature=0"),
        (["guidance=ssg", "guidance.ssg.beta=-1"], "guidance.ssg.beta=-1"),
        (
            ["guidance=ssg", "guidance.ssg.beta_schedule=list", "guidance.ssg.beta_list=[0.1,0.2]"],
            "guidance.ssg.beta_list has length 2",
        ),
        (["guidance=ssg", "guidance.ssg.beta_schedule=linear_decay"], "guidance.ssg.beta_end"),
        (
            [
                "guidance=ssg",
                "guidance.ssg.beta_schedule=linear_decay",
                "guidance.ssg.beta_end=0.9",
            ],
            "must be <= guidance.ssg.beta=0.5",
        ),
        (
            ["guidance=ssg", "guidance.ssg.beta_schedule=linear_ramp", "guidance.ssg.beta_end=0.1"],
            "must be >= guidance.ssg.beta=0.5",
        ),
        (["guidance=ssg", "guidance.ssg.scale_indices=[0,5]"], "guidance.ssg.scale_indices"),
        (["guidance.order=[cfg_ramp,foo]"], "guidance.order='foo' is not registered"),
        (["sampler.official_labels=[1,2]"], "sampler.official_labels is set but sampler.rng"),
        (
            ["sampler.rng=official", "sampler.official_labels=[1,2]"],
            "must hold sampler.num_samples=20 labels",
        ),
        (
            [
                "guidance=autoguidance",
                "model=var_d16",
                "sampler=var_eval",
                "guidance.autoguidance.guide.var_ckpt=null",
            ],
            "guidance.autoguidance.guide.var_ckpt=null",
        ),
    ],
)
def test_validate_rejects_with_key_and_fix(overrides, fragment):
    cfg = compose_config(overrides)
    with pytest.raises(ConfigError, match=None) as info:
        validate(cfg)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "override",
    [
        "guidance.ssg.prior_source=unknown",
        "guidance.ssg.interpolation=lanczos",
        "guidance.cfg_ramp.schedule=cosine",
        "sampler.rng=global",
        "metrics.pr_distance_dtype=float64",
    ],
)
def test_enum_typo_fails_at_composition_naming_the_key(override):
    """Options are enums in the schemas: a typo never reaches the builders."""
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["guidance=cfg_ssg", override])
    assert override.split("=")[0] in str(info.value.__cause__ or info.value)


def test_official_call_config_validates():
    cfg = compose_config(
        [
            "sampler.rng=official",
            "sampler.g_seed=0",
            "sampler.official_labels=[0,3,-1]",
            "sampler.num_samples=3",
        ]
    )
    validate(cfg)


def test_num_samples_error_suggests_fix():
    cfg = compose_config(["sampler.num_samples=25"])
    with pytest.raises(ConfigError, match="use 30"):
        validate(cfg)


def test_table1_cells_share_sampling_plan():
    """Paired comparison: with and without SSG differ only in the guidance group."""
    base = compose_config(["experiment=table1", "guidance=cfg"], config_name="config")
    ssg = compose_config(["experiment=table1", "guidance=cfg_ssg"], config_name="config")
    assert base.sampler == ssg.sampler and base.model == ssg.model
    assert base.guidance.cfg_ramp == ssg.guidance.cfg_ramp
    assert list(base.guidance.order) == ["cfg_ramp"]
    assert list(ssg.guidance.order) == ["cfg_ramp", "ssg"]
    assert base.run_name != ssg.run_name


def test_unknown_experiment_is_an_error_not_the_default():
    """A removed or mistyped experiment must never silently run the default (tiny) config."""
    with pytest.raises(MissingConfigException, match="experiment/table1/d16_cfg"):
        compose_config(["experiment=table1/d16_cfg"], config_name="config")


def test_run_name_has_no_timestamp_and_follows_overrides():
    a = compose_config(["experiment=beta_sweep", "guidance.ssg.beta=0.25"], config_name="config")
    b = compose_config(["experiment=beta_sweep", "guidance.ssg.beta=0.5"], config_name="config")
    assert a.run_name != b.run_name and "0.25" in a.run_name


def test_env_vars_point_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("SSG_EVAL_CKPT_DIR", str(tmp_path))
    cfg = compose_config(["model=var_d16"])
    assert Path(cfg.model.var_ckpt) == tmp_path / "var_d16.pth"


def test_validate_accepts_dataclass_defaults_with_tiny_plan():
    cfg = compose_config([])
    with open_dict(cfg):
        cfg.sampler.num_samples = 10
    validate(cfg)


def test_slurm_launcher_config_composes():
    """The submitit Slurm launcher example composes with a sweep (no cluster needed)."""
    cfg = compose_config(
        ["hydra/launcher=slurm", "launch.nproc_per_node=8", "experiment=beta_sweep"],
        config_name="config",
        return_hydra_config=True,
    )
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 8
