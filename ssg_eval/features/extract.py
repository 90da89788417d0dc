"""Stream uint8 NHWC images through the Inception wrapper in fixed-size batches -> feature arrays.

Results never depend on how the caller chunks its input (the stream is re-batched to exactly
`batch_size`); this module must not compute statistics or metrics, and it never writes files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ssg_eval.errors import InputFileError
from ssg_eval.features import FEATURE_DIMS, FEATURE_KEYS
from ssg_eval.runs.npz import open_npz_array


def validate_images(images: np.ndarray, where: str = "images") -> None:
    """Raise ValueError unless `images` is uint8 (n, H, W, 3).

    Args:
        images: the array to check.
        where: name used in the message (file and key, or "batch 3").
    """
    if not isinstance(images, np.ndarray):
        raise ValueError(f"{where}: expected a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating) and np.isnan(images).any():
            raise ValueError(
                f"{where}: contains NaN (dtype {images.dtype}); images must be uint8 in [0, 255]; "
                "range-check and convert samples with ssg_eval.sampling.shards.to_uint8"
            )
        raise ValueError(
            f"{where}: dtype {images.dtype}, expected uint8 in [0, 255] (convert with "
            "ssg_eval.sampling.shards.to_uint8)"
        )
    if images.ndim != 4 or images.shape[-1] != 3:
        nchw = images.ndim == 4 and images.shape[1] == 3
        hint = " (looks NCHW; transpose to NHWC)" if nchw else ""
        raise ValueError(f"{where}: shape {images.shape}, expected (n, H, W, 3) NHWC{hint}")


def rebatch(arrays: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Regroup a stream of (n_i, H, W, 3) arrays into fresh (batch_size, H, W, 3) arrays.

    Only the last batch may be shorter. Every yielded array is a new writable copy, so callers may
    pass read-only memory maps; memory stays at one batch plus the caller's current chunk.

    Raises:
        ValueError: an array is not uint8 NHWC, or the image size changes within the stream.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    buffer: np.ndarray | None = None
    fill = 0
    for index, array in enumerate(arrays):
        validate_images(array, where=f"input chunk {index}")
        if buffer is None:
            buffer = np.empty((batch_size, *array.shape[1:]), dtype=np.uint8)
        elif array.shape[1:] != buffer.shape[1:]:
            raise ValueError(
                f"input chunk {index}: image shape {array.shape[1:]} differs from the stream's "
                f"{buffer.shape[1:]}; all images of one stream must share H and W"
            )
        start = 0
        while start < len(array):
            take = min(batch_size - fill, len(array) - start)
            buffer[fill : fill + take] = array[start : start + take]
            fill += take
            start += take
            if fill == batch_size:
                yield buffer
                buffer = np.empty_like(buffer)
                fill = 0
    if buffer is not None and fill:
        yield buffer[:fill]


@contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Scoped float32 for the feature networks: autocast off, TF32 and cuDNN autotuning off.

    cuDNN allows TF32 convolutions by default, which moves Inception features by ~1e-3; the ADM
    protocol needs full float32. An enclosing autocast region (the sampler's bf16/fp16 runtime,
    when features are extracted while sampling) is switched off, and cuDNN's algorithm choice is
    torch's default (no `benchmark` autotuning), so features are the same inside the sampler and
    in the features stage. Never changes the settings outside the block.
    """
    with torch.autocast(device.type, enabled=False):
        if device.type != "cuda":
            yield
            return
        cudnn = torch.backends.cudnn
        saved = (cudnn.allow_tf32, torch.get_float32_matmul_precision(), cudnn.benchmark)
        cudnn.allow_tf32, cudnn.benchmark = False, False
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            cudnn.allow_tf32, cudnn.benchmark = saved[0], saved[2]
            torch.set_float32_matmul_precision(saved[1])


CPU_BATCH_SIZE = 32  # best CPU throughput measured in benchmarks/bench_features.py (16-64 flat)
CUDA_BATCH_SIZE = 256


