"""`python -m ssg_eval.tune` (`make tune MODEL=...`): find SSG's beta by paired successive halving.

`mode=halving` (default) runs the grid of `conf/tune/<space>.yaml` through successive
halving; `mode=trial` measures one (beta, temperature, schedule, reading) point and returns its
objective, which is how hydra-optuna-sweeper drives it (`-m hydra/sweeper=optuna`). Sequencing
only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf

from ssg_eval.cli import CONF_PATH, run_cli
from ssg_eval.errors import ConfigError, RunLockedError
from ssg_eval.runs.io import atomic_write_json, ensure_dir
from ssg_eval.runs.records import read_record
from ssg_eval.tune.evaluate import PipelineEvaluator
from ssg_eval.tune.halving import (
    planned_samples,
    run_halving,
    rung_sizes,
    space_fingerprint,
)
from ssg_eval.tune.schema import TuneMode
from ssg_eval.tune.space import BASELINE, Candidate, candidate_from_params, candidates_from_space
from ssg_eval.utils.logging import configure_cli_logging, get_logger

log = get_logger(__name__)


def tune_dir_of(cfg: Any) -> Path:
    """`<tune.results>/tune/<tune.name>`."""
    return Path(str(cfg.results)).expanduser().resolve() / "tune" / str(cfg.name)


def guidance_dir_of(cfg: Any) -> Path:
    """Where the tuned guidance group file goes: `tune.guidance_dir`, else the tune's folder.

    The default, `<results>/tune/<name>`, is the search-path root that `make table1
    GUIDANCE=tuned` reads (`ssg_eval.stages.tuned`); nothing is ever written into the package.
    """
    return Path(cfg.guidance_dir) if cfg.guidance_dir else tune_dir_of(cfg)


def _lock(directory: Path) -> FileLock:
    ensure_dir(directory)
    lock = FileLock(str(directory / ".tune.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as err:
        raise RunLockedError(
            f"another tune of {directory.name} is running (it holds {directory / '.tune.lock'}); "
            "wait for it to finish or stop it: the lock is released when that process exits"
        ) from err
    return lock


def _check_stats(stats: Any) -> None:
    for key in ("confidence", "power"):
        if not 0 < float(stats[key]) < 1:
            raise ConfigError(f"tune.stats.{key}={stats[key]} must be in (0, 1), e.g. 0.95 / 0.8")
    if int(stats.bootstrap_resamples) < 0:
        raise ConfigError(
            f"tune.stats.bootstrap_resamples={stats.bootstrap_resamples} must be >= 0 (< 2: no CIs)"
        )


def _setup(cfg: Any, evaluator_cls: type) -> tuple[PipelineEvaluator, list, Path]:
    # Called under the tune's lock: a second tune of the same model is refused before any work.
    _check_stats(cfg.stats)  # the statistics run last: refuse their settings before any sampling
    directory = tune_dir_of(cfg)
    evaluator = evaluator_cls(cfg, directory)
    # the baseline experiment as it stands (its own temperature), before any candidate override
    base_cfg = evaluator.compose(Candidate("probe", {}, (), ssg=False), int(cfg.halving.n_start))
    if cfg.make_smoke_assets:
        from ssg_eval.smoke import make_assets

        make_assets([base_cfg])
    candidates = candidates_from_space(cfg.space, float(base_cfg.sampler.temperature))
    return evaluator, candidates, directory


def run_tune(cfg: Any, evaluator_cls: type = PipelineEvaluator) -> dict[str, Path]:
    """Successive halving over `tune.space`, then the report; returns the written paths.

    Args:
        cfg: the composed tune config.
        evaluator_cls: `PipelineEvaluator` or a subclass (tests swap the feature network).
    """
    with _lock(tune_dir_of(cfg)):  # before the assets: a second tune is refused at once
        return _run_tune(cfg, evaluator_cls)


def _run_tune(cfg: Any, evaluator_cls: type) -> dict[str, Path]:
    from ssg_eval.tune.summary import write_report

    evaluator, candidates, directory = _setup(cfg, evaluator_cls)
    h = cfg.halving
    sizes = rung_sizes(int(h.n_start), int(h.growth), int(h.n_cap))
    pipeline = [o for o in evaluator.common if not o.startswith("paths.results=")]
    settings = {"sizes": sizes, "n_final": int(h.n_final), "keep_fraction": float(h.keep_fraction),
                "objective": str(cfg.objective), "pipeline": pipeline,
                "guidance": [str(cfg.baseline_guidance), str(cfg.ssg_guidance)]}  # fmt: skip
    fingerprint = space_fingerprint(candidates, settings)
    planned = planned_samples(len(candidates) - 1, sizes, int(h.n_final), float(h.keep_fraction))
    log.info("%d candidates, rungs %s, final N=%d: at most %d new samples", len(candidates),
             sizes, int(h.n_final), planned)  # fmt: skip
    if cfg.budget.max_samples is not None and planned > int(cfg.budget.max_samples):
        log.warning("tune.budget.max_samples=%d < %d planned: the search may stop before the "
                    "final N", int(cfg.budget.max_samples), planned)  # fmt: skip
    state = run_halving(
        candidates, evaluator.measure, state_path=directory / "state.json", sizes=sizes,
        n_final=int(h.n_final), keep_fraction=float(h.keep_fraction),
        objective=str(cfg.objective), fingerprint=fingerprint,
        budget=OmegaConf.to_container(cfg.budget) if OmegaConf.is_config(cfg.budget)
        else dict(cfg.budget),
    )  # fmt: skip
    return write_report(evaluator, state, candidates, cfg, directory, guidance_dir_of(cfg),
                        fingerprint)  # fmt: skip


def run_trial(cfg: Any, evaluator_cls: type = PipelineEvaluator) -> float:
    """One Optuna trial: the candidate of `tune.trial` and the baseline at N; returns the objective.

    `fid`: the candidate's FID. `fid_is_constrained`: FID plus 1000 x the relative IS shortfall
    below the baseline's IS at the same N (0 when IS >= baseline), so infeasible points lose.
    Every trial is appended to `<tune dir>/trials.json`.
    """
    with _lock(tune_dir_of(cfg)):  # before the assets: a second tune is refused at once
        return _run_trial(cfg, evaluator_cls)


def _run_trial(cfg: Any, evaluator_cls: type) -> float:
    from ssg_eval.metrics.keys import FID, IS

    evaluator, candidates, directory = _setup(cfg, evaluator_cls)
    t = cfg.trial
    for key, table in (("schedule", cfg.space.schedules), ("reading", cfg.space.readings)):
        if t[key] not in table:
            raise ConfigError(f"tune.trial.{key}={t[key]!r} is not in tune.space: {list(table)}")
    base_temperature = next(c for c in candidates if c.key == BASELINE).params["temperature"]
    cand = candidate_from_params(
        float(t.beta), str(t.schedule), dict(cfg.space.schedules[t.schedule] or {}),
        float(t.temperature), str(t.reading), dict(cfg.space.readings[t.reading] or {}),
        base_temperature,
    )  # fmt: skip
    n = int(t.num_samples or cfg.halving.n_start)
    baseline = next(c for c in candidates if c.key == BASELINE)
    base = evaluator.measure(baseline, n)
    got = evaluator.measure(cand, n) if cand.key != BASELINE else base
    value = got.metrics[FID]
    if cfg.objective == "fid_is_constrained":
        shortfall = max(0.0, base.metrics[IS] - got.metrics[IS]) / base.metrics[IS]
        value += 1000.0 * shortfall
    path = directory / "trials.json"
    trials = read_record(path, "tune_trials") if path.is_file() else []
    trials.append({"candidate": cand.key, "params": cand.params, "n": n,
                   "metrics": got.metrics, "baseline_metrics": base.metrics,
                   "objective": value})  # fmt: skip
    atomic_write_json(path, trials)
    return float(value)


@hydra.main(version_base="1.3", config_path=CONF_PATH, config_name="tune")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the trial objective in `mode=trial` (for the Optuna sweeper)."""
    configure_cli_logging()
    if cfg.mode == TuneMode.trial:
        value = run_cli("ssg-tune", lambda: run_trial(cfg))
        print(f"ssg-tune trial: objective {value:.6g}")
        return value
    written = run_cli("ssg-tune", lambda: run_tune(cfg))
    print("ssg-tune: wrote " + ", ".join(str(p) for p in written.values()))
    return None


if __name__ == "__main__":
    main()
