"""Render one training sample with a skinned mesh person: an anny body from the body bank, posed on the
mocap frame (:mod:`structpose.render.retarget`), dressed by an :class:`~structpose.render.Appearance`,
rasterised with OpenGL (:mod:`structpose.render.gl`) and laid over the same backgrounds as the capsules.

The lens distortion is applied per vertex (triangles are straight in the distorted image: at the crop's
scale the error is far below a pixel). The label is the body's own joints (see ``retarget``), so
``pose3d`` and ``joints2d`` are those of the person in the picture.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from structpose.camera import Camera
from structpose.crop import DEFAULT_MARGIN, person_box, to_crop
from structpose.render.appearance import Appearance
from structpose.render.bodybank import PARTS, BodyBank, load_body_bank
from structpose.render.compose import compose
from structpose.render.gl import MeshRaster, Shading
from structpose.render.retarget import Posed, pose_body, skin
from structpose.render.sample import RenderedSample, as_pose, check_pose, labelled_sample
from structpose.render.shading import sample_light
from structpose.skeleton import H36M

#: Clothing patterns a shirt may carry (``Shading.pattern_kind``): none, stripes, dots, diagonal stripes.
PATTERNS = ("plain", "stripes", "dots", "diagonal")
PATTERN_PROBABILITIES = (0.55, 0.15, 0.15, 0.15)
_PART = {name: i for i, name in enumerate(PARTS)}
_NEAR_MM = 1.0  # every vertex must be this far in front of the camera
MAX_BONE_MM = 1000.0  # a mocap bone longer than this is a malformed pose (or one not in mm)


def check_bones(pose: np.ndarray) -> None:
    """Raise ``ValueError`` for a pose (17, 3) whose bones cannot be a person's in mm: the body takes only
    the bones' directions, so a wrong length would otherwise pass unnoticed."""
    lengths = H36M.bone_lengths(pose[None])[0]
    if lengths.max() < 10.0:
        raise ValueError(f"the longest bone is {lengths.max():.3g} long: the pose is not in mm (metres?)")
    long = [H36M.limb_name(limb) for limb, n in zip(H36M.limbs, lengths, strict=True) if n > MAX_BONE_MM]
    if long:
        raise ValueError(f"bones longer than {MAX_BONE_MM:.0f} mm ({', '.join(long)}): a malformed pose")


@lru_cache(maxsize=4)
def _raster(size: int) -> MeshRaster:
    """The process's rasteriser of the shipped bank's topology at ``size`` px (one GL context per process)."""
    bank = load_body_bank()
    return MeshRaster(bank.faces, bank.vertices.shape[1], size)


@lru_cache(maxsize=256)
def _rest_normals(k: int) -> np.ndarray:
    return load_body_bank().rest_normals(k)


def vertex_colours(bank: BodyBank, k: int, app: Appearance) -> tuple[np.ndarray, np.ndarray]:
    """Base colour (V, 3) float32 of every vertex of body ``k`` dressed by ``app``, and the shirt flag (V,)
    float32 (1 where the shirt's pattern is drawn).

    Shirt on the torso and upper arms (forearms with long sleeves), trousers on the pelvis and thighs (shins
    with long trousers), shoes on the feet, skin elsewhere; on the head, hair above ``app.hairline`` on the
    front and down to ``app.hair_low`` elsewhere (by the rest normal, as the capsule head is painted).
    """
    part = bank.part
    top = np.isin(part, [_PART["torso"], _PART["upper_arm"]] + ([_PART["forearm"]] if app.long_sleeves else []))
    bottom = np.isin(part, [_PART["pelvis"], _PART["thigh"]] + ([_PART["shin"]] if app.long_pants else []))
    colour = np.empty((len(part), 3), np.float32)
    colour[:] = app.skin
    colour[top] = app.top
    colour[bottom] = app.bottom
    colour[part == _PART["foot"]] = app.shoes
    head = part == _PART["head"]
    n = _rest_normals(k)[head]
    up, fwd = n[:, 2], -n[:, 1]  # rest frame: Z up, the body faces -Y
    face = (fwd > 0.25) & (up < app.hairline)
    hair = ~face & (up > app.hair_low)
    head_colour = np.where(hair[:, None], np.float32(app.hair), np.float32(app.skin))
    colour[head] = head_colour
    return colour, top.astype(np.float32)


