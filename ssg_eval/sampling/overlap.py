"""Chunks out of the sampler in order, with decode and host transfer overlapped on CUDA.

`decoded_chunks` yields every chunk's uint8 images (and, given feature networks, their features)
in chunk order. On CUDA with `runtime.overlap_decode`, chunk i's f̂, VQVAE decode, on-device
quantisation (`quantize_on_device`), Inception passes and the copy into a pinned host buffer run
on a side stream, after chunk i's tokens (stream wait), while the default stream samples chunk
i+1: the same kernels on the same inputs and shapes as the serial path, so the same bytes. On CPU
it is the serial path, unchanged: `generate_chunk`, then the extraction. It must not write files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ssg_eval.sampling.generate import ChunkTokens, chunk_tokens, decode_groups, generate_chunk
from ssg_eval.sampling.plan import SamplePlan
from ssg_eval.sampling.shards import quantize_on_device

__all__ = ["DecodedChunk", "decoded_chunks"]


@dataclass
class DecodedChunk:
    """One chunk's result: its uint8 images on the host and, with feature networks, features."""

    chunk: int
    images: np.ndarray  # (n, H, W, 3) uint8
    features: dict[str, dict[str, np.ndarray]] | None = None


def decoded_chunks(
    model: Any,
    cfg: Any,
    plan: SamplePlan,
    chunks: Iterable[int],
    device: torch.device,
    nets: Any = None,
    overlap: bool | None = None,
) -> Iterator[DecodedChunk]:
    """Generate `chunks` in order; with `nets` (`FeatureNets`) also their per-shard features.

    Args:
        model: the rank's `SamplingModel`.
        cfg: the composed config (`runtime.overlap_decode` switches the CUDA overlap).
        plan: the run's plan.
        chunks: chunk numbers, in the order they are generated and yielded.
        device: the sampling device.
        nets: feature networks (features while sampling), or None.
        overlap: None: on CUDA when `runtime.overlap_decode`; True: the overlapped code path
            on any device (on CPU without streams: tests and the CPU device check run it).

    Yields:
        `DecodedChunk` per chunk, in the order of `chunks`.
    """
    if overlap is None:
        overlap = device.type == "cuda" and bool(cfg.runtime.get("overlap_decode", True))
    if not overlap:
        for chunk in chunks:
            images = generate_chunk(model, cfg, plan, chunk, device)
            yield DecodedChunk(chunk, images, None if nets is None else nets.extract(images))
        return
    side = _SideStream(device, plan.chunk_size, nets)
    pending = None
    for chunk in chunks:
        sampled = chunk_tokens(model, cfg, plan, chunk, device)  # default stream
        if pending is not None:  # chunk i-1 was decoded while chunk i's tokens were sampled
            yield side.finish(pending)
        pending = side.launch(model, cfg, chunk, sampled)
    if pending is not None:
        yield side.finish(pending)


@dataclass
class _Pending:
    chunk: int
    event: Any  # torch.cuda.Event recorded after the last side-stream op of the chunk
    host: torch.Tensor  # pinned uint8 (n, H, W, 3), filled by a non-blocking copy
    finite: torch.Tensor  # device flag: every decoded value was finite
    launched: list | None  # Inception outputs on the device (features while sampling)


class _SideStream:
    """The CUDA side stream, two pinned host buffers (alternating) and the launch/finish pair.

    Off CUDA the same code runs in order without streams, events or pinned memory.
    """

    def __init__(self, device: torch.device, chunk_size: int, nets: Any) -> None:
        self.device, self.chunk_size = device, chunk_size
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.nets = nets if nets is not None and nets.device == device else None
        self.cpu_nets = nets if self.nets is None else None  # features on another device
        self.buffers: list[torch.Tensor | None] = [None, None]
        self.count = 0

    def _buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        slot = self.count % 2
        self.count += 1
        held = self.buffers[slot]
        if held is None or tuple(held.shape[1:]) != shape[1:]:
            held = torch.empty((self.chunk_size, *shape[1:]), dtype=torch.uint8,
                               pin_memory=self.cuda)  # fmt: skip
            self.buffers[slot] = held
        return held[: shape[0]]

    def launch(self, model: Any, cfg: Any, chunk: int, sampled: ChunkTokens) -> _Pending:
        """Queue chunk `chunk`'s decode, uint8, Inception and host copy on the side stream."""
        if self.cuda:
            self.stream.wait_stream(torch.cuda.current_stream(self.device))  # tokens are ready
            for tensor in [*sampled.tokens, *(sampled.embeddings or [])]:
                tensor.record_stream(self.stream)  # not reused by the default stream meanwhile
        rounding = str(cfg.sampler.uint8_rounding)
        context = torch.cuda.stream(self.stream) if self.cuda else contextlib.nullcontext()
        with context, torch.inference_mode():
            parts, flags = [], []
            for images_B3HW in decode_groups(model, cfg, sampled):
                images_BHW3, finite = quantize_on_device(images_B3HW, rounding)
                parts.append(images_BHW3)
                flags.append(finite)
            images_NHWC = torch.cat(parts)
            launched = None if self.nets is None else self.nets.launch(images_NHWC)
            host = self._buffer(tuple(images_NHWC.shape))
            host.copy_(images_NHWC, non_blocking=True)  # one byte per value, pinned
            finite_all = torch.stack(flags).all()
            event = torch.cuda.Event() if self.cuda else None
            if event is not None:
                event.record(self.stream)
        return _Pending(chunk, event, host, finite_all, launched)

    def finish(self, pending: _Pending) -> DecodedChunk:
        """Wait for the chunk's side-stream work and hand over host images (a copy) + features.

        Raises:
            ValueError: a decoded value was NaN or inf (as `to_uint8` would raise).
        """
        if pending.event is not None:
            pending.event.synchronize()
        if not bool(pending.finite):
            raise ValueError(
                f"chunk {pending.chunk}: image values are NaN or inf; refusing to quantize (check "
                "runtime.autocast_dtype / runtime.decode_dtype or the checkpoint)"
            )
        images = pending.host.numpy().copy()  # the pinned buffer is reused two chunks later
        if self.nets is not None:
            features = self.nets.finish(pending.launched, images)
        else:
            features = None if self.cpu_nets is None else self.cpu_nets.extract(images)
        return DecodedChunk(pending.chunk, images, features)
