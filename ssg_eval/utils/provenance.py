"""Traceability of every artifact: git commit and dirty flag, library versions, device.

This module only reads the environment; it must not write files or change any runtime setting.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any


def git_state(repo_dir: str | Path | None = None) -> dict[str, Any]:
    """Commit hash and dirty flag of the source tree (None values outside a git checkout)."""
    repo_dir = Path(repo_dir) if repo_dir else Path(__file__).resolve().parents[2]

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=repo_dir, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def library_versions() -> dict[str, str]:
    """Versions of the libraries that can change numbers."""
    import numpy
    import scipy
    import torch

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
    try:
        import torch_fidelity

        versions["torch_fidelity"] = torch_fidelity.__version__
    except ImportError:
        pass
    return versions


def device_description() -> dict[str, Any]:
    """CUDA device names and count, or the CPU description."""
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return {"type": "cuda", "names": names, "cuda": torch.version.cuda}
    return {
        "type": "cpu",
        "name": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }


def collect_provenance() -> dict[str, Any]:
    """Everything a reviewer needs to trace a number back: git, versions, device."""
    return {"git": git_state(), "versions": library_versions(), "device": device_description()}
