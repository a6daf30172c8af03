"""Random backgrounds behind the person: procedural textures and an optional textured floor plane.

Everything is float32 RGB in [0, 1] at the output resolution, channels first: ``(3, S, S)``. Kinds:
flat colour, pixel noise, linear gradient, stripes, checkerboard and multi-octave value noise; with some
probability a floor (plain, checker or planks, in world coordinates, with a soft contact shadow under the
person) fills the part of the view below the horizon.
"""

from __future__ import annotations

import numpy as np

from structpose.camera import Camera
from structpose.render.interp import linear_matrix, resample

BACKGROUNDS: tuple[str, ...] = ("flat", "noise", "gradient", "stripes", "checker", "value_noise")
FLOOR_PROBABILITY = 0.5


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random colour (3, 1, 1) float32, ready to broadcast over (3, S, S)."""
    return (rng.random(3) ** 1.2).astype(np.float32)[:, None, None]


def _mix(c0: np.ndarray, c1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Blend two colours (3, 1, 1) by weights (S, S) in [0, 1] -> (3, S, S)."""
    return c0 + w * (c1 - c0)


def _dot(v: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """``v . rays`` for v (3,) and rays (3, S, S) -> (S, S) float32."""
    v = v.astype(np.float32)
    return v[0] * rays[0] + v[1] * rays[1] + v[2] * rays[2]


def _value_noise(rng: np.random.Generator, size: int, octaves: int) -> np.ndarray:
    """Smooth random field (size, size) in [0, 1]: bilinearly upsampled random grids, coarse to fine."""
    field = np.zeros((size, size), dtype=np.float32)
    total = 0.0
    for o in range(octaves):
        nodes = min(3 * 2**o, size)
        amp = 0.5**o
        field += amp * resample(rng.random((nodes, nodes), dtype=np.float32), linear_matrix(size, nodes))
        total += amp
    return field / total


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """One random background (3, size, size) float32 in [0, 1]."""
    kind = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    c0, c1 = _colour(rng), _colour(rng)
    ramp = np.arange(size, dtype=np.float32) / size
    angle = rng.uniform(0, np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    along = cos * ramp[None, :] + sin * ramp[:, None]  # (S, S) coordinate along a random direction
    if kind == "flat":
        img = np.broadcast_to(c0, (3, size, size))
    elif kind == "noise":
        img = c0 + np.float32(rng.uniform(0.05, 0.3)) * (rng.random((3, size, size), dtype=np.float32) - 0.5)
    elif kind == "gradient":
        img = _mix(c0, c1, (along - along.min()) / max(float(np.ptp(along)), 1e-6))
    elif kind == "stripes":
        wave = np.sin(along * np.float32(2 * np.pi / rng.uniform(0.04, 0.5)))
        img = _mix(c0, c1, (wave > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * wave)
    elif kind == "checker":
        cell = np.float32(rng.uniform(0.05, 0.35))
        across = cos * ramp[:, None] - sin * ramp[None, :]
        img = _mix(c0, c1, ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float32))
    else:
        img = _mix(c0, c1, _value_noise(rng, size, int(rng.integers(2, 5))))
    return np.clip(img, 0, 1, dtype=np.float32)


def floor_layer(
    rng: np.random.Generator,
    camera: Camera,
    rays: np.ndarray,
    floor_z: float,
    root_world: np.ndarray,
    pixel_angle: float,
) -> tuple[np.ndarray, np.ndarray]:
    """A textured floor at world height ``floor_z`` mm seen along ``rays`` (3, S, S) camera-frame unit
    directions. Returns colour (3, S, S) float32 (unlit) and coverage (S, S) bool (rays that hit it).

    ``pixel_angle``: angular size of one output pixel (rad), used to fade the texture where it would alias;
    ``root_world``: (3,) the person's root, the centre of a soft contact shadow.
    """
    up = camera.R[:, 2]  # world +z in the camera frame
    height = float(up @ camera.t) + floor_z  # signed height of the floor above the camera centre
    cos = _dot(up, rays)
    down = cos < -1e-4
    dist = height / np.where(down, cos, -1)
    hit = down & (dist > 0)
    dist = np.where(hit, dist, 0).astype(np.float32)
    # world x, y of the floor points (rows 0, 1 of camera.R.T), relative to the root
    gx = _dot(camera.R[:, 0], rays) * dist + np.float32(camera.center[0] - root_world[0])
    gy = _dot(camera.R[:, 1], rays) * dist + np.float32(camera.center[1] - root_world[1])
    c0, c1 = _colour(rng), _colour(rng)
    kind = rng.integers(3)  # plain, checker, planks
    tile = np.float32(rng.uniform(250, 900))
    if kind == 0:
        w, feature = np.zeros_like(gx), tile
    elif kind == 1:
        w, feature = ((np.floor(gx / tile) + np.floor(gy / tile)) % 2).astype(np.float32), tile
    else:  # dark gaps, a tenth of a plank wide, between planks
        w, feature = (np.abs(np.sin(gx * np.float32(np.pi / tile))) < 0.15).astype(np.float32), 0.1 * tile
    footprint = dist * np.float32(pixel_angle) / np.maximum(-cos, 1e-3)
    contrast = np.clip(1.5 - 2.0 * footprint / feature, 0, 1)  # fade to the mean where features get tiny
    w = np.where(hit, 0.5 + contrast * (w - 0.5), 0)
    shadow = 1 - 0.45 * np.exp((gx * gx + gy * gy) * np.float32(-0.5 / 300.0**2))
    return _mix(c0, c1, w) * shadow, hit
