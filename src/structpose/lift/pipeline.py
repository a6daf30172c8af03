"""The lifting pipeline of one seed: the pose prior, the lifter onto its code, the fine-tuning, the direct lifter.

The stages, in one pipeline folder (:class:`~structpose.train.layout.SeedLayout`), each under the resume
rule (:func:`~structpose.train.layout.resume_or_fit`) and trained by the image stages' engine
(:func:`~structpose.train.engine.fit_stage`):

1. ``ae_pretrain{i}`` (a multi-layer AE only), ``ae_finetune``: the pose auto-encoder on the training views'
   3D poses (the same AE stage as the image pipeline's);
2. ``latent``: the lifter MLP regresses the frozen AE's code ``h_L``;
3. ``finetune``: the decoder appended, the whole ``LiftedStructured`` trained on the pose;
4. ``direct``: the same MLP regressing the pose (3d-pose-baseline), with the budget and schedule of 2 + 3.

:func:`evaluation_inputs` builds the fixed test conditions (exact 2D, Gaussian noise of 5/10/20 px, dropped
joints, other hip offsets), each with its own seeded draw, the same for every seed and method (paired).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from structpose.lift.config import LiftConfig
from structpose.lift.data import ViewDataset, Views
from structpose.lift.inputs import HipOffset, observed_input
from structpose.lift.module import LiftModule
from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.lifter import LiftedDirect, LiftedStructured, LifterMLP
from structpose.models.normalize import PoseNormalizer
from structpose.train.ae_module import AEModule
from structpose.train.base import StageModule
from structpose.train.config import StageConfig
from structpose.train.data import PoseDataModule, _identity, _LoaderModule
from structpose.train.engine import fit_stage
from structpose.train.export import load_weights
from structpose.train.layout import WEIGHTS, SeedLayout, check_config, resume_or_fit


@dataclass(frozen=True)
class Condition:
    """A test condition: Gaussian noise of ``noise_px`` px on every joint, each detected joint hidden with
    probability ``drop``, the lower body hidden (``waist_up``), the detector's hips at ``hips`` (None: the
    configuration's nominal offset)."""

    noise_px: float = 0.0
    drop: float = 0.0
    hips: HipOffset | None = None
    label: str = ""
    waist_up: bool = False


#: the test conditions of every lifting report; "exact" is the Table 1 analogue
CONDITIONS: dict[str, Condition] = {
    "exact": Condition(label="exact 2D"),
    "noise5": Condition(5.0, label="2D noise σ = 5 px"),
    "noise10": Condition(10.0, label="2D noise σ = 10 px"),
    "noise20": Condition(20.0, label="2D noise σ = 20 px"),
    "drop20": Condition(drop=0.2, label="20% of detected joints hidden"),
    "waist_up": Condition(waist_up=True, label="waist up (hips, knees, feet hidden)"),
}
#: hip offsets at test time other than the nominal one the lifters were trained around (exact 2D otherwise)
HIP_CASES: dict[str, HipOffset] = {
    "hips_none": HipOffset(1.0, 0.0, 0.0),
    "hips_narrow": HipOffset(0.7, 0.05, 0.0),
    "hips_high": HipOffset(0.9, 0.2, 0.0),
    "hips_narrow_high": HipOffset(0.7, 0.2, 0.0),
}


def evaluation_inputs(v: Views, cfg: LiftConfig, name: str) -> np.ndarray:
    """The lifter inputs (N, 51) of test condition ``name`` (a key of :data:`CONDITIONS` or :data:`HIP_CASES`)
    for views ``v``; its random draw is ``default_rng([data seed, index of the condition])``."""
    names = [*CONDITIONS, *HIP_CASES]
    cond = CONDITIONS.get(name) or Condition(hips=HIP_CASES[name])
    rng = np.random.default_rng([cfg.data.seed, names.index(name)])
    hips = cond.hips or cfg.augment.hips
    return observed_input(v.joints2d, hips, cond.noise_px, cond.drop, rng, cond.waist_up)


class LiftDataModule(_LoaderModule):
    """Training views (augmented in the stage module) and fixed validation inputs (exact 2D)."""

    collate_fn = staticmethod(_identity)  # the datasets return whole batches (``__getitems__``)

    @classmethod
    def build(cls, train: Views, val: Views | None, cfg: LiftConfig) -> LiftDataModule:
        val_set = None if val is None or not len(val) else ViewDataset(val, evaluation_inputs(val, cfg, "exact"))
        return cls(ViewDataset(train), val_set, None, batch_size=cfg.latent.batch_size, num_workers=0)


