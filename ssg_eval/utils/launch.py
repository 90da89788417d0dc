"""A Hydra command line checked before Hydra runs: run names, a sweep's names, the output folder.

Hydra creates its output folder and log file before any stage code runs, so an unusable results
path or a run name that leaves the results folder must be refused here, in one line; and every job
of a multirun gets a distinct run name made of the swept keys. Pure functions on override strings
and paths (Hydra's own override parser); this module composes no config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssg_eval.errors import ConfigError, UnwritablePathError

__all__ = [
    "check_output_dir",
    "check_run_name",
    "first_point",
    "is_multirun",
    "prepare_launch",
    "sweep_run_name",
]


def is_multirun(argv: Sequence[str]) -> bool:
    """True for a Hydra multirun command line (`-m` / `--multirun`)."""
    return any(arg in ("-m", "--multirun") for arg in argv)


def check_run_name(name: str) -> None:
    """Refuse a run name that is not one folder name (it would leave `<results>/runs/`).

    Raises:
        ConfigError: naming the value and the rule.
    """
    if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"run_name={name!r} is not a folder name: a run lives in <paths.results>/runs/"
            "<run_name>, so the name may not be empty, '.' or '..', or contain '/' or '\\'"
        )


def _parsed(overrides: Sequence[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(overrides))


def first_point(overrides: Sequence[str]) -> list[str] | None:
    """The overrides of a sweep's first job (each sweep replaced by its first value).

    Returns:
        The overrides, or None when a sweep cannot be enumerated here (interval, glob).
    """
    from hydra.errors import HydraException

    point = []
    for override in _parsed(overrides):
        if not override.is_sweep_override():
            point.append(override.input_line)
            continue
        try:
            value = next(iter(override.sweep_string_iterator()))
        except (HydraException, StopIteration):
            return None
        point.append(f"{override.get_key_element()}={value}")
    return point


def sweep_run_name(template: str, overrides: Sequence[str]) -> str | None:
    """A `run_name=...` override that gives every job of a sweep its own, readable name.

    Each swept key the run name's template does not already interpolate is appended: a config
    key as `_<last part><value>` (`guidance.ssg.beta` -> `_beta0.5`), a config group as
    `_<chosen option>`. So `-m guidance=cfg_ssg guidance.ssg.beta=0,0.5` names its jobs
    `<model>_cfg_ssg_s0_beta0.0` and `..._beta0.5`. Hydra resolves the interpolations per job.

    Args:
        template: the composed run name, unresolved (`${model.name}_${guidance.name}_s...`).
        overrides: the command line's overrides.

    Returns:
        The override, or None when `run_name` is given or every swept key is in the template.
    """
    parsed = _parsed(overrides)
    if any(o.key_or_group == "run_name" for o in parsed):
        return None
    suffix = ""
    for override in parsed:
        key = override.key_or_group
        if not override.is_sweep_override() or key.startswith("hydra"):
            continue
        if "." in key:
            if "${" + key + "}" not in template:
                suffix += f"_{key.rsplit('.', 1)[-1]}${{{key}}}"
        elif key == "experiment":
            suffix += "" if "${experiment_name}" in template else "_${experiment_name}"
        elif "${" + f"{key}.name" + "}" not in template:
            suffix += f"_${{hydra:runtime.choices.{key}}}"
    return f"run_name='{template}{suffix}'" if suffix else None


def check_output_dir(path: str | Path) -> None:
    """Create `path` (Hydra's output folder) now, or refuse in one line naming it.

    Raises:
        UnwritablePathError: a file is in the way, the filesystem is read-only, permissions,
            a full disk.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UnwritablePathError(
            err.errno,
            f"cannot create {path} ({err.strerror}): paths.results must be a writable folder "
            "(not a file, not on a read-only filesystem); point paths.results elsewhere",
        ) from None


def prepare_launch(stage: str, cfg: Any, argv: Sequence[str], dry_run: bool) -> list[str]:
    """Checks and extra overrides of a stage's command line, from its composed (first) config.

    Args:
        stage: the stage (`report` has no run name).
        cfg: the config composed with Hydra's config (`return_hydra_config=True`).
        argv: the command line.
        dry_run: a dry run writes nothing, so the output folder is not created.

    Returns:
        Overrides to append (a multirun's `run_name=...`), possibly none.

    Raises:
        ConfigError: the run name leaves the results folder.
        UnwritablePathError: Hydra's output folder cannot be created.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    multirun = is_multirun(argv)
    overrides = [a for a in argv if not a.startswith("-")]
    extra = []
    if stage != "report":
        try:
            name = str(cfg.run_name)
        except OmegaConfBaseException:  # a sweep's ${hydra:...}: each job checks its own name
            name = None
        if name is not None:
            check_run_name(name)
        template = OmegaConf.to_container(cfg, resolve=False)["run_name"]
        named = sweep_run_name(str(template), overrides) if multirun else None
        extra += [named] if named else []
    moved = any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in overrides)
    if not dry_run and not moved:
        check_output_dir(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)
    return extra
