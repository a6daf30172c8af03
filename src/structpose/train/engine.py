"""Fitting one stage with a ``lightning.Trainer``: logging, checkpoints, resume, determinism, hardware."""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from structpose.errors import TrainingError
from structpose.train.base import StageModule, all_finite
from structpose.train.config import StageConfig, TrainerConfig
from structpose.train.export import save_weights
from structpose.train.layout import LAST, LOGS, WEIGHTS

__all__ = ["LAST", "LOGS", "WEIGHTS", "KeepBest", "fit_stage", "make_trainer", "readable_checkpoint"]


def _loggers(run_dir: Path, name: str) -> list[Logger]:
    """CSV logs in ``run_dir/logs/name/version_k/metrics.csv`` (k counts the runs, a resume included), plus
    TensorBoard's there when it is installed."""
    loggers: list[Logger] = [CSVLogger(run_dir / LOGS, name=name)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(run_dir / LOGS, name=name))
    return loggers


def make_trainer(
    stage: StageConfig, stage_dir: Path, loggers: list[Logger], run: TrainerConfig, callbacks: list[Callback]
) -> L.Trainer:
    """The Trainer of a stage: ``stage``'s budget; ``run``'s determinism, precision and hardware (passed
    straight to Lightning, so ``strategy="ddp"`` under torchrun or SLURM uses its environment detection);
    ``last.ckpt`` (and nothing else) rewritten in ``stage_dir`` at every epoch end; the learning rate of every
    step logged (``lr-Adam``: the record that both CNN arms follow one curve); extra ``callbacks``."""
    # the latest checkpoint (no monitor, top-1) under the name "last": one atomic write per epoch
    checkpoint = ModelCheckpoint(dirpath=stage_dir, filename=Path(LAST).stem, save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False)  # fmt: skip
    return L.Trainer(
        max_epochs=stage.epochs,
        max_steps=-1 if stage.max_steps is None else stage.max_steps,
        accelerator=run.accelerator,
        devices=run.devices,
        num_nodes=run.num_nodes,
        strategy=run.strategy,
        precision=run.precision,
        deterministic=run.deterministic,
        callbacks=[*callbacks, checkpoint, LearningRateMonitor(logging_interval="step")],
        logger=loggers,
        default_root_dir=stage_dir,
        enable_progress_bar=run.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,  # a train/loss point per step in the CSV log (the loss curves)
    )


class KeepBest(Callback):
    """Keeps (a CPU copy of) the weights of ``module.net`` at the validation epoch of least ``monitor``, and
    puts them back when fitting ends: a stage whose ``select`` is ``best`` ends with the network that
    validated best, not the last one. Its state (best value, epoch, weights) is in every checkpoint, so a
    resumed stage selects exactly as an uninterrupted one."""

    def __init__(self, monitor: str = "val/mpjpe_mm") -> None:
        self.monitor = monitor
        self.best = float("inf")
        self.epoch = -1
        self.weights: dict[str, torch.Tensor] = {}

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not float(value) < self.best:
            return
        self.best, self.epoch = float(value), trainer.current_epoch
        self.weights = {k: v.detach().cpu().clone() for k, v in module.net.state_dict().items()}

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.weights:
            module.net.load_state_dict(self.weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "epoch": self.epoch, "weights": self.weights}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.epoch, self.weights = float(state["best"]), int(state["epoch"]), dict(state["weights"])


def readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint that loads (``weights_only``: nothing is unpickled but tensors and
    plain containers). A damaged one (truncated by a full disk, say) is moved aside to ``last.ckpt.damaged``
    with a warning naming it, so the stage starts again from its beginning instead of failing."""
    if not path.is_file():
        return False
    try:
        torch.load(path, map_location="cpu", weights_only=True)
        return True
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
        aside = path.with_name(path.name + ".damaged")
        with contextlib.suppress(FileNotFoundError):  # another rank moved it already
            path.replace(aside)
        warnings.warn(f"{path}: damaged or unsafe checkpoint ({type(err).__name__}: {err}); moved to {aside.name}, "
                      "this stage starts again from its beginning", stacklevel=2)  # fmt: skip
        return False


def fit_stage(
    module: StageModule,
    datamodule: L.LightningDataModule,
    stage_cfg: StageConfig,
    run_dir: Path,
    name: str,
    resume: bool = False,
    trainer_cfg: TrainerConfig | None = None,
    callbacks: list[Callback] | None = None,
) -> StageModule:
    """Train ``module`` for one stage in ``run_dir/name``; returns it, trained, and writes ``model.safetensors``
    (the weights of ``module.net``) there.

    ``stage_cfg`` sets the epochs/``max_steps`` of the Trainer, ``datamodule.batch_size`` and the
    module's optimizer and schedule. ``resume``: continue from ``run_dir/name/last.ckpt`` when it exists
    (model, optimizer, schedule, loop and RNG state), which ends with the same weights as an uninterrupted
    run; otherwise start afresh. Everything is seeded with ``trainer_cfg.seed`` first, and torch uses
    ``trainer_cfg.threads`` CPU threads while fitting. ``callbacks``: extra Lightning callbacks (early
    stopping, profiling, ...). ``stage_cfg.select == "best"``: the weights written are those of the epoch
    of least validation MPJPE (:class:`KeepBest`). Logs: ``run_dir/logs/name/``.
    """
    run = trainer_cfg or TrainerConfig()
    stage_dir = Path(run_dir) / name
    L.seed_everything(run.seed, workers=True, verbose=False)
    module.stage = stage_cfg
    module.stage_name = name
    module.train()  # Lightning keeps the modes it is given
    datamodule.batch_size = stage_cfg.batch_size
    extra = [*(callbacks or []), *([KeepBest()] if stage_cfg.select == "best" else [])]
    trainer = make_trainer(stage_cfg, stage_dir, _loggers(Path(run_dir), name), run, extra)
    last = stage_dir / LAST
    ckpt = last if resume and readable_checkpoint(last) else None
    threads = torch.get_num_threads()
    torch.set_num_threads(run.threads or threads)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    finally:
        torch.set_num_threads(threads)
    if not all_finite(module.net):
        raise TrainingError(f"stage {name!r}: the trained weights hold NaN/inf; {WEIGHTS} was not written", stage_dir)
    if trainer.is_global_zero:
        save_weights(module.net, stage_dir / WEIGHTS)
    trainer.strategy.barrier()
    return module
