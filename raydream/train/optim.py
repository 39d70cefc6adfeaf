"""The team report's optimiser recipe: Adam with ReduceLROnPlateau, then SGD at lr * 0.1.

Plain PyTorch; the training loop calls `start_epoch` before and `end_epoch` after each epoch.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from raydream.train.config import TrainConfig


class AdamThenSGD:
    """Adam until `switch_epoch`, then SGD with momentum at the current lr times `sgd_lr_factor`.

    ReduceLROnPlateau watches the validation loss throughout and restarts with the new
    optimiser at the switch.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], config: TrainConfig):
        self.params = [p for p in params if p.requires_grad]
        self.config = config
        self.phase = "adam"
        self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        self.plateau = self._plateau()

    def _plateau(self) -> ReduceLROnPlateau:
        c = self.config
        return ReduceLROnPlateau(self.optimizer, mode="min", factor=c.plateau_factor, patience=c.plateau_patience)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def start_epoch(self, epoch: int) -> None:
        """Switch to SGD when `epoch` (1-based) reaches `switch_epoch`."""
        c = self.config
        if self.phase == "adam" and c.switch_epoch and epoch >= c.switch_epoch:
            self.optimizer = torch.optim.SGD(
                self.params,
                lr=self.lr * c.sgd_lr_factor,
                momentum=c.sgd_momentum,
                weight_decay=c.weight_decay,
            )
            self.plateau = self._plateau()
            self.phase = "sgd"

    def end_epoch(self, val_loss: float) -> None:
        """Feed the epoch's validation loss to ReduceLROnPlateau."""
        self.plateau.step(val_loss)

    def state_dict(self) -> dict:
        return {"phase": self.phase, "optimizer": self.optimizer.state_dict(), "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state["phase"] == "sgd" and self.phase == "adam":
            c = self.config
            self.optimizer = torch.optim.SGD(self.params, lr=c.lr, momentum=c.sgd_momentum, weight_decay=c.weight_decay)
            self.plateau = self._plateau()
            self.phase = "sgd"
        self.optimizer.load_state_dict(state["optimizer"])
        self.plateau.load_state_dict(state["plateau"])
