"""The sample linter: judges any ADM-format samples file before it is scored (`ssg-lint`).

Pure checks on arrays live in `checks`, `labels` and `scan`; only `run` (files), `cli` (the
command) and `preflight` (the metrics stage's hook) touch files. Nothing here runs Inception.
"""

from __future__ import annotations
