"""The shape of every JSON record the harness reads, checked in one place against a JSON Schema.

`read_record(path, kind, need)` reads a file through `runs.io.read_json` and checks the types of
the fields present plus the fields this reader needs; a record of the wrong shape raises
`UnreadableFileError` naming the file, the field and how to recover. This module knows shapes
only, never what a record means or which stage acts on it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ssg_eval.errors import ConfigError, UnreadableFileError, UserError
from ssg_eval.runs.io import read_json

__all__ = ["KINDS", "check_record", "read_record"]

_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_OBJ = {"type": "object"}
_OPT_OBJ = {"type": ["object", "null"]}
_STR_LIST = {"type": "array", "items": _STR}


def _obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


_CONFIG = _obj(
    model=_obj(name=_STR, label=_OPT_STR, num_classes=_INT,
               patch_nums={"type": "array", "items": _INT, "minItems": 1}),
    guidance=_obj(name=_STR, order=_STR_LIST, ssg=_OBJ),
    sampler=_obj(num_samples={"type": "integer", "minimum": 1}, seed=_INT, chunk_size=_INT),
    runtime=_OBJ,
)  # fmt: skip
_FEATURES_META = _obj(config_hash=_STR, num_samples=_INT, inception_sha256=_STR,
                      feature_batch_size=_INT, inception_impl=_STR, shards_sha256=_STR)  # fmt: skip

_DAMAGED = "it is a damaged artifact: "
_SUITE_FIX = (
    "a suite has experiment (a name), models and guidance (non-empty lists of config names), "
    "seeds (a non-empty list of integers), spectral (true/false), exclude (a list of {model, "
    "guidance}) and overrides (a list of Hydra overrides)"
)
_NAMES = {"type": "array", "items": _STR, "minItems": 1}

# kind -> (schema of the record's fields, how to recover from a wrong shape)
KINDS: dict[str, tuple[dict[str, Any], str]] = {
    "manifest": (
        _obj(
            config_hash=_STR,
            run_name=_STR,
            identity=_OBJ,
            config=_CONFIG,
            samples=_obj(num_samples={"type": "integer", "minimum": 1}, images_sha256=_STR),
            shards={"type": "object", "additionalProperties": _STR},
            image_shape={"type": "array", "items": _INT, "minItems": 3, "maxItems": 3},
            git=_obj(commit=_OPT_STR, dirty={"type": ["boolean", "null"]}),
            timings=_obj(images_per_s={"type": ["number", "null"]}, latency=_OPT_OBJ),
            numeric_environments=_OBJ,
        ),  # fmt: skip
        _DAMAGED + "rerun the sample stage with the same command (it rewrites a damaged "
        "manifest), or with overwrite=true",
    ),
    "identity": (
        _obj(config_hash=_STR, identity=_OBJ),
        _DAMAGED + "rerun the sample stage with overwrite=true (it replaces a damaged identity "
        "unread)",
    ),
    "features": (_FEATURES_META, _DAMAGED + "rerun the features stage with overwrite=true"),
    "metrics": (
        _obj(
            metrics={
                "type": "object",
                "minProperties": 1,
                # numbers, or a metric's summary (per_class)
                "additionalProperties": {"type": ["number", "null", "object"]},
            },
            inputs=_obj(features_meta=_FEATURES_META),
            protocol=_OBJ,
            num_samples=_INT,
        ),
        _DAMAGED + "rerun the metrics stage with overwrite=true",
    ),  # fmt: skip
    "tune_state": (
        _obj(
            version=_INT,
            fingerprint=_STR,
            rungs={"type": "array", "items": _OBJ},
            evaluations={
                "type": "object",
                "additionalProperties": _obj(
                    key=_STR, n=_INT, metrics=_OBJ, new_samples=_INT, device_s=_NUM
                ),
            },
            spent=_obj(samples=_INT, device_s=_NUM),
            final=_OPT_OBJ,
            stopped=_OPT_OBJ,
        ),
        _DAMAGED + "delete it to start that tune over, or choose another tune.name=...",
    ),  # fmt: skip
    "tune_trials": (
        {"type": "array", "items": _obj(candidate=_STR, n=_INT, objective=_NUM)},
        _DAMAGED + "delete it (it only lists finished trials; their runs are kept)",
    ),
    "tune_summary": (
        _obj(provenance=_obj(commit=_OPT_STR), cost=_OBJ, rungs={"type": "array"}),
        _DAMAGED + "rerun make tune with the same MODEL (it rewrites its summary)",
    ),
    "lock_holder": (_obj(stage=_STR, host=_STR, pid=_INT, since=_STR), _DAMAGED + "delete it"),
    "spectral_source": (
        _obj(baseline=_STR, ssg=_STR),
        _DAMAGED + "rerun the suite (it rewrites its spectral folder)",
    ),
    "shard_environment": (
        _obj(device_type=_STR, device_name=_STR, num_threads=_INT, torch=_STR),
        _DAMAGED + "delete the shard and its .env.json record: the sample stage regenerates both",
    ),
    "grid_record": (_obj(record=_OBJ, note=_STR), _DAMAGED + "delete it (the grid is redrawn)"),
    "reference_manifest": (
        _obj(files={"type": "object", "additionalProperties": _OBJ}),
        "restore it from the repository (git checkout) or fix the entry",
    ),
    "suite": (
        _obj(
            experiment=_STR,
            models=_NAMES,
            guidance=_NAMES,
            seeds={"type": "array", "items": _INT, "minItems": 1},
            spectral={"type": "boolean"},
            exclude={
                "type": ["array", "null"],
                "items": {**_obj(model=_STR, guidance=_STR), "required": ["model", "guidance"]},
            },
            overrides={"type": ["array", "null"], "items": _STR},
        ),
        _SUITE_FIX,
    ),  # fmt: skip
}
# Kinds that are configuration written by a person (a config mistake, not a damaged artifact).
_CONFIG_KINDS = ("suite",)


def _with_needs(schema: dict[str, Any], need: Sequence[str]) -> dict[str, Any]:
    """A copy of `schema` where every dotted path in `need` is required (objects on the way)."""
    schema = {**schema, "properties": dict(schema.get("properties", {}))}
    heads: dict[str, list[str]] = {}
    for path in need:
        head, _, rest = path.partition(".")
        heads.setdefault(head, [])
        if rest:
            heads[head].append(rest)
    schema["required"] = sorted({*schema.get("required", []), *heads})
    for head, rests in heads.items():
        child = schema["properties"].get(head, {"type": "object"} if rests else {})
        schema["properties"][head] = _with_needs(child, rests) if rests else child
    return schema


@functools.cache
def _validator(kind: str, need: tuple[str, ...]) -> Draft202012Validator:
    return Draft202012Validator(_with_needs(KINDS[kind][0], need) if need else KINDS[kind][0])


def _field(error: Any) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":  # the missing key is the field, not its parent
        missing = str(error.message).split("'")[1] if "'" in str(error.message) else ""
        path = f"{path}.{missing}" if path else missing
    return path or "(top level)"


def check_record(data: Any, path: str | Path, kind: str, need: Sequence[str] = ()) -> Any:
    """Return `data` when it has the shape of a `kind` record holding the fields in `need`.

    Args:
        data: the parsed JSON.
        path: the file it came from (named in the error).
        kind: a key of `KINDS` (`manifest`, `identity`, `features`, `metrics`, ...).
        need: dotted fields this reader uses (`samples.num_samples`); they must be present.

    Raises:
        UnreadableFileError: the record has the wrong shape (names file, field and the fix).
        ConfigError: the same for a configuration file (`suite`).
    """
    error = best_match(_validator(kind, tuple(need)).iter_errors(data))
    if error is None:
        return data
    cls: type[UserError] = ConfigError if kind in _CONFIG_KINDS else UnreadableFileError
    raise cls(
        f"{path}: field {_field(error)}: {error.message} (wrong shape for a {kind} file); "
        f"{KINDS[kind][1]}"
    )


def read_record(path: str | Path, kind: str, need: Sequence[str] = ()) -> Any:
    """Read JSON from `path` and check it with `check_record`.

    Raises:
        FileNotFoundError: the file is missing (named).
        UnreadableFileError: not JSON, or the wrong shape (names file, field and the fix).
    """
    return check_record(read_json(path), path, kind, need)
