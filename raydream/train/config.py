"""The training config every trial is built from (what a search space's `train:` may set)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from raydream.core.errors import ConfigError
from raydream.models import TREE, model_config, model_kind, model_output
from raydream.models.heads import BINS
from raydream.train.losses import BIN_ONLY, LOSSES

DRIVER_RESOURCE = "TRIAL_DRIVER"  # a custom resource that marks the nodes trial drivers may run on
DRIVER_SHARE = 0.01  # of DRIVER_RESOURCE per trial driver; the resource only tags drivers

OPTIMIZERS = ("adam_sgd", "adamw_onecycle", "cosine_swa")  # see raydream.train.optim
PRECISIONS = ("fp32", "bf16", "fp16")  # see raydream.train.steps.autocast
PADS = ("zeros", "plasmid")  # what fills the 5' side of right-aligned input (raydream.data.construct)
# CPUs each Ray Train worker reserves, beyond its own, for the Ray Data tasks that read its
# data. The read tasks ask Ray for no CPU of their own (raydream.train.loop.read_shards): they
# run in this reservation, so a trial holds everything it needs before it starts, and no read
# waits for a CPU that another trial, or another search on the same cluster, has taken.
DATA_CPUS_PER_WORKER = 1
# Seconds a trial may report no epoch before it fails (raydream.train.trial); a trial's limit
# is at least three times its slowest epoch.
DEFAULT_STALL_TIMEOUT_S = 600.0


def uses_local_mode(model: str, num_workers: int) -> bool:
    """Whether trials of `model` with `num_workers` workers run their Train run in Ray Train's
    local mode: network trials of one worker.

    A Train run with worker actors starts a controller process and a worker process, imports
    torch and Ray Train in both, sets up a process group and its placement group's cleaner:
    about 7 s before a trial's first batch on 2 cores, for every trial, which ASHA cannot
    stop. In local mode the trial's process, which Tune reuses from trial to trial, runs the
    same `train_loop_per_worker` through the same `ray.train` calls, and the trial holds the
    worker's resources. Runs of several workers (data-parallel) and LightGBM's runs keep
    their worker actors.
    """
    return num_workers == 1 and model_kind(model) != TREE


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-3  # Adam learning rate (report default 1e-3)
    weight_decay: float = 1e-4  # L2 penalty on all parameters
    batch_size: int = 128
    max_epochs: int = 10  # also ASHA's max_t
    optimizer: str = "adam_sgd"  # adam_sgd | adamw_onecycle | cosine_swa (raydream.train.optim)
    switch_epoch: int = 0  # first epoch trained with SGD instead of Adam; 0 = never switch
    sgd_lr_factor: float = 0.1  # SGD starts at (current Adam lr) * this factor
    sgd_momentum: float = 0.9
    plateau_factor: float = 0.5  # ReduceLROnPlateau factor on validation MSE
    plateau_patience: int = 2  # epochs without improvement before the lr is cut
    onecycle_pct_start: float = 0.3  # adamw_onecycle: fraction of steps spent warming up
    swa_start: int = 6  # cosine_swa: first epoch whose weights are averaged
    swa_lr: float = 1e-4  # cosine_swa: constant lr while averaging
    seq_len: int = 110  # one-hot length: longer sequences trimmed, shorter zero-padded
    align: str = "left"  # "left": pad/trim on the 3' side; "right": on the 5' side
    pad: str = "zeros"  # 5' padding of right-aligned input: "zeros", or "plasmid" (LegNet: the construct upstream)
    rc_augment: bool = True  # replace each training sequence by its reverse complement w.p. 1/2
    rc_test_average: bool = False  # predict the mean of the forward and reverse-complement passes
    label_noise_sd: float = 0.0  # label smoothing: Gaussian noise (bins) added to training targets
    round_labels: bool = False  # train on labels rounded to integer bins
    input_flags: bool = False  # add LegNet's reverse-strand and whole-number-label channels
    loss: str = "mse"  # mse | huber | soft_kl | cross_entropy (the last two: bin models)
    huber_delta: float = 1.0  # Huber loss: quadratic within this many bins
    soft_label_sd: float = 0.5  # soft_kl: sd (bins) of the Normal around each label
    soft_label_shift: float = 0.0  # soft_kl: shift (bins) of its mean
    density_weights: bool = False  # weight rows by 1 / density of their label (raydream.train.weights)
    weight_cap: float = 10.0  # density_weights: largest weight, in units of the mean weight
    weight_bins: int = 18  # density_weights: histogram bins over the training labels
    head_scalars: bool = False  # feed GC fraction and melting temperature to the network's head
    precision: str = "fp32"  # training math: fp32, or bf16 / fp16 mixed precision (fp16: CUDA only)
    seed: int = 0  # seeds weights, shuffling and augmentation
    train_rows: int = 0  # use only the first N training rows (0 = all; several workers: N/workers of each one's shard)
    val_rows: int = 0  # use only the first N validation rows (0 = all)
    # Keep each worker's training rows in memory, encoded, after its first epoch reads them
    # through Ray Data, when they take at most a quarter of the memory free on its node;
    # False reads them through Ray Data every epoch (raydream.train.loop.TrainingRows).
    cache_rows: bool = True

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("lr must be > 0 and weight_decay >= 0")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (BatchNorm), got {self.batch_size}")
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.switch_epoch < 0:
            raise ValueError(f"switch_epoch must be >= 0 (0 = never), got {self.switch_epoch}")
        if not 0 < self.plateau_factor < 1 or self.plateau_patience < 0:
            raise ValueError("plateau_factor must be in (0, 1) and plateau_patience >= 0")
        if self.seq_len < 8:
            raise ValueError(f"seq_len must be >= 8, got {self.seq_len}")
        if self.align not in ("left", "right"):
            raise ValueError(f"align must be 'left' or 'right', got {self.align!r}")
        if self.pad not in PADS:
            raise ValueError(f"pad must be one of {', '.join(PADS)}, got {self.pad!r}")
        if self.pad == "plasmid" and self.align != "right":
            raise ValueError("pad 'plasmid' fills the 5' side of right-aligned input; set align: right")
        if self.train_rows < 0 or self.val_rows < 0:
            raise ValueError("train_rows and val_rows must be >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 < self.onecycle_pct_start < 1 or self.swa_start < 1 or self.swa_lr <= 0:
            raise ValueError("onecycle_pct_start must be in (0, 1), swa_start >= 1 and swa_lr > 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.huber_delta <= 0 or self.soft_label_sd <= 0:
            raise ValueError("huber_delta and soft_label_sd must be > 0")
        if self.label_noise_sd < 0:
            raise ValueError(f"label_noise_sd must be >= 0, got {self.label_noise_sd}")
        if self.weight_cap < 1 or self.weight_bins < 1:
            raise ValueError("weight_cap must be >= 1 and weight_bins >= 1")


# The TrainConfig fields that tree models use; their other settings live in model_config.
TREE_TRAIN_FIELDS = ("max_epochs", "seed", "train_rows", "val_rows", "density_weights", "weight_cap", "weight_bins")


def input_channels(train: TrainConfig) -> int:
    """Channels of the encoded input: one-hot, plus two flags with `input_flags`."""
    return 6 if train.input_flags else 4


def build_model_config(name: str, values: Mapping[str, Any] | None, train: TrainConfig, where: str = "model_config") -> Any:
    """The typed config of model `name`, with `in_channels` derived from the training config
    (networks; a tree model's config is built from `values` alone).

    Raises:
        ConfigError: `in_channels` set by hand, or a loss that the model's output cannot take.
    """
    values = dict(values or {})
    if model_kind(name) == TREE:
        return model_config(name, values, where)
    if "in_channels" in values:
        raise ConfigError(f"{where}: in_channels is derived from train.input_flags; do not set it")
    if train.loss in BIN_ONLY and model_output(name) != BINS:
        raise ConfigError(f"{where}: loss {train.loss!r} needs a model with bin outputs (cls_cnn, legnet); {name!r} is a regression model")
    return model_config(name, {**values, "in_channels": input_channels(train)}, where)


@dataclass(frozen=True)
class TrialConfig:
    """One trial's configuration, typed once where the trial starts (`trial_config`) and
    handed as it is to the Train workers: the model's name, its config values as the space
    gave them (the builder of a Train run adds what it learns from the data, such as the
    starting output, then types them with `build_model_config`) and the typed training config."""

    model: str
    model_config: Mapping[str, Any]
    train: TrainConfig


def trial_config(config: Mapping[str, Any], where: str = "trial config") -> TrialConfig:
    """A trial's resolved config ({"model", "model_config", "train", ...}) typed.

    Raises:
        ConfigError: an unknown model, key or value (naming `where`).
    """
    from raydream.core.typed import from_dict

    if not isinstance(config.get("model"), str):
        raise ConfigError(f"{where}: expected a model name under 'model'")
    return TrialConfig(config["model"], dict(config.get("model_config") or {}),
                       from_dict(TrainConfig, config.get("train"), f"{where}: train"))
