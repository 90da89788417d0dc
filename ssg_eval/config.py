"""Structured-config schemas for every Hydra group, their ConfigStore registration and `validate`.

This module owns the shape and cross-field rules of the configuration; it must not build models,
touch files or pick devices (that happens in the stage entry points).
It runs past 300 lines on purpose: every group's schema and its enums stay in one file, so a reader
sees the whole shape of a run's configuration in one place; `validate` is its only logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from ssg_eval.errors import ConfigError


# ----------------------------------------------------------------------------------------------
# options: every closed set of values is one enum, used as the schema field's type (Hydra then
# rejects a typo at composition) and by `parse_choice` in the builders (plain dataclasses)
# ----------------------------------------------------------------------------------------------
class RampSchedule(StrEnum):
    linear_ramp = "linear_ramp"  # w_k = scale * j/(n-1) over the window's n scales (VAR's ramp)
    constant = "constant"  # w_k = scale on every scale of the window


class BetaSchedule(StrEnum):
    constant = "constant"
    linear_decay = "linear_decay"
    linear_ramp = "linear_ramp"
    list = "list"


class Arithmetic(StrEnum):
    mix = "mix"  # (1 + w)*l - w*l_ref: VAR's CFG evaluation order
    delta = "delta"  # l + w*(l - l_ref): an equal reference is a bit-exact identity


class Placement(StrEnum):
    after_cfg = "after_cfg"
    per_branch = "per_branch"


class PriorSource(StrEnum):
    guided_pre_ssg = "guided_pre_ssg"
    guided_post_ssg = "guided_post_ssg"
    cond_only = "cond_only"


class LogitSpace(StrEnum):
    raw = "raw"
    log_softmax = "log_softmax"


class PriorMode(StrEnum):
    dse = "dse"
    interpolate_only = "interpolate_only"


class Interpolation(StrEnum):
    bilinear = "bilinear"
    bicubic = "bicubic"
    area = "area"
    nearest = "nearest"


class CoarseBlockScale(StrEnum):
    sqrt_area_ratio = "sqrt_area_ratio"
    none = "none"


class BandFusion(StrEnum):
    hard_overwrite = "hard_overwrite"


class DctNorm(StrEnum):
    ortho = "ortho"


class SamplerRng(StrEnum):
    per_sample = "per_sample"
    official = "official"


class TruncationImpl(StrEnum):
    sort = "sort"
    fast = "fast"


class Uint8Rounding(StrEnum):
    nearest = "nearest"
    truncate = "truncate"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class AutocastDtype(StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class DecodeDtype(StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"


class DistBackend(StrEnum):
    auto = "auto"
    nccl = "nccl"
    gloo = "gloo"


class PrDistanceDtype(StrEnum):
    float16 = "float16"
    float32 = "float32"


class FidMethod(StrEnum):
    eigh = "eigh"
    sqrtm = "sqrtm"


# Every name `metrics.metrics` accepts, in display order: the one list (`ssg_eval.metrics.keys`
# derives its constants from it). A member's name is its value, which is what Hydra matches a YAML
# string against; `is` is a Python keyword, hence the functional form. Which names have a
# computation is `ssg_eval.registry.METRICS`; the others are planned and refused by `validate`.
METRIC_NAMES = (
    "fid", "sfid", "is", "precision", "recall",  # the ADM protocol
    "fd_dinov2", "fwd",  # need their own weights / settings
    "kid", "density", "coverage", "fd_inf", "per_class",  # from the same Inception features
)  # fmt: skip
MetricName = StrEnum("MetricName", [(name, name) for name in METRIC_NAMES], module=__name__)
MetricName.__doc__ = "A metric `metrics.metrics` may request (see `METRIC_NAMES`)."


class InceptionImpl(StrEnum):
    fast = "fast"  # BN folded into the convs, channels-last, fused uint8 TF1 resize
    torch_fidelity = "torch_fidelity"  # torch-fidelity's own forward, unchanged


def parse_choice(key: str, value: Any, options: type[StrEnum]) -> StrEnum:
    """`value` as a member of `options`, or a ConfigError naming the key and the valid values."""
    try:
        return options(value)
    except ValueError:
        raise ConfigError(
            f"{key}={value!r} is not valid; expected one of {[o.value for o in options]}"
        ) from None


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    name: str = MISSING  # run-facing id, e.g. var_d16 (also the Table 1 row key)
    arch: str = "var"  # registry key of the builder (ssg_eval.registry.MODELS)
    label: str = ""  # display name in tables, e.g. "VAR-d16"
    depth: int = 16  # transformer blocks; width = 64*depth, heads = depth
    patch_nums: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 8, 10, 13, 16])
    vocab_size: int = 4096
    cvae: int = 32  # VQVAE latent channels (codebook width)
    num_classes: int = 1000  # the null class for CFG is index num_classes
    shared_aln: bool = False
    attn_l2_norm: bool = True  # True for every released checkpoint (the builder's default)
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    vae_ch: int = 160
    vae_ch_mult: list[int] = field(default_factory=lambda: [1, 1, 2, 2, 4])
    vae_num_res_blocks: int = 2
    share_quant_resi: int = 4
    quant_resi: float = 0.5
    # Checkpoints. null = deterministic random weights from parameter names (tiny/test models only).
    var_ckpt: str | None = None
    vae_ckpt: str | None = None
    init_seed: int = 1234  # seed prefix of the name-derived random weights (docs/VAR.md)
    params_quoted: str = ""  # the README's rounded parameter count, e.g. "310M"


# ----------------------------------------------------------------------------------------------
# guidance: the processors listed in `order` run at every scale, in that order; `order` is the
# only on/off switch (a section whose name is not listed is ignored)
# ----------------------------------------------------------------------------------------------
@dataclass
class CfgRampConfig:
    scale: float = 1.5  # t = scale * si/(K-1); logits = (1+t)*cond - t*uncond (VAR's ramp)
    schedule: RampSchedule = RampSchedule.linear_ramp  # linear_ramp (VAR) | constant
    scale_indices: list[int] | None = None  # 0-based scales where CFG acts; null = every scale
    arithmetic: Arithmetic = Arithmetic.mix  # mix = VAR's bits | delta


@dataclass
class IcgConfig:
    """Independent condition guidance: the reference is a random class per sample."""

    scale: float = 1.5  # placeholder until swept; 0 is an exact no-op
    schedule: RampSchedule = RampSchedule.linear_ramp  # linear_ramp | constant (as cfg_ramp)
    scale_indices: list[int] | None = None  # 0-based scales where ICG acts; null = every scale
    arithmetic: Arithmetic = Arithmetic.delta  # delta: l + w (l - l_ref) | mix


@dataclass
class GuideModelConfig:
    """A second VAR sharing the main model's VQVAE, token space and scales (autoguidance)."""

    name: str = "guide"  # display id, e.g. var_d16
    depth: int = 16
    shared_aln: bool = False
    attn_l2_norm: bool = True
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    var_ckpt: str | None = None  # null = name-seeded random weights (only with a random model)
    init_seed: int = 1234  # seed prefix of the random weights


