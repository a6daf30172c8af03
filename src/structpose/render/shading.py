"""Surface colours of body hits: capsule normals, face and hair on the head, shirt stripes, Lambert light."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from structpose.render.appearance import HEAD, TOP, Appearance
from structpose.render.body import Body

_EYES = np.array([0.10, 0.07, 0.06], dtype=np.float32)


@dataclass(frozen=True)
class Light:
    """A directional light plus ambient term. ``direction``: (3,) unit vector towards the light (camera
    frame); ``colour``: (3,) RGB tint multiplying every lit surface."""

    direction: np.ndarray
    ambient: float
    diffuse: float
    colour: np.ndarray


def sample_light(rng: np.random.Generator, R: np.ndarray) -> Light:
    """A light from a uniform azimuth, 15-75 degrees above the horizon (world Z up), seen through ``R``."""
    az, el = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(15, 75))
    world = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    colour = (1 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)
    return Light(R @ world, float(rng.uniform(0.25, 0.55)), float(rng.uniform(0.45, 0.85)), colour)


def capsule_normals(points: np.ndarray, index: np.ndarray, body: Body) -> np.ndarray:
    """Outward unit normals (3, M) float32 at surface ``points`` (3, M) of capsules ``index`` (M,)."""
    a = np.take(body.a.T.astype(np.float32), index, axis=1)
    ba = np.take((body.b - body.a).T.astype(np.float32), index, axis=1)
    pa = points - a
    s = np.clip((pa * ba).sum(axis=0) / np.maximum((ba * ba).sum(axis=0), 1e-9), 0, 1)
    n = pa - s * ba
    return n / np.sqrt((n * n).sum(axis=0))


def head_colours(normals: np.ndarray, body: Body, app: Appearance) -> np.ndarray:
    """Head colours (3, M) from head-surface normals (3, M): a skin face with two eyes on the front below
    the hairline, hair over the top and back down to ``app.hair_low``, skin under it (chin, nape)."""
    up, fwd = body.head_up.astype(np.float32), body.head_forward.astype(np.float32)
    nu, nf, nl = up @ normals, fwd @ normals, np.cross(up, fwd) @ normals
    face = (nf > 0.25) & (nu < app.hairline)
    hair = ~face & (nu > app.hair_low)
    eyes = face & (nf > 0.7) & (nu > 0.05) & (nu < 0.3) & (np.abs(nl) > 0.12) & (np.abs(nl) < 0.45)
    out = np.where(hair, np.float32(app.hair)[:, None], np.float32(app.skin)[:, None])
    out[:, eyes] = _EYES[:, None]
    return out


def shade_body(
    points: np.ndarray,
    index: np.ndarray,
    body: Body,
    app: Appearance,
    light: Light,
    R: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """Lit colours (3, M) float32 of surface ``points`` (3, M) (camera frame, mm) on capsules ``index`` (M,).

    ``body`` is in the camera frame; ``R``, ``t`` are the camera's extrinsics (shirt stripes follow world
    height).
    """
    normals = capsule_normals(points, index, body)
    material = body.material[index]
    colour = np.take(app.palette().T, material, axis=1)
    head = material == HEAD
    if head.any():
        colour[:, head] = head_colours(normals[:, head], body, app)
    if app.stripe_period > 0:
        top = np.flatnonzero(material == TOP)
        z = R[:, 2].astype(np.float32) @ points[:, top] - np.float32(R[:, 2] @ t)  # world height
        stripe = np.sin(2 * np.pi * z / app.stripe_period) > 0.3
        colour[:, top[stripe]] = np.float32(app.stripe_colour)[:, None]
    lambert = np.maximum(light.direction.astype(np.float32) @ normals, 0)
    return colour * (light.ambient + light.diffuse * lambert) * light.colour[:, None]
