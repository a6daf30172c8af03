"""Render one training sample: a 3D pose seen by a camera, as a person-centred square crop with labels.

The crop is the square box around the projected joints (:func:`structpose.crop.person_box`). Only the
crop is rendered, ray cast directly at crop resolution through the (distorting) lens with ``supersample``
x ``supersample`` rays per pixel (box filtered): the same picture as rendering the full camera image and
cutting the box out of it, at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from structpose.camera import Camera
from structpose.crop import DEFAULT_MARGIN, person_box, to_crop
from structpose.render.appearance import Appearance
from structpose.render.body import build_body
from structpose.render.compose import compose
from structpose.render.raycast import capsule_boxes, crop_rays, raycast
from structpose.render.shading import sample_light, shade_body
from structpose.skeleton import H36M

#: Joints whose normalised image radius exceeds this are refused (the lens model stops being invertible).
MAX_NORMALISED_RADIUS = 0.85


@dataclass(frozen=True)
class RenderedSample:
    """One rendered training sample.

    ``image`` (S, S, 3) uint8 crop; ``pose3d`` (17, 3) float32 root-relative pose in the camera frame, mm;
    ``joints2d`` (17, 2) float32 joint projections (with lens distortion) in crop pixels; ``camera``;
    ``box`` (4,) ``[x0, y0, x1, y1]`` of the crop in full-image pixels; ``root_cam`` (3,) root in the camera
    frame, mm. With ``maps=True``: ``mask`` (S, S) float32 person coverage in [0, 1], ``depth`` (S, S)
    float32 nearest body depth z in mm (``inf`` off the body), ``parts`` (S, S) int8 index into
    :data:`~structpose.render.body.PARTS` of the body part at each pixel's first sub-sample (-1: none).
    """

    image: np.ndarray
    pose3d: np.ndarray
    joints2d: np.ndarray
    camera: Camera
    box: np.ndarray
    root_cam: np.ndarray
    mask: np.ndarray | None = None
    depth: np.ndarray | None = None
    parts: np.ndarray | None = None


def as_pose(pose_world: np.ndarray) -> np.ndarray:
    """``pose_world`` as a (17, 3) float64 array; ``ValueError`` when it has another shape or a non-finite value."""
    pose = np.asarray(pose_world, dtype=np.float64)
    if pose.shape != (H36M.num_joints, 3) or not np.all(np.isfinite(pose)):
        raise ValueError(f"expected a finite ({H36M.num_joints}, 3) pose in mm, got shape {pose.shape}")
    return pose


def check_pose(joints_cam: np.ndarray) -> None:
    """Raise ``ValueError`` for poses that cannot be rendered by this camera."""
    z = joints_cam[:, 2]
    if np.any(z <= 0):
        names = ", ".join(H36M.names[i] for i in np.flatnonzero(z <= 0))
        raise ValueError(f"joints behind the camera (z <= 0 in the camera frame): {names}")
    radius = np.hypot(joints_cam[:, 0], joints_cam[:, 1]) / z
    if np.any(radius > MAX_NORMALISED_RADIUS):
        names = ", ".join(H36M.names[i] for i in np.flatnonzero(radius > MAX_NORMALISED_RADIUS))
        raise ValueError(f"joints outside the camera's field of view: {names}")


@lru_cache(maxsize=8)
def _pixel_of_ray(size: int, ss: int) -> np.ndarray:
    """Output pixel (flat index into size x size) of each ray of the (size*ss) x (size*ss) grid, flat."""
    i = np.arange(size * ss) // ss
    return (i[:, None] * size + i[None, :]).ravel()


def render_sample(
    pose_world: np.ndarray,
    camera: Camera,
    appearance: Appearance,
    rng: np.random.Generator,
    size: int = 128,
    margin: float = DEFAULT_MARGIN,
    *,
    supersample: int = 2,
    maps: bool = False,
    cull: bool = True,
) -> RenderedSample:
    """Render ``pose_world`` (17, 3) mm (world frame, Z up) seen by ``camera``, worn by ``appearance``.

    ``rng`` draws the light, background, floor and sensor noise: the same state gives the same bytes.
    ``size``: crop side S in pixels; ``margin``: relative margin of the person box; ``supersample``: rays
    per pixel along each axis; ``maps``: also return mask/depth/parts; ``cull``: test each capsule only
    against the rays in its screen-space bounding box (``False`` tests all rays, for benchmarking).
    Raises ``ValueError`` for a malformed pose, or one (partly) behind or beside the camera.
    """
    pose = as_pose(pose_world)
    joints_cam = camera.world_to_camera(pose)
    check_pose(joints_cam)
    joints_full = camera.project(joints_cam)
    box = person_box(joints_full, margin)
    n = size * supersample

    body_world = build_body(pose, appearance)
    body = body_world.transformed(camera.R, camera.t)
    if np.any(np.minimum(body.a[:, 2], body.b[:, 2]) - body.radius <= 1.0):
        raise ValueError("the body reaches behind the camera (the camera is inside or too close to it)")
    rays = crop_rays(camera, box, n)
    windows = capsule_boxes(camera, box, n, body.a, body.b, body.radius) if cull else None
    dist, index = raycast(rays, body.a, body.b, body.radius, windows)

    light = sample_light(rng, camera.R)
    hits = np.flatnonzero(index.ravel() >= 0)
    points = np.take(rays.reshape(-1, 3), hits, axis=0).T * dist.ravel()[hits]  # (3, M) mm
    shaded = shade_body(points, index.ravel()[hits], body, appearance, light, camera.R, camera.t)
    pixel = _pixel_of_ray(size, supersample)[hits]
    weight = 1.0 / supersample**2
    colour = np.stack([np.bincount(pixel, shaded[c], size * size) for c in range(3)]) * weight
    coverage = (np.bincount(pixel, minlength=size * size) * weight).reshape(size, size).astype(np.float32)

    floor_z = body_world.lowest_point()
    image = compose(colour.reshape(3, size, size), coverage, rng, camera, box, floor_z, pose[0], light)

    extra = {}
    if maps:
        depth = np.where(index >= 0, dist * rays[..., 2], np.inf)
        extra = {
            "mask": coverage,
            "depth": depth.reshape(size, supersample, size, supersample).min(axis=(1, 3)).astype(np.float32),
            "parts": index[::supersample, ::supersample].astype(np.int8),
        }
    return labelled_sample(image, joints_cam, joints_full, camera, box, size, **extra)


def labelled_sample(
    image: np.ndarray,
    joints_cam: np.ndarray,
    joints_full: np.ndarray,
    camera: Camera,
    box: np.ndarray,
    size: int,
    **maps: np.ndarray,
) -> RenderedSample:
    """A :class:`RenderedSample` of a rendered crop ``image`` (S, S, 3) uint8 and its labels: ``joints_cam``
    (17, 3) mm camera frame, their projections ``joints_full`` (17, 2) full-image px, the crop ``box``."""
    root_cam = joints_cam[0]
    return RenderedSample(
        image=np.ascontiguousarray(image),
        pose3d=(joints_cam - root_cam).astype(np.float32),
        joints2d=to_crop(joints_full, box, size).astype(np.float32),
        camera=camera,
        box=box,
        root_cam=root_cam,
        **maps,
    )
