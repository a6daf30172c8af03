"""The paper's training pipeline end to end, resumable stage by stage, and prediction with its networks.

The pipeline folder (:class:`~structpose.train.layout.SeedLayout`) holds ``config.yaml``, a folder per
stage and the logs; a resumed pipeline loads the finished stages and continues the one it was in
(:func:`~structpose.train.layout.resume_or_fit`). Stages:

1. ``ae_pretrain{i}`` for each AE layer ``i`` (greedy; skipped for a one-layer AE, whose pre-training
   would be its fine-tuning), then ``ae_finetune``: the pose auto-encoder on
   the training poses;
2. ``latent``: the CNN regresses the frozen AE's code ``h_L``;
3. ``finetune``: the AE's decoder is appended and the whole ``StructuredNet`` trained on the pose;
4. ``direct``: the baseline ``DirectCNN`` regresses the pose, with the budget and schedule of 2 and 3.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader, Dataset

from structpose.files import write_text
from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.cnn import PaperCNN
from structpose.models.normalize import PoseNormalizer
from structpose.models.structured import DirectCNN, StructuredNet

if TYPE_CHECKING:
    from structpose.models.structnet import StructNet
from structpose.train.ae_module import AEModule
from structpose.train.base import StageModule
from structpose.train.config import ExperimentConfig, StageConfig
from structpose.train.data import PoseDataModule, PoseImageDataModule, Splits, load_splits
from structpose.train.engine import fit_stage
from structpose.train.export import PosePredictor, load_weights, save_weights
from structpose.train.image_module import ImageRegressionModule
from structpose.train.layout import WEIGHTS, SeedLayout, adopt, check_config, finished, resume_or_fit
from structpose.train.methods import METHODS, Method, NetMethod

#: the sections of the configuration that determine each stage's result (besides ``trainer``'s seed and
#: numerics): a stage whose sections equal those of a finished stage elsewhere is that stage
_AE = ("data", "ae", "ae_pretrain", "ae_finetune")
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "ae": _AE, "latent": (*_AE, "cnn", "latent"), "finetune": (*_AE, "cnn", "latent", "finetune"),
    "direct": ("data", "cnn", "direct"), "structnet": ("data", "cnn", "direct", "structnet"),
}  # fmt: skip
_TRAINER_INPUTS = ("seed", "deterministic", "precision", "channels_last")


_AE_DATA = ("ae_poses", "ae_library_poses")  # data keys that only the auto-encoder sees


def stage_inputs(cfg: ExperimentConfig, name: str) -> dict:
    """What determines stage ``name`` under ``cfg`` (:data:`STAGE_INPUTS`), as a plain dict."""
    tree = cfg.to_dict()
    sections = STAGE_INPUTS["ae" if name.startswith("ae_") else name]
    if "ae" not in sections:
        tree["data"] = {k: v for k, v in tree["data"].items() if k not in _AE_DATA}
    return {k: tree[k] for k in sections if k in tree} | {k: tree["trainer"][k] for k in _TRAINER_INPUTS}


def _reusable(cfg: ExperimentConfig, name: str, others: tuple[SeedLayout, ...]) -> SeedLayout | None:
    """The first of ``others`` holding a finished ``name`` stage trained on the same inputs, or None."""
    from structpose.train.config import load_config

    mine = stage_inputs(cfg, name)
    for other in others:
        if finished(other.stage(name)) and other.config.is_file():
            if stage_inputs(load_config(other.config), name) == mine:
                return other
    return None


def _start(cfg: ExperimentConfig, folder: SeedLayout, resume: bool) -> None:
    """Write the resolved config to the pipeline folder; a resumed run must have been started with the same one."""
    if resume:
        check_config(cfg.to_yaml(), folder.root)
    rank_zero_only(write_text)(folder.config, cfg.to_yaml())


def train_methods(
    cfg: ExperimentConfig,
    folder: SeedLayout,
    resume: bool = False,
    splits: Splits | None = None,
    reuse: tuple[SeedLayout, ...] = (),
) -> dict[str, Method]:
    """Every method of ``cfg.methods`` of one pipeline folder, trained or fitted (or loaded: the resume rule),
    in :data:`~structpose.train.methods.METHODS` order. ``splits``: :func:`load_splits` of ``cfg``;
    ``reuse``: see :func:`train_all`."""
    from structpose.train.linkde_stage import fit_linkde

    splits = splits or load_splits(cfg.data, cfg.cnn.in_size)
    nets = train_all(cfg, folder.root, resume=resume, splits=splits, reuse=reuse)
    out: dict[str, Method] = {}
    for key in (k for k in METHODS if k in cfg.methods):
        out[key] = NetMethod(nets[key]) if key in nets else fit_linkde(cfg, splits, folder, resume, key)
    return out


def train_all(
    cfg: ExperimentConfig,
    run_dir: Path,
    resume: bool = False,
    splits: Splits | None = None,
    reuse: tuple[SeedLayout, ...] = (),
) -> dict[str, nn.Module]:
    """Run the network stages (module docstring) of the methods in ``cfg.methods`` in ``run_dir``; returns
    those pose networks in eval mode, each mapping normalised crops (B, 3, crop, crop) to poses (B, 17, 3)
    mm (see :func:`predict`): ``ours_noft`` (StructuredNet before fine-tuning), ``ours`` (after), ``cnn``
    (DirectCNN).
    ``splits``: the datasets of :func:`load_splits` for ``cfg``, when the caller has them already.
    ``reuse``: other pipeline folders; a stage not finished here whose inputs (:func:`stage_inputs`) equal
    those of a finished stage of one of them is taken from it (its files linked here), not trained again,
    so an ablation retrains only what its setting changes."""
    folder = SeedLayout(Path(run_dir))
    folder.root.mkdir(parents=True, exist_ok=True)
    _start(cfg, folder, resume)
    seed = cfg.trainer.seed

    def stage(module: StageModule, data: L.LightningDataModule, stage_cfg: StageConfig, name: str,
              finish: Callable[[Path], None] | None = None) -> None:  # fmt: skip
        def fit(stage_dir: Path) -> None:
            fit_stage(module, data, stage_cfg, folder.root, name, resume=resume, trainer_cfg=cfg.trainer)
            if finish is not None:  # what the stage still decides once trained (then it writes its weights again)
                finish(stage_dir)

        source = None if finished(folder.stage(name)) else _reusable(cfg, name, reuse)
        if source is not None:
            adopt(source.stage(name), folder.stage(name))
        load = lambda d: load_weights(module.net, d / WEIGHTS)  # noqa: E731
        resume_or_fit(folder.stage(name), resume or source is not None, load, fit)

    splits = splits or load_splits(cfg.data, cfg.cnn.in_size)
    normalizer = PoseNormalizer.from_poses(splits.train.poses3d)
    poses = PoseDataModule.from_splits(splits, cfg.ae_finetune.batch_size)
    images = PoseImageDataModule.from_splits(splits, cfg.latent.batch_size, cfg.data.num_workers)

    wanted = set(cfg.methods)
    nets: dict[str, nn.Module] = {}
    if wanted & {"ours", "ours_noft"}:
        nets |= _train_ours(cfg, stage, poses, images, normalizer)
    if "cnn" in wanted:
        L.seed_everything(seed, verbose=False)
        direct = DirectCNN(PaperCNN(cfg.cnn, 3 * normalizer.num_joints), normalizer)
        stage(_image_module(cfg, direct, normalizer), images, cfg.direct, "direct")
        nets["cnn"] = direct
    if wanted & {"structnet_max", "structnet_avg"}:
        net = _train_structnet(cfg, stage, images, normalizer, splits)
        nets |= {"structnet_max": net.with_mode("max"), "structnet_avg": net.with_mode("avg")}
    return {k: v.eval() for k, v in nets.items() if k in wanted}


def _image_module(cfg: ExperimentConfig, net: nn.Module, normalizer: PoseNormalizer,
                  ae: PoseAutoencoder | None = None) -> ImageRegressionModule:  # fmt: skip
    """The stage module regressing the pose (or, given the ``ae``, its latent code ``h_L``) from images."""
    return ImageRegressionModule(net, "pose" if ae is None else "latent", normalizer, cfg.cnn.crop, ae,
                                 cfg.trainer.channels_last)  # fmt: skip


def _train_structnet(cfg: ExperimentConfig, stage: Callable, images: PoseImageDataModule,
                     normalizer: PoseNormalizer, splits: Splits) -> StructNet:  # fmt: skip
    """StructNet (Li, Zhang & Chan 2015) on the direct CNN's budget and schedule; the ``A`` of StructNet-Avg
    is chosen on the validation split before the weights are written (the default A without one)."""
    from structpose.models.structnet import StructNet, choose_top_a
    from structpose.train.structnet_module import StructNetModule

    L.seed_everything(cfg.trainer.seed, verbose=False)
    net = StructNet(cfg.cnn, normalizer, cfg.structnet)
    module = StructNetModule(net, splits.train.poses3d, cfg.cnn.crop, channels_last=cfg.trainer.channels_last)

    def choose(stage_dir: Path) -> None:
        if splits.val is not None:
            net.set_top_a(choose_top_a(net.eval(), splits.val))
        save_weights(net, stage_dir / WEIGHTS)

    stage(module, images, cfg.direct, "structnet", finish=choose)
    return net


def _train_ours(cfg: ExperimentConfig, stage: Callable, poses: PoseDataModule, images: PoseImageDataModule,
                normalizer: PoseNormalizer) -> dict[str, nn.Module]:  # fmt: skip
    """The paper's three steps (the auto-encoder, the CNN regressing its code, the fine-tuning) through
    ``stage(module, datamodule, stage_cfg, name)``; returns ``ours_noft`` and ``ours``."""
    L.seed_everything(cfg.trainer.seed, verbose=False)
    ae = PoseAutoencoder(cfg.ae, normalizer.scale_mm)
    if ae.num_layers > 1:  # greedy pre-training; for one layer it is the same objective as the fine-tuning
        for layer in range(ae.num_layers):
            stage(AEModule(ae, normalizer, layer=layer), poses, cfg.ae_pretrain, f"ae_pretrain{layer}")
    stage(AEModule(ae, normalizer), poses, cfg.ae_finetune, "ae_finetune")
    L.seed_everything(cfg.trainer.seed, verbose=False)
    cnn = PaperCNN(cfg.cnn, ae.latent_dim)
    stage(_image_module(cfg, cnn, normalizer, ae), images, cfg.latent, "latent")
    ours_noft = StructuredNet(cnn, ae.decoder(), normalizer)
    ours = copy.deepcopy(ours_noft)
    stage(_image_module(cfg, ours, normalizer), images, cfg.finetune, "finetune")
    return {"ours_noft": ours_noft, "ours": ours}


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
