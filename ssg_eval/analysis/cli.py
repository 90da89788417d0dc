"""`python -m ssg_eval.analysis.cli spectra`: SSG's latent- and pixel-level spectral figures.

This module is the I/O edge of the spectral analysis (checks run dirs, reference and outputs up
front, re-generates a few latents through the production sampler, reads shards, writes PNG/CSV
atomically); the math lives in `analysis.spectral`, re-generation in `analysis.latent` and image
reading in `analysis.images`, and it must not change any run directory.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssg_eval.analysis.images import IMAGE_BATCH, iter_png_images, reference_image_shape
from ssg_eval.analysis.plots import plot_latent_panels, plot_pixel_ratio
from ssg_eval.analysis.spectral import LatentPanel, PixelSpectrumAccumulator
from ssg_eval.cli import run_cli
from ssg_eval.errors import ConfigError, MismatchedRunsError
from ssg_eval.runs.io import atomic_write_text
from ssg_eval.runs.npz import npz_array_header
from ssg_eval.runs.records import read_record
from ssg_eval.utils.logging import configure_cli_logging, get_logger

log = get_logger(__name__)

OUTPUT_NAMES = {
    "latent_png": "latent_spectrum.png",
    "latent_csv": "latent_spectrum.csv",
    "pixel_png": "pixel_spectrum.png",
    "pixel_csv": "pixel_spectrum.csv",
}
LATENT_MODES = ("forced", "free")
PANELS_SHOWN = 4  # the paper draws the last four transitions (6→7 … 9→10)
# Sampler keys that must agree so that index i has the same label and seed in both runs.
PLAN_KEYS = ("num_samples", "chunk_size", "seed", "rng")


@dataclass(frozen=True)
class RunInfo:
    """What the analysis needs from a finished run directory (read before any work)."""

    run_dir: Path
    name: str
    config: dict[str, Any]
    image_shape: tuple[int, ...]  # (H, W, 3)
    shard_sha256: dict[str, str]  # the manifest's `{shard file name: sha256}`


def load_run(run_dir: str | Path) -> RunInfo:
    """Read a run's manifest config and its image size (from the first shard's header).

    Raises:
        FileNotFoundError: the directory, `manifest.json` or the shards are missing.
        UnreadableFileError: the manifest has no `config` (a damaged record).
    """
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} not found; pass a finished sample run "
            "directory (results/runs/<run_name>)"
        )
    manifest = read_record(manifest_path, "manifest", need=("config", "shards"))
    shards = sorted((run_dir / "shards").glob("chunk_*.npz"))
    if not shards:
        raise FileNotFoundError(f"no shards under {run_dir / 'shards'}; sampling is unfinished")
    shape, _ = npz_array_header(shards[0], "images")
    return RunInfo(
        run_dir, run_dir.name, manifest["config"], tuple(shape[1:]), dict(manifest["shards"])
    )


def run_plan(run: RunInfo) -> Any:
    """The sample plan the run's manifest records (its N: shards beyond it are not read)."""
    from omegaconf import OmegaConf

    from ssg_eval.sampling.plan import plan_from_config

    return plan_from_config(OmegaConf.create(run.config))


def check_pair(baseline: RunInfo, treated: RunInfo, reference_shape: tuple[int, ...]) -> None:
    """Fail before any work unless the two runs are a paired comparison at the reference size.

    Raises:
        MismatchedRunsError: image sizes differ, model configs differ, or the sample plans
            differ.
    """
    shapes = {
        "baseline": baseline.image_shape,
        "ssg": treated.image_shape,
        "reference": reference_shape,
    }
    if len(set(shapes.values())) > 1:
        raise MismatchedRunsError(
            f"image sizes differ (H, W, C): {shapes}; compare runs of one "
            "model against a reference at the same resolution"
        )
    model_b, model_t = baseline.config["model"], treated.config["model"]
    differing = sorted(k for k in set(model_b) | set(model_t) if model_b.get(k) != model_t.get(k))
    if differing:
        raise MismatchedRunsError(
            f"{baseline.name} and {treated.name} use different models "
            f"(model.{differing[0]}: {model_b.get(differing[0])!r} vs "
            f"{model_t.get(differing[0])!r}); pair runs of the same model"
        )
    for key in PLAN_KEYS:
        value_b = baseline.config["sampler"].get(key)
        value_t = treated.config["sampler"].get(key)
        if value_b != value_t:
            raise MismatchedRunsError(
                f"sampler.{key} differs ({value_b!r} vs {value_t!r}); the spectra "
                "compare paired samples, so both runs need the same plan"
            )


