"""Optimiser recipes; plain PyTorch.

- "adam_sgd" (the team report's): Adam with ReduceLROnPlateau on validation loss, switching
  at `switch_epoch` to SGD with momentum at the current lr times `sgd_lr_factor`.
- "adamw_onecycle" (LegNet's): AdamW with a one-cycle schedule peaking at `lr`, stepped
  every batch.
- "cosine_swa": Adam with cosine annealing, then from `swa_start` a constant `swa_lr` and
  stochastic weight averaging; the averaged model (BatchNorm statistics recomputed on
  training data) is the one evaluated and checkpointed.

The training loop calls `start_epoch` before an epoch, `after_batch` after every optimiser
step, `end_epoch` with the validation loss, and evaluates `eval_model(model, batches_fn)`.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau
from torch.optim.swa_utils import SWALR, AveragedModel

from raydream.train.config import OPTIMIZERS, TrainConfig


class Recipe:
    """Base recipe: one optimiser, nothing scheduled."""

    phase = "adam"

    def __init__(self, params: Iterable[nn.Parameter], config: TrainConfig):
        self.params = [p for p in params if p.requires_grad]
        self.config = config
        self.optimizer: torch.optim.Optimizer = torch.optim.Adam(
            self.params, lr=config.lr, weight_decay=config.weight_decay
        )
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        # (Off without CUDA, where fp16 training is refused anyway; it would only warn.)
        self.scaler = (torch.amp.GradScaler("cuda", enabled=torch.cuda.is_available())
                       if config.precision == "fp16" else None)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def start_epoch(self, epoch: int) -> None:
        """Called before epoch `epoch` (1-based)."""

    def step(self, loss: torch.Tensor) -> None:
        """One optimiser step on a batch's loss (scaled under fp16 precision), then `after_batch`."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.after_batch()

    def after_batch(self) -> None:
        """Called after every optimiser step."""

    def end_epoch(self, val_loss: float) -> None:
        """Called after validation with the epoch's validation loss."""

    def eval_model(self, model: nn.Module, train_batches: Callable[[], Iterable[torch.Tensor]]) -> nn.Module:
        """The model to validate and checkpoint. train_batches() yields training inputs."""
        return model

    def state_dict(self) -> dict:
        state = {"phase": self.phase, "optimizer": self.optimizer.state_dict()}
        return {**state, "scaler": self.scaler.state_dict()} if self.scaler is not None else state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


class AdamThenSGD(Recipe):
    """Adam until `switch_epoch`, then SGD with momentum at the current lr times
    `sgd_lr_factor`; ReduceLROnPlateau throughout, restarted at the switch."""

    def __init__(self, params: Iterable[nn.Parameter], config: TrainConfig):
        super().__init__(params, config)
        self.phase = "adam"
        self.plateau = self._plateau()

    def _plateau(self) -> ReduceLROnPlateau:
        c = self.config
        return ReduceLROnPlateau(self.optimizer, mode="min", factor=c.plateau_factor, patience=c.plateau_patience)

    def _switch(self, lr: float) -> None:
        c = self.config
        self.optimizer = torch.optim.SGD(self.params, lr=lr, momentum=c.sgd_momentum, weight_decay=c.weight_decay)
        self.plateau = self._plateau()
        self.phase = "sgd"

    def start_epoch(self, epoch: int) -> None:
        """Switch to SGD when `epoch` (1-based) reaches `switch_epoch`."""
        c = self.config
        if self.phase == "adam" and c.switch_epoch and epoch >= c.switch_epoch:
            self._switch(self.lr * c.sgd_lr_factor)

    def end_epoch(self, val_loss: float) -> None:
        self.plateau.step(val_loss)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state["phase"] == "sgd" and self.phase == "adam":
            self._switch(self.config.lr)
        super().load_state_dict(state)
        self.plateau.load_state_dict(state["plateau"])


class AdamWOneCycle(Recipe):
    """AdamW with OneCycleLR over `max_epochs * steps_per_epoch` batches."""

    phase = "adamw"

    def __init__(self, params: Iterable[nn.Parameter], config: TrainConfig, steps_per_epoch: int):
        super().__init__(params, config)
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.total_steps = max(1, config.max_epochs * steps_per_epoch)
        self.schedule = OneCycleLR(
            self.optimizer, max_lr=config.lr, total_steps=self.total_steps, pct_start=config.onecycle_pct_start
        )

    def after_batch(self) -> None:
        # The step count is an estimate from the row count; never run past the cycle.
        if self.schedule.last_epoch + 1 < self.total_steps:
            self.schedule.step()

    def state_dict(self) -> dict:
        return {**super().state_dict(), "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.schedule.load_state_dict(state["schedule"])


class CosineSWA(Recipe):
    """Adam with cosine annealing to `swa_start`, then SWALR at `swa_lr` and weight averaging."""

    phase = "cosine"

    def __init__(self, model: nn.Module, config: TrainConfig):
        super().__init__(model.parameters(), config)
        self.cosine = CosineAnnealingLR(self.optimizer, T_max=max(1, config.swa_start - 1))
        self.swa_schedule = SWALR(self.optimizer, swa_lr=config.swa_lr, anneal_epochs=1)
        # On the model's device, its step counter (n_averaged) included: by default
        # AveragedModel keeps that counter on the CPU whatever the model's device.
        self.averaged = AveragedModel(model, device=next(model.parameters()).device)

    def start_epoch(self, epoch: int) -> None:
        if epoch >= self.config.swa_start:
            self.phase = "swa"

    def end_epoch(self, val_loss: float) -> None:
        if self.phase == "swa":
            self.swa_schedule.step()
        else:
            self.cosine.step()

    def eval_model(self, model: nn.Module, train_batches: Callable[[], Iterable[torch.Tensor]]) -> nn.Module:
        if self.phase != "swa":
            return model
        self.averaged.update_parameters(model)
        _update_batchnorm(self.averaged, train_batches())
        return self.averaged.module

    def state_dict(self) -> dict:
        return {**super().state_dict(), "averaged": self.averaged.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.averaged.load_state_dict(state["averaged"])


@torch.no_grad()
def _update_batchnorm(model: nn.Module, inputs: Iterable[torch.Tensor]) -> None:
    """Recompute BatchNorm running statistics of `model` as a cumulative average over inputs
    (what torch.optim.swa_utils.update_bn does, for inputs that are already tensors)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = {}
    for m in norms:
        m.reset_running_stats()
        momenta[m] = m.momentum
        m.momentum = None  # cumulative moving average
    was_training = model.training
    model.train()
    for x in inputs:
        model(x)
    for m in norms:
        m.momentum = momenta[m]
    model.train(was_training)


def make_recipe(model: nn.Module, config: TrainConfig, steps_per_epoch: int) -> Recipe:
    """The recipe named by `config.optimizer` for `model`'s parameters."""
    if config.optimizer == "adam_sgd":
        return AdamThenSGD(model.parameters(), config)
    if config.optimizer == "adamw_onecycle":
        return AdamWOneCycle(model.parameters(), config, steps_per_epoch)
    if config.optimizer == "cosine_swa":
        return CosineSWA(model, config)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
