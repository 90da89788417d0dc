"""Improved precision and recall (k-NN manifolds) as ADM's `ManifoldEstimator` computes them.

Squared distances are blockwise over rows and columns with torch matmuls, optionally with ADM's
float16 distance semantics; pure arithmetic: no file I/O, and the device is an argument.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from ssg_eval.errors import ConfigError
from ssg_eval.features.extract import full_precision
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

DISTANCE_DTYPES = ("float16", "float32")


class _PointSet:
    """Features in row blocks: float32 originals (host) plus the values/norms the mode uses."""

    def __init__(self, features: np.ndarray, mode: str, block_size: int, device: torch.device):
        self.host32 = np.ascontiguousarray(features, dtype=np.float32)
        self.mode, self.block_size, self.device = mode, block_size, device
        self.values: list[torch.Tensor] = []
        self.norms: list[torch.Tensor] = []
        for start in range(0, len(self.host32), block_size):
            block32 = torch.from_numpy(self.host32[start : start + block_size]).to(device)
            if mode == "float16":
                # fp16-rounded values kept in float32 so the matmul needs no per-block cast.
                rounded = block32.to(torch.float16).float()
                # TF: reduce_sum(square(U)) in fp16 -> squares rounded to fp16, fp32 accumulation,
                # norm rounded to fp16.
                squares = rounded.square().to(torch.float16).float()
                self.values.append(rounded)
                self.norms.append(squares.sum(1).to(torch.float16))
            else:
                self.values.append(block32)
                self.norms.append(block32.square().sum(1))

    def __len__(self) -> int:
        return len(self.values)

    def block32(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = index * self.block_size
        block = torch.from_numpy(self.host32[start : start + self.block_size]).to(self.device)
        return block, block.square().sum(1)


def _product(u: torch.Tensor, v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """u·vᵀ accumulated in float32, rounded to `dtype` (u, v: fp16-rounded values in fp16 mode)."""
    return torch.mm(u, v.T).to(dtype)


def _finish(prod: torch.Tensor, nu: torch.Tensor, nv: torch.Tensor) -> torch.Tensor:
    """max(‖u‖² − 2 u·v + ‖v‖², 0) from the rounded product, in place, in the norms' dtype.

    In float16 every op rounds to fp16 as in ADM's TF graph (−2·product, +‖u‖², then +‖v‖²);
    float32 is plain float32. `prod` is (rows of u, rows of v).
    """
    return prod.mul_(-2).add_(nu[:, None]).add_(nv[None, :]).clamp_min_(0)


def _checked(dist: torch.Tensor, rows: _PointSet, i: int, cols: _PointSet, j: int) -> torch.Tensor:
    if dist.dtype == torch.float16 and not bool(torch.isfinite(dist.amax())):
        # ADM: a block with any non-finite fp16 distance is recomputed entirely in float32.
        log.debug("non-finite float16 distances in block (%d, %d); recomputing in float32", i, j)
        (u, nu), (v, nv) = rows.block32(i), cols.block32(j)
        dist = _finish(_product(u, v, torch.float32), nu, nv)
    return dist


def _block(rows: _PointSet, i: int, cols: _PointSet, j: int) -> torch.Tensor:
    """Squared distances of row block i of `rows` to row block j of `cols`."""
    prod = _product(rows.values[i], cols.values[j], rows.norms[i].dtype)
    return _checked(_finish(prod, rows.norms[i], cols.norms[j]), rows, i, cols, j)


def _merge(best: torch.Tensor | None, dist: torch.Tensor, k: int) -> torch.Tensor:
    """Running k+1 smallest entries per row (float32) after seeing one more column block."""
    top = torch.topk(dist, min(k + 1, dist.shape[1]), dim=1, largest=False).values.float()
    if best is not None:
        top = torch.cat([best, top], dim=1)
        top = torch.topk(top, min(k + 1, top.shape[1]), dim=1, largest=False).values
    return top


def _radii(points: _PointSet, k: int, bar: tqdm) -> torch.Tensor:
    """Distance to the k-th nearest other point: (k+1)-th smallest of each row, self included.

    Each off-diagonal product block serves both (i, j) and (j, i): the rounded product is
    transposed, then (j, i) is finished with its own norms in ADM's order, so the distances are
    those of computing block (j, i) directly (up to fp32 accumulation order, which the matmul
    backend decides in any case); this saves ~40% of the matmuls on the large set.
    """
    best: list[torch.Tensor | None] = [None] * len(points)
    dtype = points.norms[0].dtype
    for i in range(len(points)):
        for j in range(i, len(points)):
            prod = _product(points.values[i], points.values[j], dtype)
            if j != i:
                # (rows j, rows i): a new buffer, taken before `prod` is finished in place
                prod_t = prod.T.clone(memory_format=torch.contiguous_format)
                dist_t = _finish(prod_t, points.norms[j], points.norms[i])
                best[j] = _merge(best[j], _checked(dist_t, points, j, points, i), k)
                del prod_t, dist_t
                bar.update(1)
            dist = _finish(prod, points.norms[i], points.norms[j])
            best[i] = _merge(best[i], _checked(dist, points, i, points, j), k)
            bar.update(1)
    return torch.cat([b[:, k] for b in best])


def _compare_dtype(dist: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    # Compare in fp16 when the radii are fp16 values (no float32 fallback happened), avoiding a
    # float32 copy of the block; the result equals the float32 comparison of the same values.
    if dist.dtype == torch.float16 and torch.equal(radii.to(torch.float16).float(), radii):
        return radii.to(torch.float16)
    return radii if dist.dtype == radii.dtype else radii.to(dist.dtype)


def precision_recall(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int = 3,
    block_size: int = 10_000,
    distance_dtype: str = "float16",
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[float, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019) with ADM's exact conventions.

    Argument order is **real (reference) first, generated second**, like ADM's
    `compute_prec_recall(ref_acts, sample_acts)` (torch-fidelity's order is the reverse).
    Each point's ball has radius = squared distance to its k-th nearest other point (the
    (k+1)-th smallest entry of its row, self included); precision = fraction of generated points
    inside at least one real ball (d <= r), recall = fraction of real points inside at least one
    generated ball. Distances are squared Euclidean, blockwise over rows and columns.

    Args:
        real_features: (N_real, D) float features (ADM: 10k reference pool3 features).
        fake_features: (N_fake, D) float features (ADM: 50k sample pool3 features).
        k: neighbourhood size (ADM: 3).
        block_size: rows and columns per distance block (ADM: 10000); also decides which
            blocks fall back to float32 in float16 mode, as in ADM.
        distance_dtype: `float16` (ADM emulation: fp16 features, norms, product and distances;
            a block with a non-finite value is recomputed in float32) or `float32`.
        device: where the matmuls run (`cpu` or `cuda`).
        progress: show a tqdm bar over distance blocks.

    Returns:
        `(precision, recall)` as Python floats in [0, 1].

    Raises:
        ValueError: shapes, non-finite values, fewer than k+1 points, or an unknown dtype.
    """
    if distance_dtype not in DISTANCE_DTYPES:
        raise ConfigError(
            f"metrics.pr_distance_dtype={distance_dtype!r} is not valid; expected one of "
            f"{list(DISTANCE_DTYPES)}"
        )
    if k < 1 or block_size < 1:
        raise ValueError(f"k={k} and block_size={block_size} must be >= 1")
    for name, feats in (("real_features", real_features), ("fake_features", fake_features)):
        if np.ndim(feats) != 2 or len(feats) < k + 1:
            raise ValueError(f"{name} must be (N >= k+1 = {k + 1}, D), got {np.shape(feats)}")
        if not np.isfinite(feats).all():
            raise ValueError(f"{name} contain non-finite values")
    if np.shape(real_features)[1] != np.shape(fake_features)[1]:
        raise ValueError(
            f"feature widths differ: real {np.shape(real_features)}, fake {np.shape(fake_features)}"
        )
    device = torch.device(device)
    real = _PointSet(real_features, distance_dtype, block_size, device)
    fake = _PointSet(fake_features, distance_dtype, block_size, device)
    total = len(real) ** 2 + len(fake) ** 2 + len(real) * len(fake)
    with (
        torch.inference_mode(),
        full_precision(device),
        tqdm(total=total, desc="precision/recall", disable=not progress) as bar,
    ):
        radii_real, radii_fake = _radii(real, k, bar), _radii(fake, k, bar)
        real_in = torch.zeros(len(real_features), dtype=torch.bool, device=device)
        fake_in = torch.zeros(len(fake_features), dtype=torch.bool, device=device)
        for i in range(len(real)):
            rows = slice(i * block_size, (i + 1) * block_size)
            for j in range(len(fake)):
                cols = slice(j * block_size, (j + 1) * block_size)
                dist = _block(real, i, fake, j)  # (real rows, fake cols), as ADM's evaluate_pr
                real_in[rows] |= (dist <= _compare_dtype(dist, radii_fake[cols])[None, :]).any(1)
                fake_in[cols] |= (dist <= _compare_dtype(dist, radii_real[rows])[:, None]).any(0)
                bar.update(1)
    precision = int(fake_in.sum()) / len(fake_features)
    recall = int(real_in.sum()) / len(real_features)
    return precision, recall


