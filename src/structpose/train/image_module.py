"""Training a network on images: the CNN onto the AE code, the structured net or the direct CNN onto poses."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.cnn import preprocess
from structpose.models.normalize import PoseNormalizer
from structpose.train.base import StageModule, mpjpe_mm

Target = Literal["latent", "pose"]


class ImageRegressionModule(StageModule):
    """Regresses ``net(preprocess(image))`` onto a target with the squared L2 loss (per sample, batch mean).

    Batches: ``{"image": uint8 (B, 3, S, S), "pose3d": float (B, 17, 3) mm}``. Images are cropped and
    normalised here (:func:`structpose.models.cnn.preprocess`: a random ``crop`` in training, the centre
    crop otherwise).

    ``target="latent"``: ``net`` is a :class:`~structpose.models.cnn.PaperCNN` with ``out_dim`` the AE's
    latent size; the target is the (frozen) ``autoencoder``'s clean code ``h_L`` of the normalised pose, and
    poses (for ``mpjpe_mm``) are its decoding. ``target="pose"``: ``net`` (a ``StructuredNet`` or
    ``DirectCNN``) outputs poses in mm; the loss is taken on normalised poses (the L2 loss in mm divided by
    ``normalizer.scale**2``). ``channels_last``: NHWC inputs and weights.
    """

    def __init__(
        self,
        net: nn.Module,
        target: Target,
        normalizer: PoseNormalizer,
        crop: int,
        autoencoder: PoseAutoencoder | None = None,
        channels_last: bool = False,
    ):
        super().__init__()
        if target not in ("latent", "pose"):
            raise ValueError(f"target must be 'latent' or 'pose', got {target!r}")
        if (target == "latent") != (autoencoder is not None):
            raise ValueError("an autoencoder is needed for, and only for, target='latent'")
        self.net = net
        self.target = target
        self.normalizer = normalizer
        self.crop = crop
        self.autoencoder = autoencoder  # frozen while fitting (only ``net`` trains)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        net.to(memory_format=self.memory_format)

    def step(self, batch: dict[str, torch.Tensor], train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x = preprocess(batch["image"], train=train, crop=self.crop).contiguous(memory_format=self.memory_format)
        out = self.net(x)
        pose = batch["pose3d"]
        if self.target == "latent":
            with torch.no_grad():
                target = self.autoencoder.encode(self.normalizer.normalize(pose))  # (B, latent)
            pred = out
        else:
            target = self.normalizer.normalize(pose)  # (B, 51)
            pred = self.normalizer.normalize(out)
        loss = (pred.float() - target.float()).square().sum(1).mean()
        if train:
            return loss, {}
        pred_mm = self.normalizer.denormalize(self.autoencoder.decode(out)) if self.target == "latent" else out
        return loss, {"mpjpe_mm": mpjpe_mm(pred_mm, pose)}
