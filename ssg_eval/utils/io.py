"""Former home of the file helpers; they live in `ssg_eval.runs.io` now (one writer, one reader).

Kept only as an import alias so that code written against the old path keeps working; new code
imports `ssg_eval.runs.io` directly. This module defines nothing of its own.
"""

from __future__ import annotations

from ssg_eval.runs.io import atomic_write_json, atomic_write_npz, atomic_write_text, read_json
from ssg_eval.runs.io import sha256_file as sha256_of_file

__all__ = ["atomic_write_json", "atomic_write_npz", "atomic_write_text", "read_json",
           "sha256_of_file"]  # fmt: skip
