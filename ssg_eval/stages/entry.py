"""Shared plumbing of the Hydra stage entry points: the packaged conf/ and the CLI error contract.

Stages call `cli_main` so that every one exits 0 on success, or non-zero with one line on stderr
(the stack trace goes to the log); this module must not hold stage logic.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssg_eval.config import validate
from ssg_eval.runs.layout import results_dir, run_dir
from ssg_eval.utils.logging import configure_cli_logging, current_rank, get_logger

__all__ = [
    "CONF_DIR",
    "USER_ERRORS",
    "check_overrides",
    "cli_main",
    "exit_on_user_error",
    "hydra_entry",
    "results_dir",
    "run_dir",
]

log = get_logger(__name__)
# The Hydra configs ship inside the package (ssg_eval/conf); absolute, so console scripts and
# non-editable installs work from any directory.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


# User errors: config (ConfigError is a ValueError), files, locks (RunLockedError is a
# RuntimeError), unwritable paths and full disks (OSError), damaged files (ValueError).
USER_ERRORS = (ValueError, KeyError, OSError, RuntimeError)


def exit_on_user_error(prog: str, fn: Callable[[], Any], trace_level: int = logging.DEBUG) -> Any:
    """Return `fn()`; on a user error log the stack trace and exit 2 with one line on stderr.

    Args:
        prog: program name that prefixes the error line (`<prog>: error: <message>`).
        fn: the work to run.
        trace_level: log level of the stack trace (the run log under Hydra, stderr otherwise).
    """
    try:
        return fn()
    except KeyboardInterrupt:
        _log_trace(f"{prog} interrupted", trace_level)
        print(f"{prog}: interrupted; finished work is kept, rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except USER_ERRORS as err:
        _log_trace(f"{prog} failed", trace_level)
        message = " ".join(str(err).split("\n")) if not isinstance(err, KeyError) else repr(err)
        if current_rank() == 0:  # under torchrun every rank fails alike: one line, not W
            print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _log_trace(message: str, level: int) -> None:
    # The stack trace goes to log files only (the run's log under Hydra), never to the console.
    record = log.makeRecord(log.name, level, __file__, 0, message, (), sys.exc_info())
    handlers = [h for lg in (log, logging.getLogger("ssg_eval"), logging.getLogger())
                for h in lg.handlers if isinstance(h, logging.FileHandler)]  # fmt: skip
    for handler in dict.fromkeys(handlers):
        handler.handle(record)


def cli_main(stage: str, fn: Callable[[Any], Any], cfg: Any) -> Any:
    """Validate `cfg`, run `fn(cfg)`, print one final line; on a user error exit 2 with one line.

    Args:
        stage: stage name used in the final line and in error lines.
        fn: the stage function; its return value (a path or dict of paths) is printed.
        cfg: the composed config.
    """
    configure_cli_logging()

    def work() -> Any:
        validate(cfg)
        return fn(cfg)

    out = exit_on_user_error(f"ssg-{stage}", work, trace_level=logging.ERROR)
    if isinstance(out, dict) and out:
        print(f"ssg-{stage}: wrote " + ", ".join(str(path) for path in out.values()))
    elif out is not None:
        print(f"ssg-{stage}: outputs in {out}")
    return out


def experiment_names() -> list[str]:
    """Every experiment under conf/experiment/ (`table1`, `smoke`, `beta_sweep`, ...)."""
    root = Path(CONF_DIR) / "experiment"
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _override_values(argv: list[str], key: str) -> list[str] | None:
    for arg in argv:
        name, sep, value = arg.lstrip("+").partition("=")
        if sep and name == key:
            return [v.strip() for v in value.split(",")]  # a multirun sweep lists values
    return None


def check_overrides(argv: list[str]) -> None:
    """Refuse, before Hydra composes anything, what would otherwise pass silently.

    Raises:
        ConfigError: an experiment that does not exist (the valid ones are listed), or a
            VAR model selected without the evaluation sampler (the tiny sampler is the default).
    """
    from ssg_eval.config import ConfigError

    experiments = _override_values(argv, "experiment")
    for name in experiments or []:
        if name not in experiment_names():
            raise ConfigError(
                f"experiment={name} does not exist; valid experiments: {experiment_names()}"
            )
    models = _override_values(argv, "model") or []
    real = [m for m in models if not m.startswith("tiny")]
    if real and experiments is None and _override_values(argv, "sampler") is None:
        raise ConfigError(
            f"model={real[0]} alone composes the tiny test sampler (20 samples); add "
            "sampler=var_eval (the evaluation recipe) or use an experiment "
            f"(e.g. experiment=table1 model={real[0]})"
        )


def _is_dry_run(argv: list[str]) -> bool:
    return (_override_values(argv, "dry_run") or ["false"])[0].lower() == "true"


def hydra_entry(stage: str, hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function after `check_overrides`, honouring `dry_run` for Hydra too.

    A dry run writes nothing: Hydra's run/sweep dirs and its log file are sent to a temp dir
    that is removed afterwards.
    """
    import shutil
    import tempfile

    argv = sys.argv[1:]
    configure_cli_logging()
    exit_on_user_error(f"ssg-{stage}", lambda: check_overrides(argv))
    scratch = None
    if _is_dry_run(argv):
        scratch = tempfile.mkdtemp(prefix="ssg_eval_dry_run_")
        sys.argv += [f"hydra.run.dir={scratch}", f"hydra.sweep.dir={scratch}"]
    try:
        hydra_main()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
