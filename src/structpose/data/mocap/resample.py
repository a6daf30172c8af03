"""Resampling of pose sequences to a target frame rate by linear interpolation of joint positions."""

from __future__ import annotations

import numpy as np

from structpose.errors import InputError


def resample(poses: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Resample ``poses`` (F, ...) sampled at ``fps_in`` Hz to ``fps_out`` Hz.

    Output frame k is at time ``k / fps_out`` s, for every such time within the input's span
    ``[0, (F - 1) / fps_in]``; values are linearly interpolated between the two nearest input frames.
    Returns (F', ...) with ``F' = floor((F - 1) * fps_out / fps_in + 1e-9) + 1`` (F' = F when rates match).

    Raises:
        InputError: no frames (F = 0), or a rate that is not a positive finite number.
    """
    num_in = poses.shape[0]
    if num_in == 0:
        raise InputError(f"no frames to resample (poses of shape {poses.shape})")
    if not (np.isfinite(fps_in) and np.isfinite(fps_out) and fps_in > 0 and fps_out > 0):
        raise InputError(f"frame rates must be positive and finite, not {fps_in} -> {fps_out} Hz")
    num_out = int(np.floor((num_in - 1) * fps_out / fps_in + 1e-9)) + 1
    t = np.arange(num_out) * (fps_in / fps_out)  # positions in input-frame units
    lo = np.minimum(np.floor(t + 1e-9).astype(np.int64), num_in - 1)
    hi = np.minimum(lo + 1, num_in - 1)
    w = (t - lo).reshape((-1,) + (1,) * (poses.ndim - 1))
    return (1.0 - w) * poses[lo] + w * poses[hi]
