"""The paper's training pipeline end to end, resumable stage by stage, and prediction with its networks.

The run directory holds ``config.yaml`` (the resolved configuration), a folder per stage (``last.ckpt``,
rewritten every epoch; ``model.safetensors`` once the stage is done) and ``logs/STAGE/version_k/`` (CSV
metrics). A resumed pipeline loads the finished stages and continues the one it was in. Stages:

1. ``ae_pretrain{i}`` for each AE layer ``i`` (greedy; skipped for a one-layer AE, whose pre-training
   would be its fine-tuning), then ``ae_finetune``: the pose auto-encoder on
   the training poses;
2. ``latent``: the CNN regresses the frozen AE's code ``h_L``;
3. ``finetune``: the AE's decoder is appended and the whole ``StructuredNet`` trained on the pose;
4. ``direct``: the baseline ``DirectCNN`` regresses the pose, with the budget and schedule of 2 and 3.
"""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader, Dataset

from structpose.errors import ConfigError
from structpose.files import write_text
from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.cnn import PaperCNN
from structpose.models.normalize import PoseNormalizer
from structpose.models.structured import DirectCNN, StructuredNet
from structpose.train.ae_module import AEModule
from structpose.train.base import StageModule
from structpose.train.config import ExperimentConfig, StageConfig
from structpose.train.data import PoseDataModule, PoseImageDataModule, Splits, load_splits
from structpose.train.engine import WEIGHTS, fit_stage
from structpose.train.export import PosePredictor, load_weights
from structpose.train.image_module import ImageRegressionModule

CONFIG_FILE = "config.yaml"


def check_config(cfg: ExperimentConfig, run_dir: Path) -> None:
    """The resume rule's first half: a run folder that holds a ``config.yaml`` continues only with that
    same configuration. Raises :class:`~structpose.errors.ConfigError` (nothing is written) otherwise."""
    path = Path(run_dir) / CONFIG_FILE
    if path.is_file() and path.read_text() != cfg.to_yaml():
        raise ConfigError("differs from this run's configuration: resume with the same preset, --data and --set "
                          "overrides, or start a new run with another --out", path)  # fmt: skip


def _check_config(cfg: ExperimentConfig, run_dir: Path, resume: bool) -> None:
    """Write the resolved config to ``run_dir``; a resumed run must have been started with the same one."""
    if resume:
        check_config(cfg, run_dir)
    rank_zero_only(write_text)(run_dir / CONFIG_FILE, cfg.to_yaml())


def train_all(
    cfg: ExperimentConfig, run_dir: Path, resume: bool = False, splits: Splits | None = None
) -> dict[str, nn.Module]:
    """Run the pipeline (module docstring) in ``run_dir``; returns the pose predictors in eval mode,
    each mapping normalised crops (B, 3, crop, crop) to poses (B, 17, 3) mm (see :func:`predict`):
    ``ours_noft`` (StructuredNet before fine-tuning), ``ours`` (after) and ``cnn`` (DirectCNN).
    ``splits``: the datasets of :func:`load_splits` for ``cfg``, when the caller has them already."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(cfg, run_dir, resume)
    seed = cfg.trainer.seed

    def stage(module: StageModule, data: L.LightningDataModule, stage_cfg: StageConfig, name: str) -> None:
        weights = run_dir / name / WEIGHTS
        if resume and weights.is_file():
            load_weights(module.net, weights)
        else:
            fit_stage(module, data, stage_cfg, run_dir, name, resume=resume, trainer_cfg=cfg.trainer)

    splits = splits or load_splits(cfg.data, cfg.cnn.in_size)
    normalizer = PoseNormalizer.from_poses(splits.train.poses3d)
    poses = PoseDataModule.from_splits(splits, cfg.ae_finetune.batch_size)
    images = PoseImageDataModule.from_splits(splits, cfg.latent.batch_size, cfg.data.num_workers)

    L.seed_everything(seed, verbose=False)
    ae = PoseAutoencoder(cfg.ae, normalizer.scale_mm)
    if ae.num_layers > 1:  # greedy pre-training; for one layer it is the same objective as the fine-tuning
        for layer in range(ae.num_layers):
            stage(AEModule(ae, normalizer, layer=layer), poses, cfg.ae_pretrain, f"ae_pretrain{layer}")
    stage(AEModule(ae, normalizer), poses, cfg.ae_finetune, "ae_finetune")

    def image_stage(net: nn.Module, stage_cfg: StageConfig, name: str, latent: bool = False) -> None:
        module = ImageRegressionModule(net, "latent" if latent else "pose", normalizer, cfg.cnn.crop,
                                       ae if latent else None, cfg.trainer.channels_last)  # fmt: skip
        stage(module, images, stage_cfg, name)

    L.seed_everything(seed, verbose=False)
    cnn = PaperCNN(cfg.cnn, ae.latent_dim)
    image_stage(cnn, cfg.latent, "latent", latent=True)
    ours_noft = StructuredNet(cnn, ae.decoder(), normalizer)
    ours = copy.deepcopy(ours_noft)
    image_stage(ours, cfg.finetune, "finetune")

    L.seed_everything(seed, verbose=False)
    direct = DirectCNN(PaperCNN(cfg.cnn, 3 * normalizer.num_joints), normalizer)
    image_stage(direct, cfg.direct, "direct")
    return {"ours_noft": ours_noft.eval(), "ours": ours.eval(), "cnn": direct.eval()}


@torch.inference_mode()
def predict(
    model: nn.Module, dataset: Dataset, batch_size: int = 256, device: str | torch.device | None = None
) -> np.ndarray:
    """Poses (N, 17, 3) float32 mm that ``model`` (``StructuredNet``/``DirectCNN``) predicts for the
    ``image`` items (uint8 (3, S, S)) of ``dataset``, in dataset order (centre crops, eval mode).

    ``device``: where to run (default CUDA when available, else the CPU); ``model`` is moved there.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    predictor = PosePredictor(model).to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    out = [predictor(batch["image"].to(device)).float().cpu() for batch in loader]
    return torch.cat(out).numpy()
