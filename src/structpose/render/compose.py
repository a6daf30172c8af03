"""Lay a rendered person over a random background: procedural texture, an optional floor, sensor grain.

Shared by every renderer, so that capsule and mesh people stand in the same scenes.
"""

from __future__ import annotations

import numpy as np

from structpose.camera import Camera
from structpose.render.background import FLOOR_PROBABILITY, floor_layer, procedural_background
from structpose.render.raycast import crop_rays
from structpose.render.shading import Light


def compose(
    colour: np.ndarray,
    coverage: np.ndarray,
    rng: np.random.Generator,
    camera: Camera,
    box: np.ndarray,
    floor_z: float,
    root_world: np.ndarray,
    light: Light,
) -> np.ndarray:
    """The final crop (S, S, 3) uint8.

    Args:
        colour: (3, S, S) float32 premultiplied person colour in [0, 1] (display space).
        coverage: (S, S) float32 person coverage (alpha) in [0, 1].
        rng: draws the background, whether there is a floor, the floor and the grain (in that order).
        camera: the camera; box: (4,) the crop's box in full-image pixels.
        floor_z: world height of the floor (the body's lowest point), mm; root_world: (3,) the root, mm.
        light: the scene's light (lights the floor too).
    """
    size = coverage.shape[0]
    background = procedural_background(rng, size)
    if rng.random() < FLOOR_PROBABILITY:
        pixel_angle = float(box[2] - box[0]) / (size * camera.fx)
        pixel_rays = crop_rays(camera, box, size).transpose(2, 0, 1)
        floor, on_floor = floor_layer(rng, camera, pixel_rays, floor_z, root_world, pixel_angle)
        lit = light.ambient + light.diffuse * max(float(light.direction @ camera.R[:, 2]), 0.0)
        background = np.where(on_floor, floor * (lit * light.colour)[:, None, None], background)
    image = colour + (1 - coverage) * background
    grain = rng.uniform(0, 0.08) * (rng.random((size, size), dtype=np.float32) - 0.5)
    return np.clip(image * 255 + (grain * 255 + 0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)
