"""`ssg-lint FILE.npz [--reference REF.npz] [--features FEATURES.npz] [--json OUT]`.

Parses arguments, prints one line per finding and sets the exit status: 0 pass or warn, 1 when
any check fails, 2 when a file cannot be read (one line). The checks live in `lint.run`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ssg_eval.cli import run_cli
from ssg_eval.lint.findings import EXPECTED_SAMPLES, Status
from ssg_eval.lint.run import LintReport, lint_file
from ssg_eval.utils.logging import configure_cli_logging

PROG = "ssg-lint"
EXIT_FAIL = 1


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Judge an ADM-format samples npz before scoring it: layout, size, count, "
        "labels and class balance, IS split coverage, duplicates, constant images, JPEG "
        "artefacts (and near-duplicates from Inception features). Exit 1 on a failed check.",
    )
    parser.add_argument("samples", help="samples npz (arr_0 uint8 NHWC, optional labels)")
    parser.add_argument("--reference", default=None, help="reference npz to compare with")
    parser.add_argument("--features", default=None, help="npz with the samples' pool features")
    parser.add_argument("--json", default=None, help="also write the findings as JSON here")
    parser.add_argument(
        "--expected-samples",
        type=int,
        default=EXPECTED_SAMPLES,
        help="the protocol's sample count (ADM: 50000)",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classes expected (default: largest label + 1)",
    )
    parser.add_argument("--is-split-size", type=int, default=5000, help="IS split (ADM: 5000)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def render(report: LintReport, reference: str | None) -> str:
    """Console text: a header line, then status, check, finding and its effect per check."""
    counts = {s: sum(f.status is s for f in report.findings) for s in Status}
    against = f" against {reference}" if reference else ""
    lines = [
        f"{PROG} {report.path}{against}: {report.status.upper()} ({counts[Status.FAIL]} "
        f"fail, {counts[Status.WARN]} warn, {counts[Status.PASS]} pass) in "
        f"{report.seconds:.1f} s"
    ]
    width = max(len(f.check) for f in report.findings)
    for finding in report.findings:
        lines.append(f"  {finding.status.upper():4}  {finding.check:{width}}  {finding.message}")
        lines.append(f"  {'':4}  {'':{width}}  -> {finding.effect}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the linter; see the module docstring for the exit statuses."""
    args = build_parser().parse_args(argv)
    configure_cli_logging()

    def lint() -> LintReport:
        report = lint_file(
            args.samples,
            args.reference,
            args.features,
            expected_samples=args.expected_samples,
            num_classes=args.num_classes,
            split_size=args.is_split_size,
            progress=not args.no_progress,
        )
        if args.json:
            from ssg_eval.runs.io import atomic_write_json

            atomic_write_json(args.json, report.to_json())
        return report

    try:  # one line and exit 2 for an input the user can fix; a bug keeps its traceback
        report = run_cli(PROG, lint)
    except SystemExit as done:
        return int(done.code)
    print(render(report, args.reference))
    return EXIT_FAIL if report.status is Status.FAIL else 0


if __name__ == "__main__":
    sys.exit(main())
