"""The 2D -> 3D lifter: 3d-pose-baseline's MLP (Martinez et al., ICCV 2017), alone or through the pose prior.

:class:`LifterMLP` maps normalised 2D keypoints (B, 17 * 3: x, y and a visibility flag per joint, see
:func:`structpose.lift.inputs.lifter_input`) to a vector: a linear layer to ``hidden`` units, batch-norm,
ReLU and dropout, then ``blocks`` residual blocks of two such layers, then a linear output layer (as in
3d-pose-baseline: 1024 units, two blocks, dropout 0.5). Two networks are built from it, as the paper's two
CNN arms are:

- :class:`LiftedStructured`: the MLP regresses the pose auto-encoder's latent code ``h_L``; the AE's decoder
  maps it to the normalised pose (the paper's structure with keypoints in place of pixels);
- :class:`LiftedDirect`: the MLP regresses the normalised pose directly (= 3d-pose-baseline).

Both output poses (B, 17, 3) in mm, root-relative, camera frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from structpose.models.normalize import PoseNormalizer
from structpose.skeleton import NUM_JOINTS

#: values per joint of the lifter's input: x, y (normalised by the person box) and visible (0 or 1)
INPUT_PER_JOINT = 3


@dataclass(frozen=True)
class LifterConfig:
    """The MLP's shape. ``hidden``: units per layer; ``blocks``: residual blocks; ``dropout``: drop rate."""

    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.blocks < 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"need hidden >= 1, blocks >= 0 and 0 <= dropout < 1: {self}")


def _layer(width: int, dropout: float) -> list[nn.Module]:
    return [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]


class ResidualBlock(nn.Module):
    """Two (linear, batch-norm, ReLU, dropout) layers and a skip connection: (B, W) -> (B, W)."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(*_layer(width, dropout), *_layer(width, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LifterMLP(nn.Module):
    """Normalised keypoints (B, 17 * 3) -> (B, ``out_dim``)."""

    def __init__(self, cfg: LifterConfig, out_dim: int, num_joints: int = NUM_JOINTS):
        super().__init__()
        self.cfg = cfg
        self.in_dim = INPUT_PER_JOINT * num_joints
        self.out_dim = out_dim
        w = cfg.hidden
        self.stem = nn.Sequential(nn.Linear(self.in_dim, w), nn.BatchNorm1d(w), nn.ReLU(), nn.Dropout(cfg.dropout))
        self.blocks = nn.Sequential(*(ResidualBlock(w, cfg.dropout) for _ in range(cfg.blocks)))
        self.head = nn.Linear(w, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x.reshape(len(x), -1))))


class LiftedStructured(nn.Module):
    """Keypoints (B, 17 * 3) -> ``mlp`` -> latent ``h_L`` -> ``decoder`` -> normalised pose -> poses (B, 17, 3) mm."""

    def __init__(self, mlp: LifterMLP, decoder: nn.Module, normalizer: PoseNormalizer):
        super().__init__()
        self.mlp = mlp
        self.decoder = decoder
        self.normalizer = normalizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalizer.denormalize(self.decoder(self.mlp(x)))


class LiftedDirect(nn.Module):
    """Keypoints (B, 17 * 3) -> ``mlp`` -> normalised pose -> poses (B, 17, 3) mm (3d-pose-baseline)."""

    def __init__(self, mlp: LifterMLP, normalizer: PoseNormalizer):
        super().__init__()
        if mlp.out_dim != 3 * normalizer.num_joints:
            raise ValueError("the direct lifter's MLP must output a normalised pose (3 * joints values)")
        self.mlp = mlp
        self.normalizer = normalizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalizer.denormalize(self.mlp(x))
