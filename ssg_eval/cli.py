"""Command-line plumbing shared by every entry point: where the configs live and the error contract.

Stages, the tuner, the suites and the analysis CLIs all run their work through `run_cli`: a
`UserError` (or a `FileNotFoundError` / `FileExistsError` about a user's path) prints one line and
exits 2, Ctrl-C exits 130, and anything else is a bug that prints its full traceback and exits 1.
This module holds no stage logic and imports no stage.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ssg_eval.config  # noqa: F401  (registers the schemas before Hydra composes anything)
from ssg_eval.errors import ConfigError, UserError
from ssg_eval.utils.logging import configure_cli_logging, current_rank, get_logger

__all__ = [
    "CONF_MODULE",
    "CONF_PATH",
    "USER_ERRORS",
    "cli_main",
    "compose_context",
    "conf_dir",
    "config_names",
    "hydra_entry",
    "run_cli",
]

log = get_logger(__name__)

# conf/ at the repository root is installed as this package (pyproject's package-dir mapping).
CONF_MODULE = "ssg_eval.conf"
CONF_PATH = f"pkg://{CONF_MODULE}"
# What a user can fix; everything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, FileExistsError)


def conf_dir() -> Path:
    """The installed `conf/` folder as a filesystem path (editable and regular installs)."""
    return Path(str(importlib.resources.files(CONF_MODULE)))


def config_names(group: str) -> list[str]:
    """Every config of a group (`experiment` -> `['beta_sweep', ..., 'table1', ...]`)."""
    root = conf_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


@contextlib.contextmanager
def compose_context() -> Iterator[None]:
    """Hydra's compose API on the packaged configs (reuses a running Hydra app's setup)."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        yield


def _file_handlers() -> list[logging.Handler]:
    loggers = (log, logging.getLogger("ssg_eval"), logging.getLogger())
    found = [h for lg in loggers for h in lg.handlers if isinstance(h, logging.FileHandler)]
    return list(dict.fromkeys(found))


