"""What does a whole results-table row cost on top of sampling it? Floor and row, side by side.

The *floor* is sampling alone: build the sampling model and generate every chunk (tokens, decode,
uint8). The *row* is what a user runs for one cell: the pipeline's stages (input check, sample
stage with shards, export and manifest, features, metrics) and the report, each timed, with the
bytes every stage reads and writes under the run directory (`ssg_eval.runs.iocount`; the sha256
memo is cleared before each stage, as in separate stage processes). The headline overhead is
measured inside the row itself: the seconds spent in `build_sampling_model` + `generate_chunk`
are the floor, everything else is overhead, so a load change on a shared host hits both sides
(wall and CPU seconds). Separate floor phases (`--pattern`, default floor, row, floor) are
reported beside it. Random model and Inception weights, a synthetic reference whose features are
cached before timing (a reference is shared by every row). Appends one JSON line to
`<results>/bench/row.jsonl`. Never imported by ssg_eval.

    OMP_NUM_THREADS=2 python benchmarks/bench_row.py             # d16 shape, CFG, N = 8, CPU
    python benchmarks/bench_row.py --quick                         # CI: tiny model, N = 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from hydra import compose

from ssg_eval.cli import compose_context
from ssg_eval.runs.iocount import count_io
from ssg_eval.runs.layout import run_dir
from ssg_eval.utils.provenance import collect_provenance

STAGES = ("check", "sample", "features", "metrics", "report")
IMAGE_KINDS = ("shards", "samples.npz")  # files holding the images: "reads of the samples"


def compose_row(args: argparse.Namespace, work: Path, name: str, config: str = "config") -> Any:
    """The cell's config: the model with random weights on CPU, one run per `name`."""
    overrides = [
        f"model={args.model}", f"guidance={args.guidance}",
        f"sampler={'tiny' if args.quick else 'var_eval'}", "runtime.device=cpu",
        "runtime.measure_latency=false", f"sampler.num_samples={args.num_samples}",
        f"sampler.chunk_size={args.chunk_size}", f"sampler.batch_size={args.batch}",
        f"metrics.inception_weights={work / 'inception.pth'}",
        f"metrics.reference={work / 'reference.npz'}", "metrics.reference_name=bench_ref.npz",
        f"paths.results={work / 'results'}", f"run_name={name}",
        f"model.num_classes={args.num_classes}", "model.var_ckpt=null", "model.vae_ckpt=null",
        *args.override,
    ]  # fmt: skip
    if config == "report":
        overrides = [o for o in overrides if not o.startswith(("model=", "sampler."))]
        overrides += [f"report.runs=[{name}]", f"report.output_stem=bench_{name}"]
    with compose_context():
        return compose(config_name=config, overrides=overrides)


def make_assets(args: argparse.Namespace, work: Path) -> None:
    """Random Inception weights, a synthetic ADM-format reference, its features cached."""
    from ssg_eval.features.inception import build_inception, make_random_inception_weights
    from ssg_eval.metrics.reference import reference_features
    from ssg_eval.runs.io import atomic_write_npz
    from ssg_eval.sampling.generate import image_shape_of
    from ssg_eval.smoke import synthetic_images
    from ssg_eval.stages.metrics import load_checked_reference

    cfg = compose_row(args, work, "assets")
    make_random_inception_weights(work / "inception.pth", seed=0)
    side = image_shape_of(cfg.model)[0]
    atomic_write_npz(work / "reference.npz", arr_0=synthetic_images(args.reference_images, side, 7))
    model = build_inception(str(work / "inception.pth"), torch.device("cpu"))
    reference_features(load_checked_reference(cfg), model, cache_dir=work / "results" / "cache",
                       batch_size=cfg.metrics.feature_batch_size, device="cpu")  # fmt: skip


