"""Run configuration: the profiles (smoke / quick / full) and the resolved settings of one run."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tganbench.augmentations.symmetries import parse_symmetries
from tganbench.errors import UsageError


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of the shared loop, the same for every strategy (the budget of the protocol)."""

    steps: int
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    check_every: int = 50
    precision: str = "fp32"  # "bf16": autocast the step (meant for CUDA)
    compile: bool = False  # torch.compile G and D in place
    memory_format: str = "channels-last"  # or "contiguous": the layout of G's and D's weights and activations
    cuda_graph: bool = False  # capture the step once as a CUDA graph and replay it (tganbench.cuda_graph)
    real_symmetries: tuple[str, ...] = ()  # random mirrors / quarter turns of the real images D sees, only them
    r1_gamma: float = 0.0  # weight of the R1 penalty on D's gradient at real images; 0 turns it off
    ema_beta: float = 0.0  # evaluate a moving average of G's weights with this decay; 0 evaluates G itself


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. Identical across strategies by construction: one config per run."""

    pair: str = "shapes"
    source_dir: str | None = None
    target_dir: str | None = None
    held_out: int | None = None
    data_root: str | None = None
    strategies: str = "all"
    shots: tuple[int, ...] = (100,)
    seeds: tuple[int, ...] = (0,)
    profile: str = "quick"
    architecture: str = "dcgan"  # NAME[k=v]; --width and --d-norm fill its parameters of those names
    resolution: int = 32
    width: int = 32
    z_dim: int = 64
    d_norm: str = "spectral"
    batch_size: int = 32
    lr: float = 4e-4
    augment: str = "none"  # augmentations crossed with the adversarial strategies: "none", NAME[k=v], ...
    real_symmetries: str = "auto"  # "auto": the pair's declared symmetries; or "none", or e.g. "xflip,rot90"
    r1_gamma: float = 0.0
    ema_beta: float = 0.99
    source_checkpoint: str = "shipped"
    source_steps: int = 1500
    source_seed: int = 0
    source_seeds: int = 1  # source checkpoints (seeds source_seed, source_seed + 1, ...); every cell runs on each
    target_steps: int = 2000
    eval_every: int = 500
    n_generated: int = 1000
    n_reference: int = 1000  # held-out test images: every reported value is scored on them
    n_validation: int = 1000  # further held-out images: only they choose the best step
    kid_subsets: int = 50
    kid_subset_size: int = 500
    feature_extractor: str = "shapes"
    feature_extractor_weights: str | None = None
    fd_target: float | None = None
    device: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    memory_format: str = "channels-last"
    cuda_graph: bool = False
    executor: str = "serial"  # where cells execute (tganbench.executors): serial, local:N, submitit[k=v], ray[k=v]:ADDR
    executor_setup: tuple[str, ...] = ()  # shell lines each Slurm job runs first (module load ..., source venv)
    plugins: tuple[str, ...] = field(default_factory=tuple)

    @property
    def checkpoint_file(self) -> str | None:
        """The path of the file every transfer strategy starts from (``--source-checkpoint PATH``), if any."""
        return None if self.source_checkpoint in SOURCE_CHECKPOINTS else self.source_checkpoint

    def train_config(self, steps: int) -> TrainConfig:
        """The optimisation settings of this run for a phase of ``steps`` steps (after :meth:`for_pair`)."""
        if self.real_symmetries == "auto":
            raise ValueError("real_symmetries 'auto' must be resolved with RunConfig.for_pair first")
        return TrainConfig(
            steps=steps, batch_size=self.batch_size, lr=self.lr, precision=self.precision, compile=self.compile,
            memory_format=self.memory_format, cuda_graph=self.cuda_graph, r1_gamma=self.r1_gamma, ema_beta=self.ema_beta, real_symmetries=parse_symmetries(self.real_symmetries),
        )

    def for_pair(self, symmetries: tuple[str, ...]) -> RunConfig:
        """This config with ``real_symmetries="auto"`` replaced by the pair's declared ``symmetries``."""
        if self.real_symmetries != "auto":
            return self
        return replace(self, real_symmetries=",".join(symmetries) or "none")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary (for the manifest)."""
        return asdict(self)


# Each profile overrides only what differs from the RunConfig defaults (which are `quick`).
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        width=8, batch_size=32, source_steps=40, target_steps=20, eval_every=10,
        n_generated=200, n_reference=200, n_validation=200, kid_subsets=10, kid_subset_size=100,
    ),
    "quick": {},
    # quick with 4x the target budget (256k images at batch 32, near DiffAugment's ~300k): scratch is
    # still improving at quick's last evaluation, so a verdict on scratch against transfer needs this one.
    "study": dict(target_steps=8000, eval_every=1000),
    "full": dict(
        width=64, batch_size=64, ema_beta=0.999, source_steps=20000, target_steps=5000, eval_every=500,
        n_generated=5000, n_reference=2000, kid_subsets=100, kid_subset_size=1000, seeds=(0, 1, 2, 3, 4),
    ),
    # The quick budget on StyleGAN2 at 32 px, sized for a CPU (width 16), with StyleGAN2's own learning rate
    # and an R1 penalty: with quick's 4e-4 and no R1 its source and every cell drew blobs (docs/strategies.md).
    # Starts from the shipped StyleGAN2 source on the embedded pairs.
    "stylegan2-quick": dict(architecture="stylegan2", width=16, lr=0.002, r1_gamma=0.1),
    # The few-shot papers' setting on a GPU: StyleGAN2 at 256 px with rosinality's FFHQ widths
    # (channel_multiplier 2: width 128 at 256 px; --resolution 64 --width 512 for 64 px) and FID on Inception;
    # lr 0.002 and R1 10 are rosinality's train.py defaults, which CDC's and DCL's code keep.
    "stylegan2-gpu": dict(
        architecture="stylegan2", resolution=256, width=128, z_dim=512, batch_size=16, lr=0.002, r1_gamma=10.0,
        ema_beta=0.999,
        source_steps=20000, target_steps=5000, eval_every=500, n_generated=5000, n_reference=2000,
        kid_subsets=100, kid_subset_size=1000, feature_extractor="inception", seeds=(0, 1, 2),
    ),
}

MEMORY_FORMATS = ("channels-last", "contiguous")
# "shipped": the checkpoint shipped for the pair when one fits the architecture, else pretrain in the run.
# Any other value of --source-checkpoint is the path of a checkpoint file (tganbench.checkpoints).
SOURCE_CHECKPOINTS = ("shipped", "pretrain")

POSITIVE_INTS = ("width", "z_dim", "batch_size", "source_steps", "target_steps", "eval_every",
                 "n_generated", "n_reference", "n_validation", "kid_subsets", "kid_subset_size", "source_seeds")


# The options of --executor submitit[k=v,...]: name -> (type, what it sets).
SUBMITIT_OPTIONS: dict[str, tuple[type, str]] = {
    "cluster": (str, "slurm, or local to run the jobs as processes here (default: slurm where sbatch exists)"),
    "partition": (str, "Slurm partition"),
    "account": (str, "Slurm account"),
    "time": (int, "minutes each cell's job may run"),
    "cpus": (int, "CPUs per job, and the torch threads each cell runs with"),
    "gpus": (int, "GPUs per job"),
    "mem": (float, "memory per job, GB"),
    "array": (int, "how many jobs of the array run at once"),
}


# The options of --executor ray[k=v,...][:ADDRESS]: name -> (type, what it sets).
RAY_OPTIONS: dict[str, tuple[type, str]] = {
    "cpus": (int, "CPUs each cell's task reserves, and the torch threads it runs with"),
    "gpus": (float, "GPUs each cell's task reserves (fractions share a GPU: 0.25 is four cells to a GPU)"),
}


def _executor_options(text: str, name: str, rest: str, known: dict[str, tuple[type, str]]) -> dict[str, Any]:
    """The ``k=v,...`` inside ``name[...]`` (``rest`` is what follows the bracket, ``]`` included), checked."""
    if not rest.endswith("]"):
        raise UsageError(f"malformed executor '{text}' (expected {name}[key=value,...])")
    options: dict[str, Any] = {}
    for item in filter(None, rest[:-1].split(",")):
        key, equals, value = item.partition("=")
        key = key.strip()
        if key not in known:
            raise UsageError(f"unknown {name} option '{key}' (options: {', '.join(known)})")
        kind = known[key][0]
        try:
            options[key] = kind(value.strip()) if equals else None
        except ValueError:
            options[key] = None
        zero_allowed = key == "gpus"
        bad = options[key] is None or (kind is not str and (options[key] < 0 if zero_allowed else options[key] <= 0))
        if bad:
            what = "a non-negative" if zero_allowed else "a positive"
            raise UsageError(f"{name} option '{key}' expects {what} {'number' if kind is float else kind.__name__}, "
                             f"got '{value}'")
    return options


def parse_executor(text: str) -> tuple[str, dict[str, Any]]:
    """``serial``, ``local:N``, ``submitit[k=v,...]`` or ``ray[k=v,...][:ADDRESS]`` as (name, options).

    Anything else is a UsageError.
    """
    text = text.strip()
    name, _, argument = text.partition(":")
    if name == "serial" and not argument:
        return "serial", {}
    if name == "local":
        workers = int(argument) if argument.strip().isdigit() else 0
        if workers >= 1:
            return "local", {"workers": workers}
        raise UsageError(f"--executor local:N needs a number of worker processes N >= 1, got '{text}'")
    if text == "submitit" or text.startswith("submitit["):
        options = _executor_options(text, "submitit", text[len("submitit["):], SUBMITIT_OPTIONS) if "[" in text else {}
        if options.get("cluster", "slurm") not in ("slurm", "local"):
            raise UsageError(f"submitit option 'cluster' must be slurm or local, got '{options['cluster']}'")
        return "submitit", options
    if text == "ray" or text.startswith(("ray[", "ray:")):
        options, address = {}, ""
        if text.startswith("ray["):
            bracket, _, address = text[len("ray["):].partition("]")
            options = _executor_options(text, "ray", bracket + "]", RAY_OPTIONS)
            if address and not address.startswith(":"):
                raise UsageError(f"malformed executor '{text}' (expected ray[key=value,...]:ADDRESS)")
        else:
            address = text[len("ray"):]
        address = address[1:]
        if address:
            options["address"] = address
        return "ray", options
    raise UsageError(f"--executor must be serial, local:N, submitit[key=value,...] or ray[key=value,...][:ADDRESS], "
                     f"got '{text}'")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"3"`` means seeds 0, 1, 2; ``"0,5,7"`` means exactly those seeds; ``"4,"`` means seed 4 alone.

    A bare number is a count, so one seed other than 0 is written as a
    one-element list with a trailing comma.
    """
    is_list = "," in text
    parts = text.split(",")
    if is_list and text.endswith(",") and len(parts) == 2:
        parts = parts[:1]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise UsageError(f"--seeds expects a count or a comma-separated list of integers, got '{text}'") from None
    if not is_list:
        if values[0] < 1:
            hint = " (for seed 0 alone write '0,')" if values[0] == 0 else ""
            raise UsageError(f"--seeds is a count and must be at least 1, got {values[0]}{hint}")
        return tuple(range(values[0]))
    if len(set(values)) != len(values) or min(values) < 0:
        raise UsageError(f"--seeds list must hold distinct non-negative integers, got '{text}'")
    return tuple(values)


