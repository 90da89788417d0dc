"""Run every benchmark in one process (`make bench`, `--quick` for the CI pass in the e2e test).

Each benchmark prints its side-by-side ratios and appends JSON lines under results/bench/.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("bench_processors", "bench_sampling", "bench_metrics", "bench_features", "bench_row")


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=list(BENCHMARKS), choices=BENCHMARKS)
    args = parser.parse_args(argv)
    for name in args.only:
        print(f"== {name}", flush=True)
        load(name).main(["--quick"] if args.quick else [])


if __name__ == "__main__":
    main(sys.argv[1:])
