"""SamplePlan: balanced labels, IS-split coverage, disjoint chunks, stable seeds, rank split."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ssg_eval.sampling.plan import SamplePlan, plan_from_config
from tests.conftest import compose_config

# Pinned values of the seed rules (a change here changes every image of every run).
SAMPLE_SEEDS_SEED0 = [
    7896617691693857887,
    2918264622725855778,
    8597659618385908031,
    3291213472928352369,
]


@pytest.fixture
def imagenet_plan() -> SamplePlan:
    return SamplePlan(num_samples=50_000, num_classes=1000, chunk_size=1000, seed=0)


def test_labels_are_balanced(imagenet_plan):
    labels = imagenet_plan.labels(np.arange(imagenet_plan.num_samples))
    assert labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels, minlength=1000), np.full(1000, 50))
    assert [imagenet_plan.label_of(i) for i in (0, 999, 1000, 49_999)] == [0, 999, 0, 999]


def test_every_consecutive_is_split_covers_every_class(imagenet_plan):
    labels = imagenet_plan.labels(range(imagenet_plan.num_samples))
    for split in labels.reshape(10, 5000):
        assert np.array_equal(np.unique(split), np.arange(1000))


@pytest.mark.parametrize(("num_samples", "chunk_size"), [(20, 8), (50_000, 1000), (30, 30), (7, 1)])
def test_chunks_are_disjoint_and_cover_every_index(num_samples, chunk_size):
    plan = SamplePlan(num_samples=num_samples, num_classes=1, chunk_size=chunk_size, seed=3)
    chunks = [plan.chunk_indices(c) for c in range(plan.num_chunks)]
    assert np.array_equal(np.concatenate(chunks), np.arange(num_samples))
    assert all(c.dtype == np.int64 and 0 < len(c) <= chunk_size for c in chunks)
    with pytest.raises(IndexError):
        plan.chunk_indices(plan.num_chunks)


def test_last_chunk_is_short():
    plan = SamplePlan(num_samples=20, num_classes=10, chunk_size=8, seed=0)
    assert plan.num_chunks == 3
    assert plan.chunk_indices(2).tolist() == list(range(16, 20))


@pytest.mark.parametrize("world_size", [1, 2, 3, 5, 8])
def test_ranks_partition_the_chunks(world_size):
    plan = SamplePlan(num_samples=50_000, num_classes=1000, chunk_size=1000, seed=0)
    assigned = [list(plan.chunks_for_rank(r, world_size)) for r in range(world_size)]
    flat = sorted(c for chunks in assigned for c in chunks)
    assert flat == list(range(plan.num_chunks))
    for rank, chunks in enumerate(assigned):
        assert chunks == list(range(rank, plan.num_chunks, world_size))


def test_seeds_are_pinned_stable_and_in_range():
    plan = SamplePlan(num_samples=20, num_classes=10, chunk_size=8, seed=0)
    assert [plan.sample_seed(i) for i in range(4)] == SAMPLE_SEEDS_SEED0
    again = SamplePlan(num_samples=20, num_classes=10, chunk_size=8, seed=0)
    assert [again.sample_seed(i) for i in range(20)] == [plan.sample_seed(i) for i in range(20)]
    big = SamplePlan(num_samples=10_000, num_classes=10, chunk_size=100, seed=7)
    seeds = [big.sample_seed(i) for i in range(big.num_samples)]
    chunk_seeds = [big.chunk_seed(c) for c in range(big.num_chunks)]
    assert all(0 <= s < 2**63 for s in seeds + chunk_seeds)
    assert len(set(seeds)) == len(seeds) and len(set(chunk_seeds)) == len(chunk_seeds)
    # SeedSequence zero-pads entropy; the chunk family must not collide with the sample family.
    assert not set(chunk_seeds) & set(seeds)
    assert big.chunk_seed(0) != big.sample_seed(1)


def test_seeds_depend_on_base_seed_not_on_chunking():
    a = SamplePlan(num_samples=20, num_classes=10, chunk_size=8, seed=0)
    b = SamplePlan(num_samples=20, num_classes=10, chunk_size=3, seed=0)
    c = SamplePlan(num_samples=20, num_classes=10, chunk_size=8, seed=1)
    assert [a.sample_seed(i) for i in range(20)] == [b.sample_seed(i) for i in range(20)]
    assert not {a.sample_seed(i) for i in range(20)} & {c.sample_seed(i) for i in range(20)}


def test_seeds_are_identical_in_another_process():
    code = (
        "import json; from ssg_eval.sampling.plan import SamplePlan; "
        "p = SamplePlan(num_samples=100, num_classes=10, chunk_size=8, seed=5); "
        "print(json.dumps([[p.sample_seed(i) for i in range(100)], "
        "[p.chunk_seed(c) for c in range(p.num_chunks)]]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    plan = SamplePlan(num_samples=100, num_classes=10, chunk_size=8, seed=5)
    assert json.loads(out.stdout) == [
        [plan.sample_seed(i) for i in range(100)],
        [plan.chunk_seed(c) for c in range(plan.num_chunks)],
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_samples": 0},
        {"chunk_size": 0},
        {"num_classes": -1},
        {"seed": -1},
        {"num_samples": 2.5},
    ],
)
def test_invalid_plans_are_rejected(kwargs):
    base = {"num_samples": 20, "num_classes": 10, "chunk_size": 8, "seed": 0} | kwargs
    with pytest.raises(ValueError):
        SamplePlan(**base)


def test_out_of_range_queries_raise():
    plan = SamplePlan(num_samples=20, num_classes=10, chunk_size=8, seed=0)
    with pytest.raises(IndexError):
        plan.sample_seed(20)
    with pytest.raises(IndexError):
        plan.labels([0, 20])
    with pytest.raises(ValueError):
        plan.chunks_for_rank(2, 2)


def test_plan_is_frozen_and_shared_by_paired_runs():
    base = plan_from_config(compose_config(["experiment=table1", "guidance=cfg"], "config"))
    ssg = plan_from_config(compose_config(["experiment=table1", "guidance=cfg_ssg"], "config"))
    assert base == ssg
    with pytest.raises(AttributeError):
        base.seed = 1  # type: ignore[misc]