def precision_membership(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    k: int = 3,
    block_size: int = 10_000,
    distance_dtype: str = "float16",
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Per generated sample: inside at least one real k-NN ball, with `precision_recall`'s exact
    semantics (its mean is the precision); costs the real radii and the real × fake blocks only.

    Args:
        real_features, fake_features, k, block_size, distance_dtype, device: as
            `precision_recall` (real first).

    Returns:
        (N_fake,) bool.
    """
    if distance_dtype not in DISTANCE_DTYPES or k < 1 or block_size < 1:
        raise ValueError(f"invalid k={k}, block_size={block_size} or dtype {distance_dtype!r}")
    if np.shape(real_features)[1] != np.shape(fake_features)[1] or len(real_features) <= k:
        raise ValueError(
            f"need (N_real > k, D) and (N_fake, D), got {np.shape(real_features)}, "
            f"{np.shape(fake_features)}"
        )
    device = torch.device(device)
    real = _PointSet(real_features, distance_dtype, block_size, device)
    fake = _PointSet(fake_features, distance_dtype, block_size, device)
    fake_in = torch.zeros(len(fake_features), dtype=torch.bool, device=device)
    with torch.inference_mode(), full_precision(device):
        radii_real = _radii(real, k, tqdm(disable=True))
        for i in range(len(real)):
            rows = slice(i * block_size, (i + 1) * block_size)
            for j in range(len(fake)):
                cols = slice(j * block_size, (j + 1) * block_size)
                dist = _block(real, i, fake, j)
                fake_in[cols] |= (dist <= _compare_dtype(dist, radii_real[rows])[:, None]).any(0)
    return fake_in.cpu().numpy()
