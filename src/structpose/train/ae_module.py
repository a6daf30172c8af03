"""Training the pose auto-encoder: greedy pre-training of one layer, or fine-tuning of the whole AE."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.normalize import PoseNormalizer
from structpose.train.base import StageModule, mpjpe_mm


class AEModule(StageModule):
    """Trains ``autoencoder`` on poses (batches ``{"pose3d": (B, 17, 3) mm}``) with its denoising +
    contractive loss on normalised poses.

    ``layer=i``: greedy pre-training of layer ``i`` alone, as a one-layer AE on the clean codes of the
    layers below (only layer ``i``'s parameters train). ``layer=None``: fine-tuning of the whole AE.
    ``self.net`` is the auto-encoder. Validation reports the loss without noise and ``mpjpe_mm``, the
    error (mm) of the whole AE's clean reconstruction of the pose.
    """

    def __init__(self, autoencoder: PoseAutoencoder, normalizer: PoseNormalizer, layer: int | None = None):
        super().__init__()
        if layer is not None and not 0 <= layer < autoencoder.num_layers:
            raise ValueError(f"layer {layer} out of range for an AE of {autoencoder.num_layers} layers")
        self.net = autoencoder
        self.normalizer = normalizer
        self.layer = layer

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        if self.layer is None:
            return iter(self.net.parameters())
        return iter(self.net.pretrain_parameters(self.layer))

    def step(self, batch: dict[str, torch.Tensor], train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y = self.normalizer.normalize(batch["pose3d"])  # (B, 51)
        if self.layer is None:
            loss, parts = self.net.loss(y, train=train)
        else:
            codes = self.net.codes(y, self.layer).detach()  # (B, in_dim of layer)
            loss, parts = self.net.layer_autoencoder(self.layer).loss(codes, train=train)
        if not train:
            recon_mm = self.normalizer.denormalize(self.net(y))
            parts = {**parts, "mpjpe_mm": mpjpe_mm(recon_mm, batch["pose3d"])}
        return loss, parts
