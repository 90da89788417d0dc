"""The sample plan: which label and which seed every sample index gets, and how indices form chunks.

This module is pure arithmetic on integers (numbers in, numbers out); it must not create torch
generators, read the environment or touch files, so the plan is identical on every rank and host.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SamplePlan", "plan_from_config"]

# The seeds are < 2**63 so that they fit a signed 64-bit integer wherever they are stored.
_SEED_BITS = 63


def _seed_from(sequence: np.random.SeedSequence) -> int:
    # One 64-bit word from the SeedSequence, top bit dropped: a non-negative int < 2**63.
    return int(sequence.generate_state(1, dtype=np.uint64)[0]) >> (64 - _SEED_BITS)


@dataclass(frozen=True)
class SamplePlan:
    """Labels, seeds and chunking of `num_samples` samples, as pure functions of the index.

    Labels are `index % num_classes`: balanced whenever `num_samples` is a multiple of
    `num_classes`, and every run of `num_classes` consecutive indices (so every consecutive
    5,000-sample IS split when `num_classes` divides 5,000) covers every class once.

    Seeds (both are non-negative ints < 2**63):
    - `sample_seed(i)` = first 64-bit word of `SeedSequence([seed, i])`, shifted right by one bit;
      one generator per sample (rng=per_sample), so images do not depend on batch size, chunking
      or world size.
    - `chunk_seed(c)` = the same rule on `SeedSequence([seed, c], spawn_key=(1,))`; one generator
      per chunk (rng=official, VAR's per-batch stream). The spawn key keeps the two families
      disjoint: numpy zero-pads the entropy, so e.g. `SeedSequence([seed, 1, 0])` would equal
      `SeedSequence([seed, 1])` (the seed of sample 1), whereas a spawn key is mixed in after the
      padded entropy and cannot collide with a plain `[seed, i]`.

    - `reference_labels(indices)`: ICG's random class of each sample, the same rule on
      `SeedSequence([seed, i], spawn_key=(2,))` modulo `num_classes`; a pure function of the index,
      so it does not depend on batch size, chunking or world size either.

    Attributes:
        num_samples: N, the number of samples (indices 0..N-1).
        num_classes: number of class labels.
        chunk_size: samples per chunk (one shard file each); the last chunk may be shorter.
        seed: the run's base seed (>= 0).
        label_list: explicit labels of samples 0..N-1 (official calls, `sampler.official_labels`;
            -1 = the null class `num_classes`); None = `index % num_classes`.
    """

    num_samples: int
    num_classes: int
    chunk_size: int
    seed: int
    label_list: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("num_samples", "num_classes", "chunk_size"):
            value = getattr(self, name)
            if int(value) != value or value <= 0:
                raise ValueError(f"SamplePlan.{name}={value!r} must be a positive integer")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(
                f"sampler.seed={self.seed!r} must be a non-negative integer (numpy SeedSequence)"
            )
        if self.label_list is not None and len(self.label_list) != self.num_samples:
            raise ValueError(
                f"sampler.official_labels has {len(self.label_list)} labels for "
                f"sampler.num_samples={self.num_samples}"
            )

    @property
    def num_chunks(self) -> int:
        """Number of chunks, ceil(num_samples / chunk_size)."""
        return -(-self.num_samples // self.chunk_size)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample index {index} outside [0, {self.num_samples})")

    def _check_chunk(self, chunk: int) -> None:
        if not 0 <= chunk < self.num_chunks:
            raise IndexError(f"chunk {chunk} outside [0, {self.num_chunks})")

    def label_of(self, index: int) -> int:
        """Class label of sample `index`: `index % num_classes` (or `label_list[index]`)."""
        self._check_index(index)
        return int(self.labels([index])[0])

    def labels(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """Labels of many indices.

        Args:
            indices: sample indices in [0, num_samples).

        Returns:
            int64 array of the same length, `indices % num_classes` (or the `label_list` entries,
            -1 mapped to the null class `num_classes`).
        """
        idx = self._indices(indices)
        if self.label_list is not None:
            listed = np.asarray(self.label_list, dtype=np.int64)
            return np.where(listed < 0, self.num_classes, listed)[idx]
        return idx % self.num_classes

    def reference_labels(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """ICG's random reference class of each index (int64 in [0, num_classes)).

        The first word of `SeedSequence([seed, i], spawn_key=(2,))` (>> 1) modulo `num_classes`:
        uniform up to a bias below 2**-53, and disjoint from the sample and chunk seeds.
        """
        idx = self._indices(indices)
        words = [
            _seed_from(np.random.SeedSequence([int(self.seed), int(i)], spawn_key=(2,)))
            for i in idx
        ]
        return np.asarray([w % self.num_classes for w in words], dtype=np.int64)

    def _indices(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        values = indices if hasattr(indices, "__len__") else list(indices)
        idx = np.asarray(values, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_samples):
            raise IndexError(f"sample indices outside [0, {self.num_samples})")
        return idx

    def chunk_indices(self, chunk: int) -> np.ndarray:
        """Sample indices of `chunk`: `[chunk·chunk_size, min((chunk+1)·chunk_size, N))`, int64."""
        self._check_chunk(chunk)
        start = chunk * self.chunk_size
        return np.arange(start, min(start + self.chunk_size, self.num_samples), dtype=np.int64)

    def sample_seed(self, index: int) -> int:
        """Seed of sample `index` (rng=per_sample), from `SeedSequence([seed, index])`."""
        self._check_index(index)
        return _seed_from(np.random.SeedSequence([int(self.seed), int(index)]))

    def chunk_seed(self, chunk: int) -> int:
        """Seed of chunk `chunk` (rng=official): `SeedSequence([seed, chunk], spawn_key=(1,))`."""
        self._check_chunk(chunk)
        return _seed_from(np.random.SeedSequence([int(self.seed), int(chunk)], spawn_key=(1,)))

    def chunks_for_rank(self, rank: int, world_size: int) -> range:
        """Chunks handled by `rank` of `world_size`: `range(rank, num_chunks, world_size)`."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        return range(rank, self.num_chunks, world_size)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description of the plan and its rules (for the manifest)."""
        return {
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "chunk_size": self.chunk_size,
            "num_chunks": self.num_chunks,
            "seed": self.seed,
            "label_rule": "index % num_classes" if self.label_list is None else "label_list",
            "sample_seed_rule": "SeedSequence([seed, index]).generate_state(1, uint64)[0] >> 1",
            "chunk_seed_rule": (
                "SeedSequence([seed, chunk], spawn_key=(1,)).generate_state(1, uint64)[0] >> 1"
            ),
            "reference_label_rule": (
                "(SeedSequence([seed, index], spawn_key=(2,)).generate_state(1, uint64)[0] >> 1)"
                " % num_classes"
            ),
        }


def plan_from_config(cfg: Any) -> SamplePlan:
    """The plan of a composed config (`sampler.*` and `model.num_classes`)."""
    listed = cfg.sampler.official_labels
    return SamplePlan(
        num_samples=int(cfg.sampler.num_samples),
        num_classes=int(cfg.model.num_classes),
        chunk_size=int(cfg.sampler.chunk_size),
        seed=int(cfg.sampler.seed),
        label_list=None if listed is None else tuple(int(c) for c in listed),
    )