def _clip_coordinates(points_cam: np.ndarray, camera: Camera, box: np.ndarray, size: int) -> np.ndarray:
    """Clip coordinates (V, 4) float32 of camera-frame points (V, 3) mm in the crop ``box``, lens included:
    ``w`` is the depth, so the rasteriser interpolates perspective-correctly."""
    uv = to_crop(camera.project(points_cam), box, size)
    z = points_cam[:, 2]
    lo, hi = float(z.min()) - 10.0, float(z.max()) + 10.0
    ndc = np.empty((len(z), 4))
    ndc[:, 0] = 2 * uv[:, 0] / size - 1
    ndc[:, 1] = 1 - 2 * uv[:, 1] / size
    ndc[:, 2] = 2 * (z - lo) / (hi - lo) - 1
    ndc[:, :3] *= z[:, None]
    ndc[:, 3] = z
    return ndc.astype(np.float32)


def pose_bank_body(
    pose_world: np.ndarray, bank: BodyBank, k: int, posed: Posed | None = None
) -> tuple[Posed, np.ndarray, np.ndarray]:
    """Body ``k`` of ``bank`` posed on ``pose_world`` (17, 3) mm: the :class:`Posed` solution (``posed`` if
    given) and the posed vertices (V, 3) float64 mm and unit normals (V, 3) float32, world frame."""
    posed = pose_body(pose_world, bank.joints[k]) if posed is None else posed
    verts, normals = skin(posed.matrices, bank.vertices[k], _rest_normals(k), bank.segment_index,
                          bank.segment_weight)  # fmt: skip
    return posed, verts, normals


def render_mesh_sample(
    pose_world: np.ndarray,
    camera: Camera,
    appearance: Appearance,
    body: int,
    rng: np.random.Generator,
    size: int = 128,
    margin: float = DEFAULT_MARGIN,
    *,
    maps: bool = False,
    posed: Posed | None = None,
) -> RenderedSample:
    """Render body ``body`` of the shipped body bank posed on ``pose_world`` (17, 3) mm (world frame, Z up),
    seen by ``camera``, dressed by ``appearance``.

    ``rng`` draws the shirt pattern, light, background, floor and sensor noise: the same state gives the
    same bytes on one machine. ``maps`` adds ``mask`` (coverage), ``depth`` (mm, ``inf`` off the body) and
    ``parts`` (index into :data:`~structpose.render.bodybank.PARTS`, -1 off the body).
    The label (``pose3d``, ``joints2d``) is the posed body's own joints, not the mocap's. ``posed``: the
    solution of :func:`~structpose.render.retarget.pose_body` for this pose and body, when already solved
    (in a batch: :func:`structpose.data.synth.render_split_arrays` solves a chunk at once).
    Raises ``ValueError`` for a malformed pose, or one (partly) behind or beside the camera.
    """
    pose = as_pose(pose_world)
    check_bones(pose)
    bank = load_body_bank()
    posed, verts, normals = pose_bank_body(pose, bank, body, posed)
    joints_cam = camera.world_to_camera(posed.joints)
    check_pose(joints_cam)
    verts_cam = camera.world_to_camera(verts)
    if verts_cam[:, 2].min() < _NEAR_MM:
        raise ValueError("the body reaches behind the camera (the camera is inside or too close to it)")
    joints_full = camera.project(joints_cam)
    box = person_box(joints_full, margin)

    pattern, period = int(rng.choice(len(PATTERNS), p=PATTERN_PROBABILITIES)), float(rng.uniform(60, 160))
    light = sample_light(rng, camera.R)
    shading = Shading(light.direction, light.colour, light.ambient, light.diffuse, pattern, period,
                      appearance.stripe_colour)  # fmt: skip
    colour, shirt = vertex_colours(bank, body, appearance)
    rows = np.empty((len(verts), 15), np.float32)
    rows[:, 0:4] = _clip_coordinates(verts_cam, camera, box, size)
    rows[:, 4:7] = normals @ camera.R.T.astype(np.float32)
    rows[:, 7:10] = colour
    rows[:, 10:13] = bank.vertices[body]
    rows[:, 13] = shirt
    rows[:, 14] = bank.part
    frame = _raster(size).draw(rows, shading, maps)

    image = compose(frame.rgb.transpose(2, 0, 1), frame.alpha, rng, camera, box, float(verts[:, 2].min()),
                    pose[0], light)  # fmt: skip
    extra = {}
    if maps:
        extra = {"mask": frame.alpha, "depth": frame.depth, "parts": frame.part}
    return labelled_sample(image, joints_cam, joints_full, camera, box, size, **extra)
