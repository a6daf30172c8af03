"""The LightningModule base shared by every training stage: steps, logging, optimizer, schedule, RNG state.

A stage module only says how a batch becomes a loss (:meth:`StageModule.step`), which parameters train
(:meth:`StageModule.trainable_parameters`) and which network it produces (:attr:`StageModule.net`);
everything else — Adam, the learning-rate schedule of its :class:`~structpose.train.config.StageConfig`,
the ``train/*`` and ``val/*`` logs, and the random-generator state that makes a resumed run identical
to an uninterrupted one — lives here once.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch import nn

from structpose.errors import TrainingError
from structpose.metrics import mpjpe
from structpose.train.config import StageConfig
from structpose.train.optim import build_optimizer

RNG_KEY = "structpose_rng_states"


def mpjpe_mm(pred_mm: torch.Tensor, true_mm: torch.Tensor) -> torch.Tensor:
    """:func:`structpose.metrics.mpjpe` of a batch, poses (B, J, 3) mm, as a float32 tensor (mm) to log."""
    return mpjpe(pred_mm.float(), true_mm.float(), reduce=False).mean()


def all_finite(net: nn.Module) -> bool:
    """Whether every parameter and floating buffer of ``net`` is finite."""
    tensors = [*net.parameters(), *(b for b in net.buffers() if b.is_floating_point())]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _rng_states() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """torch's generator states (CPU and every CUDA device): all the randomness training draws."""
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_states(states: dict[str, torch.Tensor | list[torch.Tensor]]) -> None:
    torch.set_rng_state(states["cpu"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class StageModule(L.LightningModule):
    """Base of the stage modules. Subclasses set ``self.net`` (the network the stage trains and exports)
    and implement :meth:`step` (and :meth:`trainable_parameters` if not all of them train).

    ``stage`` (the optimizer settings) is assigned by :func:`structpose.train.engine.fit_stage` before
    fitting. Checkpoints carry torch's RNG state at the end of the epoch, restored on resume, so random
    crops, dropout, AE noise and the shuffling of a resumed run match the uninterrupted run exactly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stage: StageConfig | None = None
        self.stage_name = "stage"  # the run folder's name of the stage, for messages (set by fit_stage)
        self._frozen: list[nn.Parameter] = []

    net: nn.Module  # the network this stage trains and exports

    # ---- what a stage defines ----------------------------------------------------------------
    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters the optimizer updates (default: all of ``net``'s)."""
        return iter(self.net.parameters())

    def step(self, batch: dict[str, torch.Tensor], train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A batch (at least ``pose3d`` (B, 17, 3) mm) -> (scalar loss, detached metrics). With ``train``
        False the metrics include ``mpjpe_mm``."""
        raise NotImplementedError

    # ---- Lightning hooks -------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """While fitting, only :meth:`trainable_parameters` require gradients (so DDP reduces exactly
        those); :meth:`teardown` unfreezes the others again."""
        trainable = {id(p) for p in self.trainable_parameters()}
        self._frozen = [p for p in self.parameters() if p.requires_grad and id(p) not in trainable]
        for p in self._frozen:
            p.requires_grad_(False)

    def teardown(self, stage: str) -> None:
        for p in self._frozen:
            p.requires_grad_(True)
        self._frozen = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self.step(batch, train=True)  # the parts are logged in validation (a log call costs ~1 ms)
        finite = self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True)
        if not finite:  # every rank stops together: none waits for the others in a collective
            raise TrainingError(self._non_finite_message(batch, loss))
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch["pose3d"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, parts = self.step(batch, train=False)
        size = len(batch["pose3d"])
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=size)
        for key, value in parts.items():
            self.log(f"val/{key}", value, prog_bar=key == "mpjpe_mm", sync_dist=True, batch_size=size)

    def configure_optimizers(self) -> dict:
        if self.stage is None:
            raise RuntimeError("no StageConfig: train stage modules with structpose.train.engine.fit_stage")
        trainer = self.trainer
        total_steps = int(trainer.estimated_stepping_batches)  # also sets up the train loader
        steps_per_epoch = max(1, int(trainer.num_training_batches))
        return build_optimizer(list(self.trainable_parameters()), self.stage, total_steps, steps_per_epoch)

    def _non_finite_message(self, batch: dict[str, torch.Tensor], loss: torch.Tensor) -> str:
        """Stage, step and cause of a non-finite training loss (the data, the weights, or the step size)."""
        where = f"stage {self.stage_name!r}, step {self.global_step}: the training loss is {float(loss.detach())}"
        bad = [k for k, v in batch.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            cause = f"the batch holds NaN/inf in {bad}: the dataset is damaged; rebuild it"
        elif not all_finite(self.net):
            cause = "the weights became non-finite at an earlier step (diverged): lower this stage's lr"
        else:
            lr = self.stage.lr if self.stage is not None else "?"
            cause = f"the loss overflowed (diverged at lr={lr}): lower this stage's lr (--set SECTION.lr=...)"
        return f"{where}; {cause}. Nothing of this step was saved; start a new run once it is fixed"

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if not all_finite(self.net):  # no checkpoint of weights that could only produce NaN
            raise TrainingError(f"stage {self.stage_name!r}, step {self.global_step}: the weights hold NaN/inf "
                                "(training diverged); no checkpoint was written: lower this stage's lr")  # fmt: skip
        checkpoint[RNG_KEY] = _rng_states()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Lightning calls this before it builds the first training iterator (whose sampler and workers draw
        # their seeds), so the resumed run draws exactly what the uninterrupted one would have
        if RNG_KEY in checkpoint:
            _set_rng_states(checkpoint[RNG_KEY])
