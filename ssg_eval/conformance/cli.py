"""`python -m ssg_eval.conformance.cli SAMPLES.npz REFERENCE.npz [--out DIR]` (`make conformance`).

Loads both files (memory-mapped), runs every tool on the same images and Inception weights and
writes `conformance.csv` and `conformance.md` atomically; the numbers come from `tools*`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ssg_eval.conformance.table import ToolResult, conformance_markdown, conformance_table
from ssg_eval.utils.logging import configure_cli_logging, get_logger

log = get_logger(__name__)
PROG = "ssg-conformance"
TOOLS = ("ssg_eval", "torch-fidelity", "torchmetrics", "clean-fid")
NOT_RUN = (
    ToolResult(
        "ADM evaluator (TF1)",
        reason="TensorFlow 1 graph code (tf.compat.v1) with NumPy < "
        "1.24 and SciPy's removed sqrtm(disp=); ssg_eval's GPU parity test covers it",
    ),
    ToolResult(
        "pytorch-fid",
        reason="its own weights file (pt_inception-2015-12-05) in another "
        "state-dict layout, not torch-fidelity's; not compared",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Compare ssg_eval's FID, IS, KID, "
        "precision and recall with other toolkits on one file pair.",
    )
    parser.add_argument("samples", help="samples npz (arr_0 uint8 NHWC)")
    parser.add_argument("reference", help="reference npz (arr_0 uint8 NHWC)")
    parser.add_argument(
        "--inception-weights",
        default=None,
        help="torch-fidelity weights file (default: $SSG_EVAL_INCEPTION, cache)",
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default results/conformance/<samples folder>)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    return parser


def run_conformance(args: argparse.Namespace) -> tuple[Path, Path]:
    """Run the selected tools and write the table; returns the CSV and Markdown paths."""
    from ssg_eval.conformance import tools, tools_other
    from ssg_eval.features.inception import resolve_inception_weights
    from ssg_eval.runs.io import atomic_write_text
    from ssg_eval.runs.npz import open_npz_array

    samples, reference = Path(args.samples), Path(args.reference)
    inputs = tools.Inputs(
        samples=open_npz_array(samples, "arr_0"),
        reference=open_npz_array(reference, "arr_0"),
        reference_path=reference,
        weights=resolve_inception_weights(args.inception_weights),
        device=args.device,
        batch_size=args.batch_size,
    )
    runners = {
        "ssg_eval": tools.run_ssg_eval,
        "torch-fidelity": tools.run_torch_fidelity,
        "torchmetrics": tools_other.run_torchmetrics,
        "clean-fid": tools_other.run_clean_fid,
    }
    results: list[ToolResult] = []
    for name in ["ssg_eval", *[t for t in args.tools if t != "ssg_eval"]]:
        log.info("conformance: %s", name)
        results += runners[name](inputs)
    results += list(NOT_RUN)
    table = conformance_table(results)
    out = Path(args.out) if args.out else Path("results/conformance") / samples.parent.name
    title = (
        f"Conformance: {samples} against {reference} ({len(inputs.samples)} vs "
        f"{len(inputs.reference)} images, weights {inputs.weights.name})"
    )
    return (
        atomic_write_text(out / "conformance.csv", table.to_csv(index=False)),
        atomic_write_text(out / "conformance.md", conformance_markdown(table, results, title)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 with the written paths, or 2 with one line when an input is missing."""
    from ssg_eval.cli import run_cli

    args = build_parser().parse_args(argv)
    configure_cli_logging()
    try:  # one line and exit 2 for a missing or unreadable input; a bug keeps its traceback
        csv_path, md_path = run_cli(PROG, lambda: run_conformance(args))
    except SystemExit as done:
        return int(done.code)
    print(f"wrote {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
