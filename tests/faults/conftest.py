"""Fixtures of the fault-injection suite: the tiny CPU model, a reference run, forked crashes.

Crashes are real: a forked child runs the stage with one function wrapped to SIGKILL itself at a
chosen point, and the parent resumes with the ordinary command and compares the bytes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
import torch

from ssg_eval.sampling.runner import sample_run
from tests.conftest import compose_config
from tests.shard_helpers import shard_contents as contents

TINY = ["model=tiny", "sampler=tiny", "runtime.device=cpu", "runtime.measure_latency=false"]


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    """One intra-op thread: identical CPU rounding in every run, and safe to fork."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(results, *overrides: str, config_name: str = "config"):
    """The tiny model on CPU with results under `results`."""
    return compose_config([*TINY, f"paths.results={results}", *overrides], config_name)


@pytest.fixture(scope="package")
def reference(tmp_path_factory):
    """One uninterrupted single-process run: (shard contents, samples.npz bytes)."""
    directory = sample_run(tiny(tmp_path_factory.mktemp("reference")))
    return contents(directory), (directory / "samples.npz").read_bytes()


def kill_self() -> None:
    """SIGKILL this process (no cleanup, no atexit, no finally)."""
    os.kill(os.getpid(), signal.SIGKILL)


def fork_child(work: Callable[[], None]) -> int:
    """Run `work` in a forked child that exits 0 on success, 1 otherwise; returns its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)
    return pid


def in_child(work: Callable[[], None]) -> int:
    """Run `work` in a forked child and wait; returns the child's wait status."""
    return os.waitpid(fork_child(work), 0)[1]


class PixelStatistics(torch.nn.Module):
    """A cheap stand-in for Inception: per-image pixel moments broadcast to the feature widths.

    The run layer does not depend on the network, only on what it returns."""

    def forward(self, images_BCHW: torch.Tensor) -> dict[str, torch.Tensor]:
        from ssg_eval.features import FEATURE_DIMS

        x = images_BCHW.float()
        moments = torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x[:, 0].mean((1, 2))], 1)
        return {key: moments.repeat(1, -(-dim // 3))[:, :dim] for key, dim in FEATURE_DIMS.items()}


@pytest.fixture
def stand_in_inception(tmp_path, monkeypatch):
    """Overrides selecting stand-in weights (only their sha256 matters) and the stand-in net."""
    import ssg_eval.features.inception as inception

    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"stand-in weights: only their sha256 keys the cache")
    monkeypatch.setattr(inception, "build_inception", lambda *_: PixelStatistics())
    return (f"metrics.inception_weights={weights}", "metrics.feature_batch_size=8")


@pytest.fixture
def with_reference(tmp_path, stand_in_inception):
    """Overrides for a full cell: stand-in Inception and a small ADM-format reference."""
    from ssg_eval.runs.io import atomic_write_npz
    from ssg_eval.smoke import synthetic_images

    reference = tmp_path / "reference.npz"
    atomic_write_npz(reference, arr_0=synthetic_images(20, 48, seed=3))
    return (*stand_in_inception, f"metrics.reference={reference}",
            "metrics.reference_name=reference.npz",
            "metrics.metrics=[fid,is,precision,recall]")  # fmt: skip
