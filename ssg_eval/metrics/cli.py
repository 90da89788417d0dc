"""`python -m ssg_eval.metrics.cli SAMPLES.npz REFERENCE.npz --out metrics.json`: ADM evaluator.

Parses arguments and reports through the one error contract (`ssg_eval.cli.run_cli`); all work
happens in `compute.evaluate_npz`, and this module must not compute anything itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ssg_eval.cli import run_cli
from ssg_eval.errors import UnwritablePathError
from ssg_eval.metrics.keys import ALL_METRICS
from ssg_eval.utils.logging import configure_cli_logging


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser (defaults are the ADM protocol)."""
    parser = argparse.ArgumentParser(
        prog="python -m ssg_eval.metrics.cli",
        description="FID, sFID, IS, precision and recall of an ADM-format sample npz against an "
        "ADM reference batch (ADM evaluator protocol; note: samples first, reference second).",
    )
    parser.add_argument("samples", help="sample batch npz (arr_0 uint8 NHWC)")
    parser.add_argument("reference", help="reference batch npz (VIRTUAL_imagenet256_labeled.npz)")
    parser.add_argument("--out", required=True, help="output metrics.json")
    parser.add_argument("--inception-weights", default=None, help="torch-fidelity weights .pth")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=64, help="Inception batch (ADM: 64)")
    parser.add_argument("--pr-distance-dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--fid-method", default="eigh", choices=["eigh", "sqrtm"])
    parser.add_argument(
        "--metrics", nargs="+", default=list(ALL_METRICS), choices=list(ALL_METRICS),
        help="subset to compute (default: all)",
    )  # fmt: skip
    parser.add_argument("--cache-dir", default=None, help="cache reference activations here")
    parser.add_argument("--no-verify-sha256", action="store_true")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def check_out(out: str | Path, overwrite: bool) -> None:
    """Refuse an `--out` that cannot be written, before any Inception work.

    Raises:
        FileExistsError: it exists and `overwrite` is false.
        FileNotFoundError: its directory is missing.
        UnwritablePathError: it is a directory, or its directory is not writable.
    """
    out = Path(out)
    if out.is_dir():
        raise UnwritablePathError(
            f"--out {out} is a directory; give a file name like {out}/metrics.json"
        )
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"--out {out}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise UnwritablePathError(f"--out {out}: directory {parent} is not writable")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluator; exit 0 with one summary line, or non-zero with a one-line error."""
    args = build_parser().parse_args(argv)
    configure_cli_logging()
    from ssg_eval.metrics.compute import evaluate_npz

    def evaluate() -> dict:
        check_out(args.out, args.overwrite)
        return evaluate_npz(
            args.samples,
            args.reference,
            args.out,
            inception_weights=args.inception_weights,
            device=args.device,
            batch_size=args.batch_size,
            distance_dtype=args.pr_distance_dtype,
            fid_method=args.fid_method,
            metrics=args.metrics,
            cache_dir=args.cache_dir,
            verify_sha256=not args.no_verify_sha256,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )

    try:  # one line and exit 2 for what the user can fix, a traceback and exit 1 for a bug
        payload = run_cli("ssg_eval.metrics.cli", evaluate)
    except SystemExit as done:
        return int(done.code)
    values = payload["metrics"]
    summary = " ".join(f"{key}={value!r}" for key, value in values.items())
    print(f"wrote {args.out}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