@dataclass
class AutoguidanceConfig:
    """Autoguidance: the reference is a weaker guide model fed the same tokens."""

    scale: float = 1.0  # placeholder until swept; 0 is an exact no-op
    schedule: RampSchedule = RampSchedule.linear_ramp  # linear_ramp | constant (as cfg_ramp)
    scale_indices: list[int] | None = None  # 0-based scales where it acts; null = every scale
    arithmetic: Arithmetic = Arithmetic.delta  # delta: l + w (l - l_ref) | mix
    guide: GuideModelConfig = field(default_factory=GuideModelConfig)


@dataclass
class SsgConfig:
    beta: float = 0.5  # SSG strength; 0 is an exact no-op
    beta_schedule: BetaSchedule = BetaSchedule.constant  # constant|linear_decay|linear_ramp|list
    beta_end: float | None = None  # end value for linear_decay / linear_ramp
    beta_list: list[float] | None = None  # explicit per-scale betas (len = number of scales)
    scale_indices: list[int] | None = None  # 0-based scales where SSG acts; null = all si >= 1
    placement: Placement = Placement.after_cfg  # after_cfg | per_branch
    prior_source: PriorSource = PriorSource.guided_pre_ssg  # guided_pre|guided_post|cond_only
    logit_space: LogitSpace = LogitSpace.raw  # raw | log_softmax
    prior_mode: PriorMode = PriorMode.dse  # dse | interpolate_only
    interpolation: Interpolation = Interpolation.bilinear  # bilinear | bicubic | area | nearest
    coarse_block_scale: CoarseBlockScale = CoarseBlockScale.sqrt_area_ratio  # or none
    band_fusion: BandFusion = BandFusion.hard_overwrite  # the only variant described
    dct_norm: DctNorm = DctNorm.ortho  # DCT-II / DCT-III
    arithmetic: Arithmetic = Arithmetic.delta  # delta: l + beta (l - prior) | mix