def device_batch_size(device: torch.device | str) -> int:
    """Forward batch for `metrics.feature_batch_size=null`: what the device runs fastest.

    CPU: 32 (oneDNN throughput is flat from 16 to 64 on the 2-core host; activations ~20 MB per
    image). CUDA: 256 (fills an H100/H200-class GPU; ~5 GB of activations). Features depend on
    the batch only through float rounding (~1e-6 relative, tested).
    """
    return CUDA_BATCH_SIZE if torch.device(device).type == "cuda" else CPU_BATCH_SIZE


def device_key(device: torch.device | str) -> str:
    """The device kind of a forward pass, as a file-name part: `cpu`, or `cuda-<GPU model>`.

    Two GPU models (or a GPU and the CPU) round the same network differently, so features are
    cached under a name that carries this key, and features of two device kinds are never mixed
    (the GPU model is lower-cased, runs of other characters become `_`).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    name = re.sub(r"[^a-z0-9]+", "_", torch.cuda.get_device_name(device).lower()).strip("_")
    return f"cuda-{name}"


def extract_features(
    batches: Iterable[np.ndarray],
    model: nn.Module,
    *,
    batch_size: int | None,
    device: torch.device | str,
    progress: bool = True,
    num_images: int | None = None,
) -> dict[str, np.ndarray]:
    """Inception features of every image in the stream, in stream order.

    Memory: one input batch plus the output arrays. With `num_images` the outputs are allocated
    once and filled in place (no list of parts, no final concatenation), so peak memory is the
    features themselves plus a constant: flat in N.

    Args:
        batches: iterable of uint8 (n, H, W, 3) arrays in [0, 255]; any chunking.
        model: `build_inception(...)` output (or any module mapping uint8 (B, 3, H, W) to the
            dict `pool`/`spatial`/`logits`), already on `device`.
        batch_size: forward batch (ADM: 64); None = `device_batch_size(device)`. Fixed so
            features never depend on the caller's chunking.
        device: where the forward pass runs.
        progress: show a tqdm bar.
        num_images: the stream's length when known (preallocates the outputs); a stream of
            another length raises.

    Returns:
        `pool` (N, 2048), `spatial` (N, 2023), `logits` (N, 1008), float32.

    Raises:
        ValueError: bad input (dtype, layout, NaN, changing size), an empty stream, or a stream
            whose length differs from `num_images`.
    """
    device = torch.device(device)
    batch_size = device_batch_size(device) if batch_size is None else int(batch_size)
    model.eval()
    sink = _FeatureSink(num_images)
    bar = tqdm(unit="img", desc="inception", disable=not progress)
    with torch.inference_mode(), full_precision(device), bar:
        for batch_NHWC in rebatch(batches, batch_size):
            # A (B, 3, H, W) view of the NHWC batch: no layout copy (the model reads NHWC).
            images_BCHW = torch.from_numpy(batch_NHWC).to(device).permute(0, 3, 1, 2)
            out = model(images_BCHW)
            sink.add({key: out[key].detach().to("cpu", torch.float32) for key in FEATURE_KEYS})
            bar.update(len(batch_NHWC))
    return _checked(sink.result())


def extract_chunk_features(
    images_NHWC: np.ndarray | torch.Tensor,
    model: nn.Module,
    *,
    batch_size: int,
    device: torch.device | str,
) -> dict[str, np.ndarray]:
    """Inception features of one chunk (a shard's images) in forward batches from its first image.

    The same batches as `extract_features([images], ...)`; a device tensor (the sampler's decoded
    uint8 images) is fed without a host round trip, so the features equal those of the same
    bytes read back from the shard, bit for bit, at the same batch size, device and threads.

    Args:
        images_NHWC: uint8 (n, H, W, 3), host array or tensor (on `device` or the host).
        model: `build_inception(...)` output on `device`.
        batch_size: the forward batch (`metrics.feature_batch_size` or the device's choice).
        device: where the forward pass runs.

    Returns:
        `pool` (n, 2048), `spatial` (n, 2023), `logits` (n, 1008), float32 host arrays.
    """
    if isinstance(images_NHWC, np.ndarray):
        validate_images(images_NHWC)
        return extract_features([images_NHWC], model, batch_size=batch_size, device=device,
                                progress=False, num_images=len(images_NHWC))  # fmt: skip
    return collect_features(launch_chunk_features(images_NHWC, model, batch_size=batch_size,
                                                  device=device))  # fmt: skip


def launch_chunk_features(
    images_NHWC: torch.Tensor, model: nn.Module, *, batch_size: int, device: torch.device | str
) -> list[dict[str, torch.Tensor]]:
    """Queue the forward passes of one chunk held as a uint8 NHWC tensor; no host sync.

    On CUDA the outputs stay on the device (the caller may run this on a side stream and
    collect after its event); `collect_features` brings them to the host.

    Returns:
        Per forward batch, `{pool, spatial, logits}` float32 tensors on `device`.
    """
    device = torch.device(device)
    if images_NHWC.dtype != torch.uint8 or images_NHWC.dim() != 4 or images_NHWC.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (n, H, W, 3); got {images_NHWC.dtype} "
                         f"{tuple(images_NHWC.shape)}")  # fmt: skip
    model.eval()
    parts = []
    with torch.inference_mode(), full_precision(device):
        for start in range(0, len(images_NHWC), batch_size):
            batch_NHWC = images_NHWC[start : start + batch_size].to(device).contiguous()
            out = model(batch_NHWC.permute(0, 3, 1, 2))  # NHWC read through a permuted view
            parts.append({key: out[key].detach().float() for key in FEATURE_KEYS})
    return parts


def collect_features(parts: list[dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """Host float32 arrays of `launch_chunk_features`' outputs, checked finite."""
    if not parts:
        raise ValueError("extract_features got no images (empty input stream)")
    return _checked({key: torch.cat([p[key].cpu() for p in parts]).numpy() for key in FEATURE_KEYS})


def _checked(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for key, value in features.items():
        if not np.isfinite(value).all():
            raise InputFileError(
                f"Inception produced non-finite {key} features: the weights file is damaged or "
                "not Inception's; check metrics.inception_weights"
            )
    return features


class _FeatureSink:
    """Collects per-batch features: into preallocated arrays when N is known, else into parts."""

    def __init__(self, num_images: int | None) -> None:
        self.num_images = num_images
        self.filled = 0
        self.parts: dict[str, list[np.ndarray]] = {key: [] for key in FEATURE_KEYS}
        self.arrays: dict[str, np.ndarray] | None = None
        if num_images is not None:
            self.arrays = {
                key: np.empty((num_images, FEATURE_DIMS[key]), np.float32) for key in FEATURE_KEYS
            }

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        rows = batch["pool"].shape[0]
        for key, value in batch.items():
            assert value.shape == (rows, FEATURE_DIMS[key]), (key, value.shape)
        if self.arrays is None:
            for key, value in batch.items():
                self.parts[key].append(value.numpy())
        else:
            if self.filled + rows > self.num_images:
                raise ValueError(
                    f"extract_features: the stream has more than num_images={self.num_images} "
                    "images"
                )
            for key, value in batch.items():
                self.arrays[key][self.filled : self.filled + rows] = value.numpy()
        self.filled += rows

    def result(self) -> dict[str, np.ndarray]:
        if self.filled == 0:
            raise ValueError("extract_features got no images (empty input stream)")
        if self.arrays is not None:
            if self.filled != self.num_images:
                raise ValueError(
                    f"extract_features: the stream had {self.filled} images, expected "
                    f"num_images={self.num_images}"
                )
            return self.arrays
        return {key: np.concatenate(chunks, axis=0) for key, chunks in self.parts.items()}


def iter_npz_images(path: str | Path, batch: int, key: str = "arr_0") -> Iterator[np.ndarray]:
    """Stream `arr_0` of an ADM-format npz in chunks of `batch` images (memory-mapped if possible).

    Args:
        path: npz holding `key` as uint8 (N, H, W, 3).
        batch: images per yielded chunk (> 0); the last one may be shorter.
        key: member name.

    Yields:
        Read-only uint8 (n, H, W, 3) views (`extract_features` copies them into its batches).

    Raises:
        InputFileError: the member is not uint8 NHWC with 3 channels (names the file).
    """
    if batch < 1:
        raise ValueError(f"batch={batch} must be >= 1")
    images = open_npz_array(path, key)
    try:
        validate_images(images[:0], where=f"{path}:{key}")
    except ValueError as err:  # the file is the user's: say so
        raise InputFileError(str(err)) from None
    for start in range(0, len(images), batch):
        yield images[start : start + batch]