def train_lifters(cfg: LiftConfig, folder: SeedLayout, splits: dict[str, Views], resume: bool) -> dict[str, nn.Module]:
    """Train (or load) the lifting methods of one seed in ``folder`` (module docstring); returns
    ``lift_direct``, ``lift_ours_noft`` and ``lift_ours``, in eval mode, each mapping inputs (B, 51) to
    poses (B, 17, 3) mm."""
    folder.root.mkdir(parents=True, exist_ok=True)
    if resume:
        check_config(cfg.to_yaml(), folder.root)
    folder.config.write_text(cfg.to_yaml())
    stage = _stage_runner(cfg, folder, resume)
    train, val = splits["train"], splits.get("val")
    normalizer = PoseNormalizer.from_poses(train.poses3d)
    views = LiftDataModule.build(paired_views(train, cfg.data.pair_fraction, cfg.data.split_seed), val, cfg)
    poses = PoseDataModule(train.poses3d, None if val is None else val.poses3d, None, cfg.ae_finetune.batch_size)
    lift = lambda net, ae=None: LiftModule(net, normalizer, cfg.augment, ae)  # noqa: E731

    L.seed_everything(cfg.trainer.seed, verbose=False)
    ae = PoseAutoencoder(cfg.ae, normalizer.scale_mm)
    if ae.num_layers > 1:
        for layer in range(ae.num_layers):
            stage(AEModule(ae, normalizer, layer=layer), poses, cfg.ae_pretrain, f"ae_pretrain{layer}")
    stage(AEModule(ae, normalizer), poses, cfg.ae_finetune, "ae_finetune")
    L.seed_everything(cfg.trainer.seed, verbose=False)
    mlp = LifterMLP(cfg.lifter, ae.latent_dim)
    stage(lift(mlp, ae), views, cfg.latent, "latent")
    noft = LiftedStructured(mlp, ae.decoder(), normalizer)
    ours = copy.deepcopy(noft)
    stage(lift(ours), views, cfg.finetune, "finetune")
    L.seed_everything(cfg.trainer.seed, verbose=False)
    direct = LiftedDirect(LifterMLP(cfg.lifter, 3 * normalizer.num_joints), normalizer)
    stage(lift(direct), views, cfg.direct, "direct")
    return {"lift_direct": direct.eval(), "lift_ours_noft": noft.eval(), "lift_ours": ours.eval()}


def paired_views(train: Views, fraction: float, seed: int) -> Views:
    """The lifters' training views: all of ``train``, or a seeded ``fraction`` of them (at least one) repeated
    to ``len(train)`` samples, so the stages take the steps of the whole (``data.pair_fraction``)."""
    if fraction >= 1.0:
        return train
    keep = max(1, round(fraction * len(train)))
    chosen = np.sort(np.random.default_rng([seed, 7]).choice(len(train), size=keep, replace=False))
    return train.subset(np.resize(chosen, len(train)))


def _stage_runner(cfg: LiftConfig, folder: SeedLayout, resume: bool) -> Callable[..., None]:
    """``stage(module, datamodule, stage_cfg, name)``: fit the stage, or load it when resuming a finished one."""

    def stage(module: StageModule, data: L.LightningDataModule, stage_cfg: StageConfig, name: str) -> None:
        fit = lambda d: fit_stage(module, data, stage_cfg, folder.root, name, resume, cfg.trainer)  # noqa: E731
        resume_or_fit(folder.stage(name), resume, lambda d: load_weights(module.net, d / WEIGHTS), fit)

    return stage


@torch.inference_mode()
def lift_poses(net: nn.Module, inputs: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Poses (N, 17, 3) float32 mm that ``net`` lifts from inputs (N, 51), in order, on the CPU, eval mode."""
    net = net.eval().cpu()
    loader = DataLoader(torch.from_numpy(np.ascontiguousarray(inputs, np.float32)), batch_size=batch_size)
    out = [net(x).float() for x in loader]
    return torch.cat(out).numpy() if out else np.zeros((0, 17, 3), np.float32)
