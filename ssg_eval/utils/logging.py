"""Rank-aware loggers: INFO on rank 0, WARNING and above on every rank, with a rank prefix.

Library code logs through `get_logger(__name__)` and never prints; this module must not
configure handlers at import time.
"""

from __future__ import annotations

import logging
import os
import sys


def current_rank() -> int:
    """Rank from the torchrun environment (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


def get_logger(name: str) -> logging.Logger:
    """Return a logger whose level depends on the process rank.

    Args:
        name: usually `__name__`.

    Returns:
        A `logging.Logger` named `name`, INFO on rank 0 and WARNING elsewhere.
    """
    logger = logging.getLogger(name)
    rank = current_rank()
    logger.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    return logger


def _one_line_error(handler: logging.FileHandler):
    """`handleError` of a log file that cannot be written (full disk, size limit): one line, once.

    Python's default prints a traceback per failed record; the stage's own error line follows.
    """

    def handle_error(record: logging.LogRecord) -> None:
        if getattr(handler, "_ssg_eval_failed", False):
            return
        handler._ssg_eval_failed = True  # type: ignore[attr-defined]
        err = sys.exc_info()[1]
        print(f"warning: cannot write the log file {handler.baseFilename} ({err}); it is "
              "incomplete", file=sys.stderr)  # fmt: skip

    return handle_error


def configure_cli_logging(level: int = logging.INFO) -> None:
    """Attach one stderr handler with a rank prefix; called once by CLI entry points only."""
    rank = current_rank()
    root = logging.getLogger("ssg_eval")
    for handler in logging.getLogger().handlers:  # Hydra's job log file
        if isinstance(handler, logging.FileHandler):
            handler.handleError = _one_line_error(handler)  # type: ignore[method-assign]
    if logging.getLogger().handlers and not root.handlers:
        # Under @hydra.main the root logger already writes to the job's log file (and stdout):
        # keep propagating there, so stack traces land in <run dir>/.hydra_run/rank<r>/<stage>.log.
        # Its console handler moves to stderr: stdout carries only the CLI's final line.
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)
        root.setLevel(level if rank == 0 else logging.WARNING)
        return
    if any(getattr(h, "_ssg_eval", False) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"[rank{rank}] %(asctime)s %(name)s: %(message)s"))
    handler._ssg_eval = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if rank == 0 else logging.WARNING)
    root.propagate = False
