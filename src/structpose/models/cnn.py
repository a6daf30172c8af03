"""The image regressor of Tekin et al. (BMVC 2016), Section 3.2, and its input preprocessing.

The paper's text: a 3x128x128 person crop, random 112x112 crops in training; three convolutional layers
with 9x9, 5x5 and 5x5 kernels, each followed by 2x2 max-pooling; three fully connected layers, then a
linear map to the output (the AE's latent ``h_L`` or the normalised pose); ReLU; dropout 0.5 after each
fully connected layer.

NOT in the text, our choices:

* filter counts 32, 32, 64, as in Li & Chan (ACCV 2014), on whose network the paper builds;
* "valid" convolutions (no padding): 112 -> 104 -> 52 -> 48 -> 24 -> 20 -> 10, i.e. 64x10x10 features;
* fully connected widths 1024, 2048, 2048: a 1024 bottleneck on the 6400 conv features, then layers as
  wide as the 2000-unit latent they feed;
* per-channel normalisation with fixed constants (ImageNet statistics by default), the same in training
  and evaluation, and a centre crop in evaluation.

Images of another size ``S`` (e.g. 64x64 for fast runs) use the crop ``round(S * 112 / 128)`` (56 for 64).
The network accepts ``channels_last`` inputs (and weights) and gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from structpose.errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_crop(in_size: int) -> int:
    """The training crop for images of ``in_size`` px: the paper's 112/128 ratio (128 -> 112, 64 -> 56)."""
    return round(in_size * 112 / 128)


@dataclass
class CNNConfig:
    """Architecture of :class:`PaperCNN` (see the module docstring for which numbers are the paper's)."""

    in_size: int = 128
    crop: int = 112
    channels: tuple[int, ...] = (32, 32, 64)
    kernels: tuple[int, ...] = (9, 5, 5)
    fc: tuple[int, ...] = (1024, 2048, 2048)
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if not self.channels or len(self.channels) != len(self.kernels):
            raise ValueError(f"need one kernel size per conv layer: {self}")
        if not 0 < self.crop <= self.in_size:
            raise ValueError(f"crop {self.crop} must lie in (0, in_size={self.in_size}]; see default_crop()")
        if self.feature_size < 1:
            raise ValueError(f"a {self.crop} px crop is too small for kernels {self.kernels}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1): {self}")

    @property
    def feature_size(self) -> int:
        """Side of the last conv layer's feature map: each layer is a valid conv then a 2x2 max-pool."""
        side = self.crop
        for k in self.kernels:
            side = (side - k + 1) // 2
        return side


class PaperCNN(nn.Module):
    """Normalised crops (B, 3, crop, crop) float -> (B, out_dim).

    Layers: (conv, ReLU, 2x2 max-pool) per conv layer, flatten, (linear, ReLU, dropout) per FC layer, linear.
    """

    def __init__(self, cfg: CNNConfig, out_dim: int):
        super().__init__()
        self.cfg = cfg
        self.out_dim = out_dim
        convs: list[nn.Module] = []
        in_ch = 3
        for ch, k in zip(cfg.channels, cfg.kernels, strict=True):
            convs += [nn.Conv2d(in_ch, ch, k), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_ch = ch
        self.features = nn.Sequential(*convs)
        fcs: list[nn.Module] = [nn.Flatten()]
        width = in_ch * cfg.feature_size**2
        for w in cfg.fc:
            fcs += [nn.Linear(width, w), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout)]
            width = w
        fcs.append(nn.Linear(width, out_dim))
        self.head = nn.Sequential(*fcs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg.crop
        if not (x.ndim == 4 and x.shape[1:] == (3, c, c)):
            raise InputError(f"expected (B, 3, {c}, {c}), got {tuple(x.shape)}")
        return self.head(self.features(x))


def preprocess(
    images: torch.Tensor,
    train: bool,
    crop: int | None = None,
    generator: torch.Generator | None = None,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 images (B, 3, S, S) -> normalised float crops (B, 3, crop, crop).

    ``train``: an independent uniformly random crop per image (offsets drawn on the CPU with ``generator``);
    else the centre crop. ``crop``: default :func:`default_crop` of S. Values: ``(pixel / 255 - mean) / std``
    per channel.
    """
    if not (images.dtype == torch.uint8 and images.ndim == 4):
        raise InputError("expected uint8 (B, 3, S, S) images")
    b, c, s, s2 = images.shape
    if not (c == 3 and s == s2):
        raise InputError(f"expected square RGB images (B, 3, S, S), got {tuple(images.shape)}")
    crop = default_crop(s) if crop is None else crop
    if not 0 < crop <= s:
        raise InputError(f"the crop must lie in (0, {s}] px, got {crop}")
    if train:
        offsets = torch.randint(0, s - crop + 1, (2, b), generator=generator).to(images.device)
    else:
        offsets = torch.full((2, b), (s - crop) // 2, device=images.device)
    span = torch.arange(crop, device=images.device)
    rows = (offsets[0, :, None] + span)[:, None, :, None]  # (B, 1, crop, 1)
    cols = (offsets[1, :, None] + span)[:, None, None, :]  # (B, 1, 1, crop)
    batch = torch.arange(b, device=images.device)[:, None, None, None]
    channel = torch.arange(3, device=images.device)[None, :, None, None]
    crops = images[batch, channel, rows, cols].float() / 255.0
    mean_t = torch.tensor(mean, device=images.device)[:, None, None]
    std_t = torch.tensor(std, device=images.device)[:, None, None]
    return (crops - mean_t) / std_t


@torch.no_grad()
def active_units(net: PaperCNN, x: torch.Tensor) -> list[float]:
    """The share of ReLU units of ``net`` that fire (> 0) on at least one of the crops ``x``, per layer: the
    last convolutional layer's features (each channel at each position a unit), then each fully connected
    layer. A network whose shares are ~0 is dead: no gradient reaches its trunk, and its output is a constant
    (a direct regressor then predicts the mean pose).

    Args:
        net: the network (evaluated as it is: call ``net.eval()`` first to switch dropout off).
        x: normalised crops (B, 3, crop, crop), as :func:`preprocess` makes them.

    Returns:
        One share in [0, 1] per layer: ``[last conv, fc 1, ..., fc K]``.
    """
    h = net.features(x).flatten(1)
    shares = [float((h > 0).any(0).float().mean())]
    for layer in net.head:
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            shares.append(float((h > 0).any(0).float().mean()))
    return shares