class FloorClock:
    """Wall and CPU seconds spent inside the sampling floor's calls during a row."""

    NAMES = ("build_sampling_model", "generate_chunk")

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> FloorClock:
        import ssg_eval.sampling.finalize as finalize
        import ssg_eval.sampling.generate as generate
        import ssg_eval.sampling.runner as runner

        modules = [generate, runner, finalize]
        try:
            import ssg_eval.sampling.overlap as overlap

            modules.append(overlap)
        except ImportError:  # the code before the overlap existed
            pass
        for module in modules:
            for name in self.NAMES:
                if hasattr(module, name):
                    self.saved.append((module, name, getattr(module, name)))
                    setattr(module, name, self.timed(getattr(module, name)))
        return self

    def timed(self, fn: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.process_time() - cpu

        return call

    def __exit__(self, *exc: Any) -> None:
        for module, name, fn in self.saved:
            setattr(module, name, fn)


def floor(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Sampling alone: model build + every chunk generated in memory, nothing written."""
    from ssg_eval.sampling.generate import build_sampling_model, generate_chunk
    from ssg_eval.sampling.plan import plan_from_config
    from ssg_eval.utils.dist import setup_runtime

    cfg = compose_row(args, work, "floor")
    setup_runtime(cfg.runtime)
    device = torch.device("cpu")
    start, cpu = time.perf_counter(), time.process_time()
    model = build_sampling_model(cfg, device)
    built = time.perf_counter()
    plan = plan_from_config(cfg)
    for chunk in range(plan.num_chunks):
        generate_chunk(model, cfg, plan, chunk, device)
    end = time.perf_counter()
    return {"build_s": built - start, "sample_s": end - built, "total_s": end - start,
            "cpu_s": time.process_time() - cpu, "load": os.getloadavg()}  # fmt: skip


def row(args: argparse.Namespace, work: Path, name: str) -> dict[str, Any]:
    """The cell as a user runs it: every stage timed, bytes per stage under the run dir."""
    from ssg_eval.stages.features import run_features
    from ssg_eval.stages.metrics import run_metrics
    from ssg_eval.stages.pipeline import ensure_samples
    from ssg_eval.stages.preflight import check_inputs
    from ssg_eval.stages.report import run_report

    cfg = compose_row(args, work, name)
    report_cfg = compose_row(args, work, name, "report")
    calls = {
        "check": lambda: check_inputs([cfg]),
        "sample": lambda: ensure_samples(cfg, []),
        "features": lambda: run_features(cfg),
        "metrics": lambda: run_metrics(cfg),
        "report": lambda: run_report(report_cfg),
    }
    import ssg_eval.utils.hashing as hashing

    out: dict[str, Any] = {"stages": {}, "load": os.getloadavg()}
    cpu = time.process_time()
    with FloorClock() as clock:
        for stage in STAGES:
            hashing._SHA_CACHE.clear()  # as in a separate process per stage
            with count_io(run_dir(cfg)) as counts:
                start = time.perf_counter()
                calls[stage]()
                seconds = time.perf_counter() - start
            out["stages"][stage] = {"s": seconds, "read": dict(counts.read),
                                    "written": dict(counts.written)}  # fmt: skip
    out["total_s"] = sum(s["s"] for s in out["stages"].values())
    out["cpu_s"] = time.process_time() - cpu
    out["floor_inside_s"], out["floor_inside_cpu_s"] = clock.wall, clock.cpu
    out["load_end"] = os.getloadavg()
    return out


def by_kind(files: dict[str, int]) -> dict[str, int]:
    """Bytes per kind of file: shards, feature cache, samples.npz, features.npz, other."""
    kinds: dict[str, int] = {}
    for path, size in files.items():
        head = path.split("/")[0]
        kind = head if head in ("shards", "features_cache") else path
        kind = kind if kind.endswith((".npz", "shards", "features_cache")) else "json/other"
        kinds[kind] = kinds.get(kind, 0) + size
    return kinds


def summary(args, floors: list[dict], rows: list[dict], samples_bytes: int) -> dict[str, Any]:
    """The figures of the JSON line: overhead, per-stage seconds and bytes (in samples' units)."""
    floor_s = statistics.mean(f["total_s"] for f in floors) if floors else float("nan")
    row_s = statistics.mean(r["total_s"] for r in rows)
    inside = {
        "overhead_inside_pct": statistics.mean(
            100.0 * (r["total_s"] / r["floor_inside_s"] - 1) for r in rows),
        "overhead_inside_cpu_pct": statistics.mean(
            100.0 * (r["cpu_s"] / r["floor_inside_cpu_s"] - 1) for r in rows),
        "floor_inside_s": statistics.mean(r["floor_inside_s"] for r in rows),
    }  # fmt: skip
    stages = {}
    for stage in STAGES:
        parts = [r["stages"][stage] for r in rows]
        read = by_kind(parts[-1]["read"])
        stages[stage] = {
            "s": statistics.mean(p["s"] for p in parts),
            "read_bytes": read,
            "written_bytes": by_kind(parts[-1]["written"]),
            "read_samples": sum(v for k, v in read.items() if k in IMAGE_KINDS) / samples_bytes,
        }
    return {"floor_s": floor_s, "row_s": row_s, "overhead_pct": 100.0 * (row_s / floor_s - 1),
            **inside, "stages": stages}  # fmt: skip


def print_table(record: dict[str, Any]) -> None:
    """Seconds and bytes read per stage, then the overhead line."""
    print(f"row {record['row_s']:.1f} s, of which floor (build + generate) "
          f"{record['floor_inside_s']:.1f} s: overhead "
          f"{record['overhead_inside_pct']:+.1f} % wall, "
          f"{record['overhead_inside_cpu_pct']:+.1f} % CPU; separate floor phases "
          f"{record['floor_s']:.1f} s (mean of {len(record['floors'])}): "
          f"{record['overhead_pct']:+.1f} %")  # fmt: skip
    print("| stage | s | images read (x samples) | read by kind | written by kind |")
    print("|---|---|---|---|---|")
    for stage, part in record["stages"].items():
        print(f"| {stage} | {part['s']:.2f} | {part['read_samples']:.2f} | {part['read_bytes']} | "
              f"{part['written_bytes']} |")  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options; `--quick` picks the tiny model and N = 10 (CI)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=None, help="conf/model entry (default var_d16)")
    parser.add_argument("--guidance", default="cfg")
    parser.add_argument("--num-samples", type=int, default=None, help="N (default 8; quick 10)")
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="model.num_classes (must divide N; default N, quick 10): the class "
        "table is the only part of the model it changes",
    )
    parser.add_argument("--chunk-size", type=int, default=None, help="default 4 (quick 4)")
    parser.add_argument("--batch", type=int, default=None, help="default 4 (quick 2)")
    parser.add_argument("--reference-images", type=int, default=None, help="default 16 (quick 10)")
    parser.add_argument(
        "--pattern", default=None, help="phase order: F floor, R row (default FRF, quick FR)"
    )
    parser.add_argument("--results-dir", default=None, help="where bench/row.jsonl goes")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="extra Hydra override of the cell, e.g. "
        "metrics.features_while_sampling=true (the table experiments' setting)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.model = args.model or ("tiny" if quick else "var_d16")
    args.num_samples = args.num_samples or (10 if quick else 8)
    args.num_classes = args.num_classes or args.num_samples
    args.chunk_size = args.chunk_size or 4
    args.reference_images = args.reference_images or (10 if quick else 16)
    args.pattern = args.pattern or ("FR" if quick else "FRF")
    args.batch = args.batch or (2 if quick else 4)
    if set(args.pattern) - {"F", "R"} or "R" not in args.pattern:
        parser.error("--pattern: F (floor) and R (row) phases, at least one R")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run the phases, print the table, append the JSON line."""
    args = parse_args(argv)
    from ssg_eval.sampling.generate import image_shape_of

    with tempfile.TemporaryDirectory(prefix="bench_row_") as folder:
        work = Path(folder)
        make_assets(args, work)
        floors, rows = [], []
        for index, phase in enumerate(args.pattern):
            print(f"== phase {index}: {'floor' if phase == 'F' else 'row'}", flush=True)
            if phase == "F":
                floors.append(floor(args, work))
            else:
                rows.append(row(args, work, f"row{index}"))
        side = image_shape_of(compose_row(args, work, "x").model)[0]
    samples_bytes = args.num_samples * side * side * 3
    provenance = collect_provenance()
    record = {
        "bench": "row", "quick": args.quick, "model": args.model, "guidance": args.guidance,
        "num_samples": args.num_samples, "chunk_size": args.chunk_size, "batch_size": args.batch,
        "threads": torch.get_num_threads(), "pattern": args.pattern, "overrides": args.override,
        "samples_bytes": samples_bytes, "floors": floors, "rows": rows,
        **summary(args, floors, rows, samples_bytes),
        "commit": provenance["git"].get("commit"), "dirty": provenance["git"].get("dirty"),
        "device_info": provenance["device"],
    }  # fmt: skip
    print_table(record)
    results = Path(args.results_dir or os.environ.get("SSG_EVAL_RESULTS", "results"))
    out = results / "bench" / "row.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=float) + "\n")
    print(f"bench_row: appended one JSON line to {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
