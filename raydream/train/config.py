"""The training config every trial is built from (what a search space's `train:` may set)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-3  # Adam learning rate (report default 1e-3)
    weight_decay: float = 1e-4  # L2 penalty on all parameters
    batch_size: int = 128
    max_epochs: int = 10  # also ASHA's max_t
    switch_epoch: int = 0  # first epoch trained with SGD instead of Adam; 0 = never switch
    sgd_lr_factor: float = 0.1  # SGD starts at (current Adam lr) * this factor
    sgd_momentum: float = 0.9
    plateau_factor: float = 0.5  # ReduceLROnPlateau factor on validation MSE
    plateau_patience: int = 2  # epochs without improvement before the lr is cut
    seq_len: int = 110  # one-hot length: longer sequences trimmed, shorter zero-padded
    align: str = "left"  # "left": pad/trim on the 3' side; "right": on the 5' side
    rc_augment: bool = True  # replace each training sequence by its reverse complement w.p. 1/2
    seed: int = 0  # seeds weights, shuffling and augmentation
    train_rows: int = 0  # use only the first N training rows (0 = all); for smoke runs
    val_rows: int = 0  # use only the first N validation rows (0 = all)

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
        if self.train_rows < 0 or self.val_rows < 0:
            raise ValueError("train_rows and val_rows must be >= 0")