@dataclass
class GuidanceConfig:
    name: str = "none"  # run-facing id: none | cfg | cfg_ssg | ssg | icg | autoguidance | ...
    order: list[str] = field(default_factory=list)  # active processors (ssg_eval.registry)
    cfg_ramp: CfgRampConfig = field(default_factory=CfgRampConfig)
    icg: IcgConfig = field(default_factory=IcgConfig)
    autoguidance: AutoguidanceConfig = field(default_factory=AutoguidanceConfig)
    ssg: SsgConfig = field(default_factory=SsgConfig)


# ----------------------------------------------------------------------------------------------
# sampler: plan, randomness and truncation (applied after guidance)
# ----------------------------------------------------------------------------------------------
@dataclass
class SamplerConfig:
    num_samples: int = 50_000
    chunk_size: int = 1000  # samples per shard file; storage only, never changes the images
    batch_size: int = 64  # per-process forward batch; never changes the images
    decode_batch_size: int = 16  # VQVAE decode group, aligned to chunk starts (part of identity)
    seed: int = 0
    rng: SamplerRng = SamplerRng.per_sample  # per_sample | official (one generator per chunk)
    temperature: float = 1.0
    top_k: int = 900  # 0 disables
    top_p: float = 0.96  # 0 disables (VAR's convention); otherwise in (0, 1]
    truncation_impl: TruncationImpl = TruncationImpl.sort  # sort (reference) | fast (same set)
    save_samples_npz: bool = True  # export ADM samples.npz (arr_0, index order)
    uint8_rounding: Uint8Rounding = Uint8Rounding.nearest  # nearest: floor(255x+0.5) | truncate
    more_smooth: bool = False  # VAR's Gumbel-softmax soft embedding (visualisation, not for FID)
    # rng=official only: reproduce official calls. g_seed reseeds every chunk's generator (null =
    # a seed per chunk from sampler.seed); official_labels are the labels of samples 0..N-1 in
    # order (-1 = the null class; null = index % num_classes, balanced).
    g_seed: int | None = None
    official_labels: list[int] | None = None


# ----------------------------------------------------------------------------------------------
# runtime switches, applied once by utils.dist.setup_runtime
# ----------------------------------------------------------------------------------------------
@dataclass
class RuntimeConfig:
    device: Device = Device.auto  # auto | cpu | cuda
    autocast_dtype: AutocastDtype = AutocastDtype.float32  # float32 (off) | bfloat16 | float16
    decode_dtype: DecodeDtype = DecodeDtype.float32  # float32 | bfloat16, VQVAE decoder
    use_tf32: bool = False
    cudnn_benchmark: bool = False
    cudnn_deterministic: bool = True
    num_threads: int | None = None  # torch.set_num_threads; null = leave as is
    dist_backend: DistBackend = DistBackend.auto  # auto (nccl on cuda, gloo on cpu) | nccl | gloo
    latency_batch_size: int = 1  # Time column protocol: batch size for the timed pass
    latency_repeats: int = 3  # timed repeats after one warm-up; median reported
    measure_latency: bool = True
    overlap_decode: bool = True  # CUDA: decode + uint8 + host copy of chunk i beside chunk i+1


