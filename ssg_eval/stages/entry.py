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
from ssg_eval.utils.logging import configure_cli_logging, get_logger

__all__ = ["CONF_DIR", "USER_ERRORS", "cli_main", "exit_on_user_error", "results_dir", "run_dir"]

log = get_logger(__name__)
# The packaged conf/ (absolute, so console scripts work from any directory).
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


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
        log.log(trace_level, "%s interrupted", prog, exc_info=True)
        print(f"{prog}: interrupted; finished work is kept, rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except USER_ERRORS as err:
        log.log(trace_level, "%s failed", prog, exc_info=True)
        message = " ".join(str(err).split("\n")) if not isinstance(err, KeyError) else repr(err)
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


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
    if isinstance(out, dict):
        print(f"ssg-{stage}: wrote " + ", ".join(str(path) for path in out.values()))
    elif out is not None:
        print(f"ssg-{stage}: outputs in {out}")
    return out
