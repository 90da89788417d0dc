"""Build torch-fidelity's `inception-v3-compat` feature extractor from a local weights file.

It resolves and checks the weights (never downloads), records their sha256, adds the sFID tap
and prepares the fast CPU/GPU path (BatchNorm folded into the convolutions, channels-last, fused
uint8 resize); it must not change the network's layers or their order, only how they are run.
It runs slightly past 300 lines because weight resolution and the fast path share one walk over
torch-fidelity's layers; splitting them would define that walk twice.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d, FeatureExtractorInceptionV3

from ssg_eval.errors import ConfigError, InputFileError, UnreadableFileError
from ssg_eval.features.preprocess import INCEPTION_SIZE, uint8_to_inception_input
from ssg_eval.features.spatial import SpatialTap
from ssg_eval.runs.io import atomic_write_bytes
from ssg_eval.utils.hashing import sha256_file
from ssg_eval.utils.logging import get_logger

log = get_logger(__name__)

EXTRACTOR_NAME = "inception-v3-compat"
WEIGHTS_FILE_NAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"  # torch.hub naming: file-<sha256 prefix>.pth
WEIGHTS_ENV = "SSG_EVAL_INCEPTION"
WEIGHTS_KEY = "metrics.inception_weights"
TORCH_FIDELITY_LAYERS = ["2048", "logits_unbiased"]  # pool3 and IS logits (fc without bias)
INCEPTION_IMPLS = ("fast", "torch_fidelity")  # metrics.inception_impl
# torch-fidelity's forward up to pool3, layer by layer (its `forward` runs exactly these).
TRUNK_LAYERS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
    "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
)  # fmt: skip


def torch_fidelity_cache_path() -> Path:
    """Where torch-fidelity caches its download: `$TORCH_HOME/hub/checkpoints/<file>`."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE_NAME


def resolve_inception_weights(weights_path: str | os.PathLike | None) -> Path:
    """Find the Inception weights: configured path, else `$SSG_EVAL_INCEPTION`, else the cache.

    Args:
        weights_path: `metrics.inception_weights`; None means "use the env var or the cache".

    Returns:
        The existing weights file.

    Raises:
        FileNotFoundError: one message naming every place that was checked and how to fix it.
    """
    checked: list[str] = []
    if weights_path is None and os.environ.get(WEIGHTS_ENV):
        weights_path = os.environ[WEIGHTS_ENV]
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if path.is_file():
            return path
        checked.append(f"{WEIGHTS_KEY}={str(weights_path)!r} (no such file)")
    else:
        cache = torch_fidelity_cache_path()
        if cache.is_file():
            return cache
        checked.append(f"{WEIGHTS_KEY}=null and ${WEIGHTS_ENV} unset")
        checked.append(f"torch-fidelity cache {cache} (no such file)")
    raise FileNotFoundError(
        f"Inception weights {WEIGHTS_FILE_NAME} not found; checked: {'; '.join(checked)}. "
        f"Nothing is downloaded at run time: copy the file (torch-fidelity v0.2.0 release asset "
        f"{WEIGHTS_FILE_NAME}) to a local path and set {WEIGHTS_KEY}=<path> or "
        f"{WEIGHTS_ENV}=<path>, or place it at {torch_fidelity_cache_path()}"
    )


def inception_weights_sha256(weights_path: str | os.PathLike | None) -> str:
    """Hex sha256 of the resolved weights file (memoised on path, size and mtime).

    Raises:
        FileNotFoundError: as `resolve_inception_weights`.
    """
    return sha256_file(resolve_inception_weights(weights_path))


class _Skeleton(FeatureExtractorInceptionV3):
    """torch-fidelity's class with weight loading disabled, used only to read its key layout."""

    def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: D102
        return None


