"""Rotation matrices from Euler angles (any axis order, degrees) and from exponential maps, vectorised.

Convention: column vectors, ``v_parent = R @ v_child``. An Euler order ``"ZXY"`` means the matrix
``R = Rz(a0) @ Rx(a1) @ Ry(a2)`` for angles ``(a0, a1, a2)`` given in that order -- the BVH channel order
(``CHANNELS ... Zrotation Xrotation Yrotation``) and, read right to left, the order in which the rotations act.
"""

from __future__ import annotations

import numpy as np

from structpose.errors import InputError

_AXES = {"X": 0, "Y": 1, "Z": 2}


def axis_rotation(axis: str, angle_rad: np.ndarray) -> np.ndarray:
    """Rotation by ``angle_rad`` (radians, any shape S) about the coordinate axis ``"X"|"Y"|"Z"`` -> (S, 3, 3)."""
    angle_rad = np.asarray(angle_rad, dtype=np.float64)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    if axis.upper() not in _AXES:
        raise InputError(f"unknown rotation axis {axis!r}: use X, Y or Z")
    i = _AXES[axis.upper()]
    j, k = (i + 1) % 3, (i + 2) % 3
    out = np.zeros(angle_rad.shape + (3, 3))
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., j, k] = -s
    out[..., k, j] = s
    return out


def euler_to_matrix(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Euler angles in degrees to rotation matrices.

    ``angles_deg``: (..., len(order)) angles, ``angles_deg[..., n]`` about axis ``order[n]``.
    ``order``: axis letters, e.g. ``"ZYX"`` (CMU) or ``"ZXY"`` (Bandai-Namco, Daz-friendly CMU); 1-3 letters.
    Returns (..., 3, 3) ``R = R_{order[0]} @ R_{order[1]} @ ...``.

    Raises:
        InputError: ``order`` has a letter other than X, Y, Z, or the angles' last axis is not ``len(order)``.
    """
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    if not set(order.upper()) <= set(_AXES):
        raise InputError(f"bad Euler order {order!r}: use the letters X, Y and Z")
    if angles.ndim == 0 or angles.shape[-1] != len(order):
        raise InputError(f"{len(order)} angles expected for order {order!r}, got an array of shape {angles.shape}")
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for n, axis in enumerate(order):
        out = out @ axis_rotation(axis, angles[..., n])
    return out


def expmap_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Exponential map (axis * angle in radians) to rotation matrices by Rodrigues' formula.

    ``rotvec``: (..., 3) -> (..., 3, 3). Numerically safe at zero angle (returns the identity).
    """
    r = np.asarray(rotvec, dtype=np.float64)
    theta = np.linalg.norm(r, axis=-1)[..., None, None]
    k = np.zeros(r.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2] = -r[..., 2], r[..., 1]
    k[..., 1, 0], k[..., 1, 2] = r[..., 2], -r[..., 0]
    k[..., 2, 0], k[..., 2, 1] = -r[..., 1], r[..., 0]
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(safe) / safe)  # sin(t)/t, K is unnormalised
    b = np.where(small, 0.5, (1.0 - np.cos(safe)) / safe**2)
    return np.eye(3) + a * k + b * (k @ k)
