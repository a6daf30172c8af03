"""Training a lifter: the MLP onto the AE code, or the lifted networks onto poses (a stage module)."""

from __future__ import annotations

import torch
from torch import nn

from structpose.lift.config import AugmentConfig
from structpose.lift.inputs import augment
from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.normalize import PoseNormalizer
from structpose.train.base import StageModule, mpjpe_mm


class LiftModule(StageModule):
    """Regresses ``net(keypoints)`` onto the AE code (``autoencoder`` given: ``net`` is a
    :class:`~structpose.models.lifter.LifterMLP`) or onto the pose (``net`` a ``LiftedStructured`` or
    ``LiftedDirect``, outputs in mm) with the squared L2 loss on normalised targets, per sample, batch mean:
    the image stages' loss (:class:`~structpose.train.image_module.ImageRegressionModule`).

    Batches: training ``{"joints2d": (B, 17, 2) px, "pose3d": (B, 17, 3) mm}``, augmented here with torch's
    RNG by ``augmentation`` (:func:`~structpose.lift.inputs.augment`), so a resumed stage draws what the
    uninterrupted one drew; validation ``{"keypoints": (B, 51), "pose3d"}`` (fixed inputs).
    """

    def __init__(self, net: nn.Module, normalizer: PoseNormalizer, augmentation: AugmentConfig,
                 autoencoder: PoseAutoencoder | None = None):  # fmt: skip
        super().__init__()
        self.net = net
        self.normalizer = normalizer
        self.autoencoder = autoencoder  # frozen while fitting (only ``net`` trains)
        self.augmentation = augmentation

    def step(self, batch: dict[str, torch.Tensor], train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pose = batch["pose3d"]
        a = self.augmentation
        x = augment(batch["joints2d"], a.hips, a.noise_px, a.drop, a.waist_up) if train else batch["keypoints"]
        out = self.net(x)
        if self.autoencoder is not None:
            with torch.no_grad():
                target = self.autoencoder.encode(self.normalizer.normalize(pose))
            pred = out
        else:
            target, pred = self.normalizer.normalize(pose), self.normalizer.normalize(out)
        loss = (pred.float() - target.float()).square().sum(1).mean()
        if train:
            return loss, {}
        pred_mm = self.normalizer.denormalize(self.autoencoder.decode(out)) if self.autoencoder is not None else out
        return loss, {"mpjpe_mm": mpjpe_mm(pred_mm, pose)}
