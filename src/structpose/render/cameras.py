"""Cameras placed like Human3.6M's around a subject: published intrinsics, chest-height centres, no roll.

Human3.6M's four cameras stand 4.1-5.6 m (horizontally) from the world origin at the centre of the capture
area, 1.47-1.63 m above the floor (the ``center`` of every published calibration), and look slightly down
at the subject with less than 6 degrees of roll. We place a camera at a uniform azimuth around the
subject's root, 3-6 m away, at a height drawn from the published range widened by 10 cm either way
(measured from the lowest joint, i.e. about the floor), looking at the root with a few degrees of jitter.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np

from structpose.camera import H36M_CAMERA_IDS, Camera, h36m_cameras, h36m_intrinsics

DISTANCE_MM = (3000.0, 6000.0)  # camera centre to root
JITTER_DEG = (5.0, 3.0)  # max yaw and pitch offset of the optical axis from the root
HEIGHT_MARGIN_MM = 100.0


@lru_cache(maxsize=1)
def h36m_height_range() -> tuple[float, float]:
    """(min, max) height in mm of the published Human3.6M camera centres above the floor (world z)."""
    z = [cam.center[2] for cams in h36m_cameras().values() for cam in cams.values()]
    return float(min(z)), float(max(z))


def look_rotation(forward: np.ndarray) -> np.ndarray:
    """World->camera rotation (3, 3) of a camera looking along ``forward`` (3,) with no roll (world Z up):
    rows are the camera's x (right, horizontal), y (down) and z (forward) axes in world coordinates."""
    f = forward / np.linalg.norm(forward)
    right = np.cross(f, [0.0, 0.0, 1.0])
    norm = np.linalg.norm(right)
    if norm < 1e-6:
        raise ValueError("a camera looking straight up or down has no roll-free orientation")
    right /= norm
    return np.stack([right, np.cross(f, right), f])


def sample_camera(rng: np.random.Generator, pose_world: np.ndarray) -> Camera:
    """A Human3.6M-like camera looking at the subject ``pose_world`` (17, 3) mm, world Z up.

    Intrinsics, lens distortion, image size and ``id`` of one of the four published cameras (drawn
    uniformly); centre at a uniform azimuth,
    distance ``DISTANCE_MM`` from the root and chest height; optical axis at the root plus jitter.
    """
    pose = np.asarray(pose_world, dtype=np.float64)
    if pose.shape != (17, 3) or not np.all(np.isfinite(pose)):
        raise ValueError(f"expected a finite (17, 3) pose in mm, got shape {pose.shape}")
    intr = h36m_intrinsics(H36M_CAMERA_IDS[rng.integers(len(H36M_CAMERA_IDS))])
    root = pose[0]
    lo, hi = h36m_height_range()
    height = pose[:, 2].min() + rng.uniform(lo - HEIGHT_MARGIN_MM, hi + HEIGHT_MARGIN_MM)
    distance = rng.uniform(*DISTANCE_MM)
    azimuth = rng.uniform(0, 2 * np.pi)
    rise = np.clip(height - root[2], -0.9 * distance, 0.9 * distance)
    horizontal = np.sqrt(distance**2 - rise**2)
    centre = root + np.array([horizontal * np.cos(azimuth), horizontal * np.sin(azimuth), rise])
    to_root = root - centre
    yaw = np.arctan2(to_root[1], to_root[0]) + np.deg2rad(rng.uniform(-1, 1) * JITTER_DEG[0])
    pitch = np.arcsin(to_root[2] / distance) + np.deg2rad(rng.uniform(-1, 1) * JITTER_DEG[1])
    forward = np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    R = look_rotation(forward)
    return replace(intr, R=R, t=-R @ centre)
