"""Schemas of `python -m ssg_eval.tune` (conf/tune.yaml): search space, halving, budget, statistics.

The tuner's root config is separate from the stage configs (`ssg_eval.config`); this module holds
its dataclasses and their ConfigStore registration only, no search logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = ["TuneConfig", "TuneMode", "TuneObjective"]


class TuneMode(StrEnum):
    halving = "halving"  # grid + successive halving
    trial = "trial"  # one Optuna trial (hydra-optuna-sweeper drives it)


class TuneObjective(StrEnum):
    fid = "fid"
    fid_is_constrained = "fid_is_constrained"  # FID among candidates with IS >= baseline


@dataclass
class TuneSpaceConfig:
    betas: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 2.0])
    # name -> guidance.ssg keys of a beta schedule (beta itself comes from `betas`)
    schedules: dict[str, Any] = field(default_factory=lambda: {"constant": {}})
    temperatures: list[float] = field(default_factory=lambda: [1.0])
    # name -> guidance.ssg keys of one reading of the method (placement, prior_source, ...)
    readings: dict[str, Any] = field(default_factory=lambda: {"default": {}})


@dataclass
class TuneHalvingConfig:
    n_start: int = 5000  # every candidate starts here (N0)
    growth: int = 2  # N multiplies by this per rung
    n_cap: int = 40_000  # largest N of a halving rung
    n_final: int = 50_000  # the winner (and the baseline) end here
    keep_fraction: float = 0.5  # survivors per rung: ceil(fraction * candidates), at least 1


@dataclass
class TuneBudgetConfig:
    max_samples: int | None = None  # newly generated samples over the whole tune; null = no cap
    max_gpu_hours: float | None = None  # measured device-hours (seconds x processes); null = no cap


@dataclass
class TuneStatsConfig:
    bootstrap_resamples: int = 100  # paired bootstrap draws per reported row (0 = no CIs)
    confidence: float = 0.95
    power: float = 0.8  # power of the minimum detectable delta
    seed: int = 0
    target_gain: float = 0.15  # the FID gain the report asks "resolvable at N?" about


@dataclass
class TuneTrialConfig:
    beta: float = 0.5
    temperature: float = 1.0
    schedule: str = "constant"
    reading: str = "default"
    num_samples: int | None = None  # null: halving.n_start


@dataclass
class TuneConfig:
    target: str = MISSING  # the model to tune: a conf/model name (var_d16, tiny_d1, ...)
    experiment: str = "table1"  # the experiment every candidate runs on (smoke for tiny models)
    baseline_guidance: str = "cfg"  # conf/guidance of the baseline (SSG off)
    ssg_guidance: str = "cfg_ssg"  # conf/guidance the SSG candidates start from
    mode: TuneMode = TuneMode.halving  # halving (grid + successive halving) | trial (Optuna)
    objective: TuneObjective = TuneObjective.fid  # fid | fid_is_constrained (IS >= baseline)
    name: str = "${target}"  # output folder results/tune/<name>
    results: str = "${oc.env:SSG_EVAL_RESULTS,results}"
    overrides: list[str] = field(default_factory=list)  # extra pipeline overrides for every run
    make_smoke_assets: bool = False  # tiny models: create the smoke assets when missing
    guidance_dir: str | None = None  # folder of the tuned guidance/; null = the tune's folder
    space: TuneSpaceConfig = field(default_factory=TuneSpaceConfig)
    halving: TuneHalvingConfig = field(default_factory=TuneHalvingConfig)
    budget: TuneBudgetConfig = field(default_factory=TuneBudgetConfig)
    stats: TuneStatsConfig = field(default_factory=TuneStatsConfig)
    trial: TuneTrialConfig = field(default_factory=TuneTrialConfig)


ConfigStore.instance().store(name="base_tune", node=TuneConfig)
