"""The full networks of Tekin et al. (BMVC 2016): the structured network and the direct-CNN baseline.

``StructuredNet``: image -> CNN -> latent ``h_L`` -> the pose AE's decoder -> normalised pose -> mm
(Section 3.3: the CNN is first trained to regress ``h_L``, then the decoder is appended and the whole
fine-tuned on the pose). ``DirectCNN``: the paper's "CNN" baseline, the same CNN regressing the normalised
pose directly.
"""

from __future__ import annotations

import torch
from torch import nn

from structpose.errors import InputError
from structpose.models.cnn import PaperCNN
from structpose.models.normalize import PoseNormalizer


class StructuredNet(nn.Module):
    """Images (B, 3, crop, crop) normalised -> poses (B, J, 3) mm through ``decoder(cnn(x))``.

    ``cnn``: a :class:`PaperCNN` with ``out_dim`` the latent size; ``decoder``: (B, latent) -> (B, 3J)
    normalised poses (e.g. ``PoseAutoencoder.decoder()``); ``normalizer``: the AE's pose normaliser.
    """

    def __init__(self, cnn: PaperCNN, decoder: nn.Module, normalizer: PoseNormalizer):
        super().__init__()
        self.cnn = cnn
        self.decoder = decoder
        self.normalizer = normalizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalizer.denormalize(self.decoder(self.cnn(x)))


class DirectCNN(nn.Module):
    """The baseline: images (B, 3, crop, crop) -> poses (B, J, 3) mm; ``cnn.out_dim`` must be 3J."""

    def __init__(self, cnn: PaperCNN, normalizer: PoseNormalizer):
        super().__init__()
        if cnn.out_dim != 3 * normalizer.num_joints:
            raise InputError("the CNN must output a normalised pose")
        self.cnn = cnn
        self.normalizer = normalizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalizer.denormalize(self.cnn(x))