# ----------------------------------------------------------------------------------------------
# metrics: ADM protocol, set explicitly (no library defaults)
# ----------------------------------------------------------------------------------------------
@dataclass
class MetricsConfig:
    reference: str = MISSING  # ADM reference batch npz (VIRTUAL_imagenet256_labeled.npz)
    reference_name: str = "VIRTUAL_imagenet256_labeled.npz"  # key in reference_stats/manifest.json
    verify_reference_sha256: bool = True
    inception_weights: str | None = None  # torch-fidelity state dict; null = torch-fidelity cache
    feature_batch_size: int | None = 64  # ADM batch; null = chosen by the device (CPU 32, CUDA 256)
    inception_impl: InceptionImpl = InceptionImpl.fast  # fast | torch_fidelity (same features)
    feature_device: str = "auto"
    features_while_sampling: bool = False  # each sampling rank extracts its own chunks' features
    is_split_size: int = 5000  # ADM: consecutive, unshuffled 5,000-sample splits
    pr_k: int = 3
    pr_block_size: int = 10_000
    pr_distance_dtype: PrDistanceDtype = PrDistanceDtype.float16  # float16 = ADM | float32
    fid_method: FidMethod = FidMethod.eigh  # eigh (fast, symmetric) | sqrtm (ADM's literal form)
    bootstrap_resamples: int = 0  # >0: class-stratified bootstrap std of FID (one-seed spread)
    metrics: list[MetricName] = field(default_factory=lambda: list(METRIC_NAMES[:5]))  # ADM's
    # FD-DINOv2 (add fd_dinov2 to `metrics`): DINOv2 release weights, never downloaded.
    dinov2_weights: str | None = None  # dinov2_vitl14_pretrain.pth (SSG_EVAL_DINOV2)
    dinov2_arch: str = "vit_large_patch14_dinov2"  # timm name; ViT-L/14 is dgm-eval's default
    # Per-band metric (add fwd to `metrics`): FWD per wavelet-packet band, radial power bands.
    fwd_wavelet: str = "haar"  # PyWavelets name; FWD's paper setting is Haar at level 4 (256 px)
    fwd_level: int = 4  # packet level: 4**level packets, 2**level frequency bands (rings)
    psd_band_edges: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0])  # of Nyquist
    band_bootstrap_resamples: int = 200  # paired bootstrap draws per band delta (report)


@dataclass
class PathsConfig:
    results: str = "results"  # resolved against the launch directory once, at start-up
    ckpt_dir: str = "checkpoints"


@dataclass
class ReportConfig:
    runs: list[str] | None = None  # run names to include; null = every run (or run_prefix)
    run_prefix: str | None = None  # include only runs whose name starts with this
    output_stem: str = "table1"  # writes <results>/<stem>.csv and .md
    title: str = "Table 1: ImageNet 256x256, class-conditional"
    note: str = ""  # printed under the Markdown title (e.g. "pipeline check, not a reproduction")
    paper: dict[str, Any] = field(default_factory=dict)  # quoted numbers, with their source
    paper_row_of: dict[str, str] = field(default_factory=dict)  # model name -> paper row key
    baseline: str = "cfg"  # guidance name every other row's paired delta is taken against
    sweep_plot: bool = True  # FID/IS vs beta plot when runs differ in guidance.ssg.beta
    page: bool = True  # <stem>_report/index.html: tables, figures, band deltas, paired grids
    grid_samples: int = 8  # (label, seed) pairs per paired grid: first indices of distinct classes


@dataclass
class LaunchConfig:
    nproc_per_node: int = 1  # >1: the pipeline starts the sample stage under torchrun
    nnodes: int = 1  # >1: one torchrun per node, c10d rendezvous (Slurm: one task per node)
    rdzv_endpoint: str | None = None  # HOST:PORT of the rendezvous; null = first Slurm node
    rdzv_port: int = 29500  # port used with the first Slurm node
    rdzv_id: str | None = None  # rendezvous id; null = <$SLURM_JOB_ID>_<run_name>, or run_name
    node_rank: int | None = None  # this node's rank; null = $SLURM_NODEID (0 runs later stages)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    run_name: str = "${model.name}_${guidance.name}_s${sampler.seed}"
    experiment_name: str = ""
    dry_run: bool = False
    overwrite: bool = False


def register_configs() -> None:
    """Store the schemas as `base_<group>` so every YAML starts from a typed schema."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    for group, node in [
        ("model", ModelConfig),
        ("guidance", GuidanceConfig),
        ("sampler", SamplerConfig),
        ("runtime", RuntimeConfig),
        ("metrics", MetricsConfig),
        ("paths", PathsConfig),
    ]:
        cs.store(group=group, name=f"base_{group}", node=node)


register_configs()