def _check_outputs(out_dir: Path, overwrite: bool) -> dict[str, Path]:
    paths = {key: out_dir / name for key, name in OUTPUT_NAMES.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing} already exist; pass --overwrite (overwrite=True) or choose another --out"
        )
    return paths


def _csv_text(frame: Any) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)  # full precision (repr round-trip)
    return buffer.getvalue()


def pixel_level(baseline: RunInfo, treated: RunInfo, reference: Path, paths: dict) -> None:
    """Radial amplitude of both runs' images ÷ the reference's; writes the pixel PNG and CSV."""
    import pandas as pd

    from ssg_eval.sampling.shards import iter_run_images

    spectra = {}
    for label, run in (("baseline", baseline), ("ssg", treated)):
        accumulator = PixelSpectrumAccumulator()
        # Exactly the manifest's N: a run shrunk to a smaller N keeps its later shards on
        # disk (for a later grow); they are not part of this run's samples.
        plan = run_plan(run)
        for images_NHWC, _, _ in iter_run_images(run.run_dir, IMAGE_BATCH, plan, run.shard_sha256):
            accumulator.update(np.asarray(images_NHWC))
        spectra[label] = accumulator.result()[1]
    accumulator = PixelSpectrumAccumulator()
    if reference.is_dir():
        batches = iter_png_images(reference)
    else:
        from ssg_eval.features.extract import iter_npz_images  # torch: only when needed

        batches = iter_npz_images(reference, IMAGE_BATCH)
    for images_NHWC in batches:
        accumulator.update(images_NHWC)
    freqs, ref_amplitude = accumulator.result()
    ratios = {}
    for label, amplitude in spectra.items():
        ratio = np.full_like(amplitude, np.nan)
        np.divide(amplitude, ref_amplitude, out=ratio, where=ref_amplitude > 0)
        ratios[label] = ratio
    frame = pd.DataFrame(
        {
            "freq": freqs,
            "reference_amplitude": ref_amplitude,
            "baseline_amplitude": spectra["baseline"],
            "ssg_amplitude": spectra["ssg"],
            "baseline_ratio": ratios["baseline"],
            "ssg_ratio": ratios["ssg"],
        }
    )
    atomic_write_text(paths["pixel_csv"], _csv_text(frame))
    labels = {
        f"without SSG ({baseline.name})": ratios["baseline"],
        f"with SSG ({treated.name})": ratios["ssg"],
    }
    plot_pixel_ratio(freqs, labels, paths["pixel_png"], title="Pixel Level Analysis")


def latent_level(
    baseline: RunInfo,
    treated: RunInfo,
    num_samples: int,
    mode: str,
    device: str | None,
    paths: dict,
) -> None:
    """ΔLog Magnitude of f̂ per transition (see `analysis.latent`); writes latent PNG and CSV."""
    import pandas as pd

    from ssg_eval.analysis.latent import latent_transitions

    transitions = latent_transitions(baseline.config, treated.config, num_samples, mode, device)
    rows = [
        {
            "from_step": t.to_step - 1,
            "to_step": t.to_step,
            "scale_index": t.to_step - 1,
            "prev_patch_num": t.prev_patch_num,
            "patch_num": t.patch_num,
            "nyquist_bin": t.nyquist,
            "bin": float(b),
            "delta_mean": float(m),
            "delta_std": float(s),
            "num_samples": num_samples,
            "mode": mode,
        }
        for t in transitions
        for b, m, s in zip(t.bins, t.mean, t.std, strict=True)
    ]
    atomic_write_text(paths["latent_csv"], _csv_text(pd.DataFrame(rows)))
    title = f"Latents Level Analysis: {treated.name} − {baseline.name} ({mode}, n={num_samples})"
    panels: list[LatentPanel] = transitions[-PANELS_SHOWN:]
    plot_latent_panels(panels, paths["latent_png"], title=title)