def inception_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key -> (shape, dtype) of torch-fidelity's Inception state dict, built on the meta device.

    The real class always loads weights in `__init__`; a private subclass skips that load and
    the meta device allocates nothing, so no global torch state is touched.
    """
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        skeleton = _Skeleton(EXTRACTOR_NAME, ["2048"], feature_extractor_weights_path=empty)
    return {k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()}


def make_random_inception_weights(path: str | os.PathLike, seed: int = 0) -> str:
    """Write a random-weight state dict in torch-fidelity's exact key layout (tests, smoke runs).

    He-normal convolutions, BatchNorm with positive running variances near 1 and a small fc
    layer keep every activation finite and the logits moderate (IS well defined). The file loads
    strictly via `FeatureExtractorInceptionV3(..., feature_extractor_weights_path=path)`.

    Args:
        path: destination `.pth` (written atomically).
        seed: generator seed; the same seed gives byte-identical tensors.

    Returns:
        The hex sha256 of the written file.
    """
    gen = torch.Generator().manual_seed(int(seed))
    state: dict[str, torch.Tensor] = {}
    for key, (shape, dtype) in inception_layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=dtype)
        elif key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight"):
            state[key] = 0.8 + 0.4 * torch.rand(shape, generator=gen)
        elif key.endswith("bn.bias") or key.endswith("bn.running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith("bn.running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)  # in [0.5, 1.5): positive
        elif key == "fc.weight":
            state[key] = torch.randn(shape, generator=gen) * (4.0 / shape[1]) ** 0.5
        elif key == "fc.bias":
            state[key] = 0.1 * torch.randn(shape, generator=gen)
        else:
            raise RuntimeError(f"unexpected key {key} in torch-fidelity's Inception layout")
    buffer = (
        io.BytesIO()
    )  # not the file name: torch.save embeds it, the bytes must not depend on it
    torch.save(state, buffer)
    return sha256_file(atomic_write_bytes(path, buffer.getvalue()))


def check_inception_state_dict(path: Path) -> None:
    """Raise unless `path` is a loadable state dict with torch-fidelity's keys and shapes.

    Raises:
        UnreadableFileError: torch cannot load the file (truncated, not a state dict).
        InputFileError: the keys or shapes are not torch-fidelity's Inception layout.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise UnreadableFileError(
            f"Inception weights {path} are not a loadable torch state dict "
            f"({type(err).__name__}: {err}); a truncated download fails this way. Replace the file "
            f"with a complete copy of {WEIGHTS_FILE_NAME} ({WEIGHTS_KEY} / ${WEIGHTS_ENV})"
        ) from err
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise InputFileError(f"Inception weights {path} do not hold a state dict of tensors")
    layout = inception_layout()
    missing = [k for k in layout if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in layout]
    if missing or unexpected:
        raise InputFileError(
            f"Inception weights {path} do not match torch-fidelity's {EXTRACTOR_NAME} layout: "
            f"first missing keys {missing[:5]}, first unexpected keys {unexpected[:5]}"
        )
    for key, (shape, _) in layout.items():
        if key in state and tuple(state[key].shape) != shape:
            raise InputFileError(
                f"Inception weights {path}: {key} has shape {tuple(state[key].shape)}, "
                f"expected {shape}"
            )


def fold_batch_norms(network: nn.Module) -> int:
    """Fold every `BasicConv2d`'s eval-mode BatchNorm into its convolution, in place.

    `conv(x, w) * s + (beta - mean * s)` with `s = gamma / sqrt(var + eps)` equals the original
    `bn(conv(x))` in exact arithmetic; the folded weights are computed in float64 and rounded
    once to float32, which moves features by ~1e-6 relative (measured in the benchmark, tested
    to <= 1e-5). The ReLU stays in `BasicConv2d.forward`, so forward hooks see the same output.

    Returns:
        The number of folded blocks (94 for Inception-v3).
    """
    folded = 0
    for block in network.modules():
        if not isinstance(block, BasicConv2d) or isinstance(block.bn, nn.Identity):
            continue
        conv, bn = block.conv, block.bn
        weight, bias = fuse_conv_bn_weights(
            conv.weight.double(), None, bn.running_mean.double(), bn.running_var.double(),
            bn.eps, bn.weight.double(), bn.bias.double(),
        )  # fmt: skip
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                          stride=conv.stride, padding=conv.padding, bias=True)  # fmt: skip
        fused.weight = nn.Parameter(weight.detach().to(conv.weight), requires_grad=False)
        fused.bias = nn.Parameter(bias.detach().to(conv.weight), requires_grad=False)
        block.conv, block.bn = fused, nn.Identity()
        folded += 1
    return folded


