"""The error contract: every condition a user can fix raises a subclass of `UserError`.

The command-line handler (`ssg_eval.cli`) prints a `UserError` (and a `FileNotFoundError` or
`FileExistsError` about a user's path) as one line and exits 2; anything else is a bug and shows
its full traceback. This module defines the classes only; it must not import anything heavy.

Each class also derives from the builtin that describes it (`ValueError`, `OSError`, ...), so
library callers that catch builtins keep working; the handler decides by the `UserError` base.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EnvironmentMismatch",
    "IdentityMismatch",
    "IncompleteRunError",
    "InputFileError",
    "MismatchedRunsError",
    "NpzError",
    "RunLockedError",
    "UnreadableFileError",
    "UnwritablePathError",
    "UserError",
]


class UserError(Exception):
    """A condition the user can fix; the message names the key or file and the fix."""


class ConfigError(UserError, ValueError):
    """A configuration mistake: the message names the key, the value received and the fix."""


class IdentityMismatch(ConfigError):
    """A run directory holds another run's content; the message names the differing keys."""


class EnvironmentMismatch(ConfigError):
    """A resume would mix shards of numeric environments (device, libraries, threads)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint does not match the configured architecture or is damaged."""


class InputFileError(UserError, ValueError):
    """A file the user supplies (reference batch, weights, samples file) has the wrong content."""


class UnreadableFileError(UserError, ValueError):
    """A file exists but cannot be parsed or has the wrong shape; names the file and the fix."""


class NpzError(UnreadableFileError):
    """An npz that cannot be read or lacks a key; the message names the file and the fix."""


class MismatchedRunsError(UserError, ValueError):
    """Runs given together do not belong together (another model, sample plan, size or setting).

    Raised where two or more finished runs are compared (analysis CLIs, the report's paired
    deltas); the message names both runs, the differing key and which runs to pass instead.
    """


class RunLockedError(UserError, RuntimeError):
    """Another process holds the run's lock; the message names it and how to clear a stale lock."""


class IncompleteRunError(UserError, ValueError):
    """A stage's inputs are missing, incomplete or from other inputs; names the stage to run."""


class UnwritablePathError(UserError, OSError):
    """An output path cannot be written (permissions, read-only, full disk, a file in the way)."""