def run_spectral_analysis(
    baseline_dir: str | Path,
    ssg_dir: str | Path,
    reference: str | Path,
    out_dir: str | Path,
    num_latent_samples: int = 16,
    overwrite: bool = False,
    latent_mode: str = "forced",
    device: str | None = None,
) -> dict[str, Path]:
    """Both spectral figures of docs/METHOD.md (spectral analysis) for a baseline and its SSG twin.

    Every input is checked first (manifests, shards, reference, image sizes, model and plan
    agreement, checkpoints, existing outputs); only then are latents re-generated and images read.

    Args:
        baseline_dir: run directory without SSG (`results/runs/<run_name>`).
        ssg_dir: run directory with SSG; same model and sampling plan as the baseline.
        reference: ADM reference batch npz (uint8 `arr_0`) or a folder of PNGs.
        out_dir: where `latent_spectrum.{png,csv}` and `pixel_spectrum.{png,csv}` go.
        num_latent_samples: samples 0..n−1 of the plan re-generated for the latent panels.
        overwrite: replace existing output files.
        latent_mode: `forced` (docs/METHOD.md default: the SSG pass replays the baseline's
            tokens up to step a, so only step b differs) or `free` (both runs sampled freely).
        device: `cpu`, `cuda` or `auto`; None uses the baseline manifest's `runtime.device`.

    Returns:
        Output paths keyed `latent_png`, `latent_csv`, `pixel_png`, `pixel_csv`.

    Raises:
        FileNotFoundError, FileExistsError, UserError: naming the input and the fix.
    """
    if latent_mode not in LATENT_MODES:
        raise ConfigError(f"latent_mode={latent_mode!r}; expected one of {list(LATENT_MODES)}")
    paths = _check_outputs(Path(out_dir), overwrite)
    baseline, treated = load_run(baseline_dir), load_run(ssg_dir)
    reference = Path(reference)
    check_pair(baseline, treated, reference_image_shape(reference))
    total = int(baseline.config["sampler"]["num_samples"])
    if not 1 <= num_latent_samples <= total:
        raise ConfigError(f"num_latent_samples={num_latent_samples} must be in [1, {total}]")
    for key in ("var_ckpt", "vae_ckpt"):
        ckpt = baseline.config["model"].get(key)
        if ckpt is not None and not Path(ckpt).is_file():
            raise FileNotFoundError(f"model.{key}={ckpt} (from {baseline.run_dir}) not found")
    if "ssg" not in treated.config["guidance"].get("order", []):
        log.warning("%s has no ssg in guidance.order; comparing it anyway", treated.name)
    latent_level(baseline, treated, num_latent_samples, latent_mode, device, paths)
    pixel_level(baseline, treated, reference, paths)
    log.info("spectral analysis written to %s", out_dir)
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m ssg_eval.analysis.cli spectra --baseline R --ssg R --reference REF --out D`."""
    parser = argparse.ArgumentParser(
        prog="ssg_eval.analysis.cli", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    spectra = commands.add_parser("spectra", help="latent and pixel spectra: baseline vs SSG")
    spectra.add_argument("--baseline", required=True, help="run dir without SSG")
    spectra.add_argument("--ssg", required=True, help="run dir with SSG (same model and plan)")
    spectra.add_argument("--reference", required=True, help="ADM npz (arr_0) or PNG folder")
    spectra.add_argument("--out", required=True, help="output folder")
    spectra.add_argument("--num-latent-samples", type=int, default=16)
    spectra.add_argument("--latent-mode", choices=LATENT_MODES, default="forced")
    spectra.add_argument("--device", default=None, help="cpu | cuda | auto (default: manifest)")
    spectra.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    args = parser.parse_args(argv)
    configure_cli_logging()
    written = run_cli(
        "ssg-analysis",
        lambda: run_spectral_analysis(
            args.baseline,
            args.ssg,
            args.reference,
            args.out,
            num_latent_samples=args.num_latent_samples,
            overwrite=args.overwrite,
            latent_mode=args.latent_mode,
            device=args.device,
        ),
    )
    print("ssg-analysis spectra: wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main()