def _log_to_files(message: str, level: int) -> None:
    # The run's log file (Hydra's job log) keeps every trace; the console gets what run_cli prints.
    record = log.makeRecord(log.name, level, __file__, 0, message, (), sys.exc_info())
    for handler in _file_handlers():
        handler.handle(record)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def run_cli(prog: str, fn: Callable[[], Any]) -> Any:
    """Return `fn()` under the error contract of every console script.

    A `UserError`, `FileNotFoundError` or `FileExistsError` prints `<prog>: error: <message>` on
    one line (rank 0 only; the trace goes to the log file) and exits 2. Ctrl-C exits 130 saying
    that finished work is kept. Any other exception is a bug: its full traceback goes to stderr
    and the log file, and the process exits 1.

    Args:
        prog: program name that prefixes the error line.
        fn: the work to run.
    """
    try:
        return fn()
    except KeyboardInterrupt:
        _log_to_files(f"{prog} interrupted", logging.INFO)
        print(f"{prog}: interrupted; finished work is kept, rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except USER_ERRORS as err:
        _log_to_files(f"{prog} failed", logging.DEBUG)
        if current_rank() == 0:  # under torchrun every rank fails alike: one line, not W
            print(f"{prog}: error: {_one_line(err)}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        _log_to_files(f"{prog} failed with a bug", logging.ERROR)
        print(f"{prog}: internal error (a bug, please report it with this trace):",
              file=sys.stderr)  # fmt: skip
        traceback.print_exc(file=sys.stderr)
        sys.exit(1)


def cli_main(stage: str, fn: Callable[[Any], Any], cfg: Any, *, check: bool = True) -> Any:
    """Validate `cfg`, run `fn(cfg)` under `run_cli` and print one final line.

    Args:
        stage: stage name used in the final line and in error lines (`ssg-<stage>`).
        fn: the stage function; its return value (a path or dict of paths) is printed.
        cfg: the composed config.
        check: run `validate(cfg)` first (the report, which reads finished runs only, skips it).
    """
    from ssg_eval.validation import validate

    configure_cli_logging()

    def work() -> Any:
        if check:
            validate(cfg)
        return fn(cfg)

    out = run_cli(f"ssg-{stage}", work)
    if isinstance(out, dict) and out:
        print(f"ssg-{stage}: wrote " + ", ".join(str(path) for path in out.values()))
    elif out is not None:
        print(f"ssg-{stage}: outputs in {out}")
    return out


def _override_value(argv: Sequence[str], key: str) -> str | None:
    for arg in argv:
        name, sep, value = arg.lstrip("+~").partition("=")
        if sep and name == key:
            return value
    return None


def _composition_error(err: Exception, overrides: Sequence[str]) -> ConfigError:
    # Hydra's messages span several lines; a missing group option becomes "valid <group>s: [...]".
    from hydra.errors import MissingConfigException

    options = getattr(err, "options", None)
    missing = str(getattr(err, "missing_cfg_file", "") or "")
    if isinstance(err, MissingConfigException) and options:
        for arg in overrides:
            key, _, value = arg.lstrip("+~").partition("=")
            if missing == f"{key.replace('.', '/')}/{value}":
                valid = sorted(o for o in options if not o.startswith("base_"))
                return ConfigError(f"{key}={value} does not exist; valid {key}s: {valid}")
    cause = err.__cause__
    reason = getattr(cause, "msg", None)
    if reason:  # a typed value Hydra refused, e.g. an enum typo: "expected one of [...]"
        where = getattr(cause, "full_key", None)
        key = f" (key {where})" if where else ""
        return ConfigError(f"{_one_line(err)}: {str(reason).splitlines()[0]}{key}")
    return ConfigError(_one_line(err))


def check_composition(config_name: str, argv: Sequence[str]) -> Any:
    """Compose `config_name` with the command line's overrides once, before Hydra runs the job.

    A typo in a group name, an unknown key or a missing mandatory group then stops with one line
    (Hydra's own report spans several). A sweep (`-m`) is composed at its first point; one that
    only Hydra's sweeper can enumerate (interval, glob) is left to Hydra.

    Returns:
        The composed config with Hydra's node, or None when nothing was composed.

    Raises:
        ConfigError: the overrides do not compose (names the group or key).
    """
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ssg_eval.utils.launch import first_point, is_multirun

    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return None
    overrides = [
        a for a in argv if not a.startswith("-") and not a.lstrip("+~").startswith("hydra")
    ]
    if is_multirun(argv):
        overrides = first_point(overrides)
        if overrides is None:
            return None
    try:
        with compose_context():
            return compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise _composition_error(err, overrides) from err


def hydra_entry(stage: str, config_name: str, hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function after `check_composition`, honouring `dry_run` for Hydra too.

    Before Hydra creates its output folder, `utils.launch.prepare_launch` refuses a run name
    that leaves the results folder or an unusable results path in one line, and names every job
    of a multirun. A dry run writes nothing: Hydra's run/sweep dirs and its log file are sent to
    a temp dir that is removed afterwards.
    """
    from ssg_eval.utils.launch import prepare_launch

    argv = sys.argv[1:]
    configure_cli_logging()
    cfg = run_cli(f"ssg-{stage}", lambda: check_composition(config_name, argv))
    dry_run = (_override_value(argv, "dry_run") or "false").lower() == "true"
    if cfg is not None:  # run name, a sweep's run names, Hydra's output folder
        sys.argv += run_cli(f"ssg-{stage}", lambda: prepare_launch(stage, cfg, argv, dry_run))
    scratch = None
    if dry_run:
        scratch = tempfile.mkdtemp(prefix="ssg_eval_dry_run_")
        sys.argv += [f"hydra.run.dir={scratch}", f"hydra.sweep.dir={scratch}"]
    try:
        hydra_main()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
