"""Adam and the per-step learning-rate schedule of a :class:`~structpose.train.config.StageConfig`."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, CosineAnnealingWarmRestarts, LRScheduler

from structpose.train.config import StageConfig


def make_adam(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, the fused implementation when the parameters' device supports it (CPU and CUDA do)."""
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, stage: StageConfig, total_steps: int, steps_per_epoch: int
) -> LRScheduler | None:
    """The stage's schedule, stepped once per optimizer step; ``None`` for a constant rate.

    ``cosine``: from ``lr`` to 0 over ``total_steps``. ``cosine_restarts``: cycles of
    ``restart_period * steps_per_epoch`` steps, each from ``lr`` to 0 (Loshchilov & Hutter, SGDR).
    """
    if stage.schedule == "constant":
        return None
    if stage.schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    if stage.schedule == "cosine_restarts":
        return CosineAnnealingWarmRestarts(optimizer, T_0=max(1, stage.restart_period * steps_per_epoch))
    raise ValueError(f"unknown schedule {stage.schedule!r}")


def build_optimizer(params: list[nn.Parameter], stage: StageConfig, total_steps: int, steps_per_epoch: int) -> dict:
    """What ``LightningModule.configure_optimizers`` returns for ``stage``: Adam and its per-step schedule."""
    optimizer = make_adam(params, stage.lr, stage.weight_decay)
    schedule = make_schedule(optimizer, stage, total_steps, steps_per_epoch)
    if schedule is None:
        return {"optimizer": optimizer}
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
