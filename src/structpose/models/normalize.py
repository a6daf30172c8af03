"""Pose normalisation: the map between poses in millimetres and the vectors the networks see.

A pose ``y`` of shape ``(17, 3)`` (root-relative, camera frame, mm) is flattened to 51 numbers, the
per-coordinate training mean is subtracted and the result is divided by ONE scalar ``scale`` (mm per
normalised unit). A single scalar, rather than a per-coordinate std, keeps the map isotropic, so that:

* a Gaussian noise of std ``sigma_mm`` on the pose in mm is a Gaussian noise of std ``sigma_mm / scale``
  on the normalised pose (``noise_mm / scale_mm``, as ``PoseAutoencoder`` does);
* an L2 loss on normalised poses is the L2 loss in mm divided by ``scale**2``;
* the auto-encoder's contractive penalty, taken w.r.t. the normalised input, is the one w.r.t. the pose
  in mm times ``scale**2`` (``dh/dy_norm = scale * dh/dy_mm``); so its objective ``recon + lam * penalty``
  on normalised poses is the same objective on poses in mm, with ``lam_mm = lam * scale**4``, divided
  by ``scale**2``.

The default scale is the std of the centred coordinates pooled over the training set (all 51 coordinates
of all frames, after removing the per-coordinate mean), in mm; for Human3.6M root-relative poses it is a
few hundred mm.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from structpose.errors import InputError


class PoseNormalizer(nn.Module):
    """Flatten, centre and scale poses. Buffers: ``mean`` (3J,) in mm and ``scale`` (0-d) in mm per unit."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: torch.Tensor | None = None, scale_mm: float = 1.0, num_joints: int = 17):
        super().__init__()
        mean = torch.zeros(3 * num_joints) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        if mean.shape != (3 * num_joints,):
            raise InputError(f"mean must be ({3 * num_joints},), got {tuple(mean.shape)}")
        if not torch.isfinite(mean).all() or not scale_mm > 0 or not math.isfinite(scale_mm):
            raise InputError(f"the mean pose and the scale must be finite and the scale positive, got {scale_mm}")
        self.num_joints = num_joints
        self.register_buffer("mean", mean.clone())
        self.register_buffer("scale", torch.tensor(float(scale_mm)))

    @classmethod
    def from_poses(cls, poses: np.ndarray | torch.Tensor, scale_mm: float | None = None) -> PoseNormalizer:
        """Fit to training poses ``(N, J, 3)`` in mm.

        ``mean``: the per-coordinate mean (3J,) in mm. ``scale_mm``: mm per normalised unit; default the std
        of all centred coordinates pooled over the N frames and 3J coordinates.
        """
        y = torch.as_tensor(np.asarray(poses), dtype=torch.float64)
        if y.ndim != 3 or y.shape[-1] != 3 or y.shape[0] < 2:
            raise InputError(f"expected training poses (N >= 2, J, 3), got {tuple(y.shape)}")
        bad = torch.nonzero(~torch.isfinite(y).reshape(len(y), -1).all(1)).flatten()
        if len(bad):
            raise InputError(f"{len(bad)} training poses hold NaN/inf (first: sample {int(bad[0])}); "
                             "check the dataset (`structpose data show`) and rebuild it")  # fmt: skip
        flat = y.reshape(y.shape[0], -1)
        mean = flat.mean(0)
        if scale_mm is None:
            scale_mm = float((flat - mean).square().mean().sqrt())
        return cls(mean.float(), scale_mm, num_joints=y.shape[1])

    @property
    def scale_mm(self) -> float:
        """Millimetres per normalised unit."""
        return float(self.scale)

    def normalize(self, y_mm: torch.Tensor) -> torch.Tensor:
        """Poses ``(B, J, 3)`` in mm -> normalised vectors ``(B, 3J)``."""
        if y_mm.shape[1:] != (self.num_joints, 3):
            raise InputError(f"expected poses (B, {self.num_joints}, 3), got {tuple(y_mm.shape)}")
        return (y_mm.reshape(y_mm.shape[0], -1) - self.mean) / self.scale

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised vectors ``(B, 3J)`` -> poses ``(B, J, 3)`` in mm."""
        if z.ndim != 2 or z.shape[1] != 3 * self.num_joints:
            raise InputError(f"expected normalised poses (B, {3 * self.num_joints}), got {tuple(z.shape)}")
        return (z * self.scale + self.mean).reshape(z.shape[0], self.num_joints, 3)