class InceptionFeatures(nn.Module):
    """torch-fidelity Inception plus the sFID tap; one forward pass gives all three features.

    Attributes:
        network: the wrapped `FeatureExtractorInceptionV3` (layers `2048`, `logits_unbiased`);
            with `impl="fast"` its BatchNorms are folded and its weights are channels-last.
        impl: `fast` (fused uint8 resize, then the network's layers in its order, channels-last)
            or `torch_fidelity` (the network's own `forward`, unchanged).
        weights_path: resolved weights file.
        weights_sha256: hex sha256 of that file.
    """

    def __init__(
        self,
        network: FeatureExtractorInceptionV3,
        weights_path: Path,
        sha256: str,
        impl: str = "fast",
    ):
        super().__init__()
        if impl not in INCEPTION_IMPLS:
            raise ConfigError(
                f"metrics.inception_impl={impl!r} is not valid; expected one of {INCEPTION_IMPLS}"
            )
        self.network = network
        self.impl = impl
        self.weights_path = weights_path
        self.weights_sha256 = sha256
        if impl == "fast":
            fold_batch_norms(network)
            network.to(memory_format=torch.channels_last)
        self._tap = SpatialTap(network)

    def forward(self, images_BCHW: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of one batch.

        Args:
            images_BCHW: (B, 3, H, W) uint8 on the model's device; any H, W (resized to 299).
                Any strides: a `permute(0, 3, 1, 2)` view of NHWC images is read without a copy.

        Returns:
            `pool` (B, 2048), `logits` (B, 1008, unbiased), `spatial` (B, 2023), all float32.
        """
        with self._tap.capture() as spatial:
            if self.impl == "fast":
                pool, logits = self._fast_forward(images_BCHW)
            else:
                pool, logits = self.network(images_BCHW)
        return {"pool": pool, "logits": logits, "spatial": spatial[0]}

    def _fast_forward(self, images_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.network
        x = uint8_to_inception_input(images_BCHW.permute(0, 2, 3, 1), INCEPTION_SIZE)
        for name in TRUNK_LAYERS:
            x = getattr(net, name)(x)
        pool_BD = torch.flatten(x, 1)  # (B, 2048)
        return pool_BD, pool_BD.mm(net.fc.weight.T)  # logits_unbiased: fc without its bias


def build_inception(
    weights_path: str | os.PathLike | None, device: torch.device | str, impl: str = "fast"
) -> nn.Module:
    """Load torch-fidelity's `inception-v3-compat` from local weights, in eval mode on `device`.

    Args:
        weights_path: `metrics.inception_weights`; None falls back to `$SSG_EVAL_INCEPTION`, then
            to torch-fidelity's cache file. Never downloads.
        device: where the network runs.
        impl: `metrics.inception_impl`: `fast` (default) or `torch_fidelity` (see
            `InceptionFeatures`); both give the same features to ~1e-6 relative.

    Returns:
        An `InceptionFeatures` module (float32 internals, gradients off).

    Raises:
        FileNotFoundError: no weights file (one message: where to put it).
        UnreadableFileError / InputFileError: the file is not a loadable state dict in
            torch-fidelity's layout. ConfigError: `impl` is unknown.
    """
    if impl not in INCEPTION_IMPLS:
        raise ConfigError(
            f"metrics.inception_impl={impl!r} is not valid; expected one of {INCEPTION_IMPLS}"
        )
    path = resolve_inception_weights(weights_path)
    check_inception_state_dict(path)
    sha = inception_weights_sha256(path)
    if sha.startswith(OFFICIAL_SHA256_PREFIX):
        log.info("Inception weights %s (sha256 %s, official torch-fidelity file)", path, sha)
    else:
        log.warning(
            "Inception weights %s (sha256 %s) are not the torch-fidelity release file %s: "
            "numbers are not comparable with ADM (fine for smoke/test runs)",
            path, sha, WEIGHTS_FILE_NAME,
        )  # fmt: skip
    network = FeatureExtractorInceptionV3(
        EXTRACTOR_NAME,
        list(TORCH_FIDELITY_LAYERS),
        feature_extractor_weights_path=str(path),
        feature_extractor_internal_dtype="float32",
    )
    model = InceptionFeatures(network, path, sha, impl=impl)
    return model.to(torch.device(device)).eval()
