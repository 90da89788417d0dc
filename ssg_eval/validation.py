"""Cross-field rules of a composed configuration: `validate(cfg)`, run first by every entry point.

The schemas (`ssg_eval.config`) fix each key's type and closed choices at composition; this module
checks what spans several keys and asks the guidance builders for their rules. It must not build
models, touch files or pick devices.
"""

from __future__ import annotations

import typing
from dataclasses import fields, is_dataclass
from enum import StrEnum
from typing import Any

from ssg_eval import registry
from ssg_eval.config import Config, SamplerRng, parse_choice
from ssg_eval.errors import ConfigError
from ssg_eval.guidance import check_guidance
from ssg_eval.utils.launch import check_run_name

__all__ = ["MAX_NUM_SAMPLES", "validate"]

# 2,000 x the ADM protocol's 50,000; beyond it no disk holds the samples (256 px: 19.7 TB here).
MAX_NUM_SAMPLES = 100_000_000


def _enum_fields(schema: type, prefix: str = "") -> list[tuple[str, type[StrEnum]]]:
    """(dotted key, enum type) of every enum-typed field under the dataclass `schema`."""
    found = []
    hints = typing.get_type_hints(schema)
    for item in fields(schema):
        kind = hints[item.name]
        if isinstance(kind, type) and issubclass(kind, StrEnum):
            found.append((prefix + item.name, kind))
        elif isinstance(kind, type) and is_dataclass(kind):
            found.extend(_enum_fields(kind, f"{prefix}{item.name}."))
    return found


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


def validate(cfg: Any) -> None:
    """Check rules that span several keys; runs first in every entry point.

    Args:
        cfg: the composed config (DictConfig or `Config`).

    Raises:
        ConfigError: naming the first offending key, the value, what was expected and the fix.
    """
    for key, options in _enum_fields(Config):  # already checked when composed by Hydra
        parse_choice(key, _get(cfg, key), options)
    check_run_name(str(cfg.run_name))
    model, sampler = cfg.model, cfg.sampler
    num_scales = len(model.patch_nums)
    if num_scales < 1 or list(model.patch_nums) != sorted(set(model.patch_nums)):
        raise ConfigError(
            f"model.patch_nums={list(model.patch_nums)} must be strictly increasing and non-empty"
        )
    _validate_plan(model, sampler)
    for key in ("chunk_size", "batch_size", "decode_batch_size"):
        if getattr(sampler, key) <= 0:
            raise ConfigError(f"sampler.{key}={getattr(sampler, key)} must be positive")
    if not 0 <= sampler.top_k <= model.vocab_size:
        tiny = "; a tiny model needs sampler=tiny (experiment=smoke sets it)"
        raise ConfigError(
            f"sampler.top_k={sampler.top_k} must be in [0, model.vocab_size={model.vocab_size}]"
            " (0 disables top-k)" + (tiny if str(model.name).startswith("tiny") else "")
        )
    if not (sampler.top_p == 0 or 0 < sampler.top_p <= 1):
        raise ConfigError(f"sampler.top_p={sampler.top_p} must be 0 (off) or in (0, 1]")
    if not sampler.temperature > 0:
        raise ConfigError(f"sampler.temperature={sampler.temperature} must be > 0")
    if sampler.seed < 0:
        raise ConfigError(f"sampler.seed={sampler.seed} must be >= 0")
    check_guidance(cfg.guidance, model)  # the builders are the only guidance rules
    _validate_metrics(cfg.metrics)
    if cfg.launch.nproc_per_node < 1:
        raise ConfigError(f"launch.nproc_per_node={cfg.launch.nproc_per_node} must be >= 1")
    if cfg.launch.nnodes < 1:
        raise ConfigError(f"launch.nnodes={cfg.launch.nnodes} must be >= 1")
    node_rank = cfg.launch.node_rank
    if node_rank is not None and not 0 <= node_rank < cfg.launch.nnodes:
        raise ConfigError(
            f"launch.node_rank={node_rank} must be in [0, launch.nnodes={cfg.launch.nnodes})"
        )


def _validate_metrics(metrics: Any) -> None:
    planned = [str(m) for m in metrics.metrics if str(m) not in registry.METRICS]
    if planned:
        raise ConfigError(
            f"metrics.metrics={[str(m) for m in metrics.metrics]} names {planned}, which no code "
            f"computes yet (planned); computed metrics: {list(registry.METRICS)}"
        )
    feature_batch = 1 if metrics.feature_batch_size is None else metrics.feature_batch_size
    if min(metrics.pr_k, metrics.pr_block_size, metrics.is_split_size, feature_batch) < 1:
        raise ConfigError(
            "metrics.pr_k, metrics.pr_block_size, metrics.is_split_size and "
            "metrics.feature_batch_size must be >= 1"
        )
    if metrics.bootstrap_resamples == 1 or metrics.bootstrap_resamples < 0:
        raise ConfigError(
            f"metrics.bootstrap_resamples={metrics.bootstrap_resamples} must be 0 (off) or >= 2"
        )
    if metrics.band_bootstrap_resamples < 2:
        raise ConfigError(
            f"metrics.band_bootstrap_resamples={metrics.band_bootstrap_resamples} must be >= 2"
        )


def _validate_plan(model: Any, sampler: Any) -> None:
    official = sampler.rng == SamplerRng.official
    for key in ("g_seed", "official_labels"):
        if getattr(sampler, key) is not None and not official:
            raise ConfigError(f"sampler.{key} is set but sampler.rng={sampler.rng}; set "
                              f"sampler.rng=official or sampler.{key}=null")  # fmt: skip
    if sampler.g_seed is not None and sampler.g_seed < 0:
        raise ConfigError(f"sampler.g_seed={sampler.g_seed} must be >= 0")
    labels = sampler.official_labels
    if labels is not None:
        bad = [c for c in labels if not -1 <= c < model.num_classes]
        if not labels or bad or len(labels) != sampler.num_samples:
            raise ConfigError(
                f"sampler.official_labels={list(labels)} must hold sampler.num_samples="
                f"{sampler.num_samples} labels in [0, model.num_classes={model.num_classes}) or -1 "
                "(the null class); set sampler.num_samples to its length"
            )
        return
    if sampler.num_samples > MAX_NUM_SAMPLES:
        raise ConfigError(
            f"sampler.num_samples={sampler.num_samples} is beyond the limit of {MAX_NUM_SAMPLES:,}"
            " samples (2,000 x the 50,000 of the ADM protocol); ask for at most that many"
        )
    if sampler.num_samples <= 0 or sampler.num_samples % model.num_classes != 0:
        raise ConfigError(
            f"sampler.num_samples={sampler.num_samples} must be a positive multiple of "
            f"model.num_classes={model.num_classes} for balanced labels; use "
            f"{max(1, -(-sampler.num_samples // model.num_classes)) * model.num_classes}"
        )