def parse_shots(text: str) -> tuple[int, ...]:
    """``"100"`` or ``"10,100,1000"``: distinct positive shot counts, sorted ascending."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--shots expects a positive integer or a comma-separated list, got '{text}'") from None
    if min(values) < 1:
        raise UsageError(f"--shots must be a positive integer, got {min(values)}")
    if len(set(values)) != len(values):
        raise UsageError(f"--shots list must hold distinct values, got '{text}'")
    return tuple(sorted(values))


def resolve_config(profile: str = "quick", **overrides: Any) -> RunConfig:
    """Start from ``profile`` and apply the explicitly given ``overrides`` (None means "not given")."""
    if profile not in PROFILES:
        raise UsageError(f"unknown profile '{profile}' (profiles: {', '.join(PROFILES)})")
    known = {f.name for f in fields(RunConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - known)
    if unknown:
        raise UsageError(f"unknown setting '{unknown[0]}'")
    if "source_steps" in given and "source_checkpoint" not in given:
        given["source_checkpoint"] = "pretrain"  # asking for source steps means pretraining in the run
    config = replace(RunConfig(profile=profile), **{**PROFILES[profile], **given})
    if config.checkpoint_file is not None:
        path = _checked_checkpoint_path(config.checkpoint_file, config.source_seeds)
        config = replace(config, source_checkpoint=path)
    if isinstance(config.shots, int):
        config = replace(config, shots=(config.shots,))
    if not config.shots or min(config.shots) < 1:
        raise UsageError(f"--shots must be a positive integer, got {min(config.shots, default=0)}")
    for name in POSITIVE_INTS:
        value = getattr(config, name)
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be a positive integer, got {value}")
    if config.source_seed < 0:  # -1 marks the cells that start from no source (scratch)
        raise UsageError(f"--source-seed must be a non-negative integer, got {config.source_seed}")
    if (config.source_dir is None) != (config.target_dir is None):
        raise UsageError("--source and --target must be given together (two image folders)")
    if config.source_dir is not None:
        if "pair" in given and given["pair"] != "folders":
            raise UsageError("--pair cannot be combined with --source/--target (the folders are the pair)")
        config = replace(config, pair="folders")
    elif config.held_out is not None:
        raise UsageError("--held-out applies only to image folders (--source/--target)")
    if config.held_out is not None and config.held_out < 1:
        raise UsageError(f"--held-out must be a positive integer, got {config.held_out}")
    if config.fd_target is not None and not (math.isfinite(config.fd_target) and config.fd_target > 0):
        raise UsageError(f"--fd-target must be a positive number, got {config.fd_target}")
    if config.lr <= 0:
        raise UsageError(f"--lr must be positive, got {config.lr}")
    if config.real_symmetries != "auto":
        parse_symmetries(config.real_symmetries)
    if not (math.isfinite(config.r1_gamma) and config.r1_gamma >= 0):
        raise UsageError(f"--r1-gamma must be a non-negative number, got {config.r1_gamma}")
    if not (0 <= config.ema_beta < 1):
        raise UsageError(f"--ema-beta must be in [0, 1) (0 turns the moving average off), got {config.ema_beta}")
    if config.precision not in ("fp32", "bf16"):
        raise UsageError(f"--precision must be fp32 or bf16, got '{config.precision}'")
    if config.memory_format not in MEMORY_FORMATS:
        raise UsageError(f"--memory-format must be {' or '.join(MEMORY_FORMATS)}, got '{config.memory_format}'")
    if config.cuda_graph and config.compile:
        raise UsageError("--cuda-graph and --compile cannot be combined (choose one)")
    if config.cuda_graph and config.device == "cpu":
        raise UsageError("--cuda-graph needs a CUDA device, but --device is cpu")
    if config.device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got '{config.device}'")
    parse_executor(config.executor)
    return config


def _checked_checkpoint_path(text: str, source_seeds: int) -> str:
    """The absolute path of the checkpoint file ``--source-checkpoint`` names (workers may start elsewhere)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise UsageError(f"--source-checkpoint {text}: no such file (expected shipped, pretrain or the path of a "
                         "checkpoint file)")
    if not path.is_file():
        raise UsageError(f"--source-checkpoint {text} is not a file")
    if source_seeds > 1:
        raise UsageError(f"--source-seeds {source_seeds} needs that many pretrained sources, but --source-checkpoint "
                         f"{text} is one checkpoint; drop one of the two")
    return str(path.resolve())


def default_cache_dir() -> Path:
    """Where source checkpoints are cached: $TGANBENCH_CACHE, else ~/.cache/tganbench."""
    return Path(os.environ.get("TGANBENCH_CACHE", Path.home() / ".cache" / "tganbench"))
