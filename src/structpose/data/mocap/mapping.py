"""Declarative maps from source mocap rigs to the 17 Human3.6M joints, and placement in the H36M world.

A :class:`Rig` says, for each of the 17 joints of :data:`structpose.skeleton.H36M`, which source point
gives it: a source joint name, or an affine mix ``{name: weight}`` (weights sum to 1; negative weights
extrapolate). Source points are the reader's joints (BVH joints, ``<joint>_end`` End Sites, ASF bone
starts) plus the rig's ``sites``: points fixed in a joint's frame (source unit), for landmarks the rig
lacks (nose, top of head). A new rig is one more :class:`Rig` entry in :data:`RIGS`.

Approximations (no source has the H36M marker set):

* ``Hip`` is the midpoint of the two hip joints (thigh roots), not the source's root/pelvis joint.
* ``Spine`` is the source's lower/mid-back joint (or the mean of two) chosen so Hip-Spine is about half
  of Hip-Thorax, as in H36M. ``Thorax`` is the neck base (Daz ``neck``, Bandai ``Neck``); for the CMU
  ASF-derived rigs, whose neck base lies below the shoulder joints, the mean of the lower and upper neck
  joints, at shoulder height as in H36M.
* ``Neck/Nose`` and ``Head``: CMU ASF-derived rigs use the head bone's start (skull base, about nose
  height) moved 1 unit (56 mm) forward, and its end (``head_end``, near the top of the head). The
  Daz-friendly CMU rig has no head top and Bandai-Namco no nose/head top at all: both are sites in the
  head joint's frame, placed so Thorax-Nose and Nose-Head are about 110-130 mm as in H36M.
* Feet are the ankles (H36M ``RFoot``/``LFoot``); toes are used only to find the floor.
* amc2bvh / 3dsMax-friendly CMU BVH drop the length of the ASF ``thorax`` bone (neck and clavicles
  hang at the thorax START); ``restore`` re-inserts it (about 2 CMU units = 11 cm along the thorax). The
  exp-map files of Li et al. share that layout and use the ``cmu_amc2bvh`` rig.

World convention (H36M): millimetres, right-handed, Z up. Every source here is Y-up, so positions are
rotated by +90 degrees about X: ``(x, y, z) -> (x, -z, y)`` (a proper rotation: left stays left). Each
sequence is then shifted so the floor (a low percentile of its lowest contact point, toes/feet) is at
z = 0 and its mean Hip x, y is at the origin; the trajectory inside the sequence is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.kinematics import MocapClip
from structpose.errors import InputError
from structpose.skeleton import H36M

Point = str | Mapping[str, float]

#: Source Y-up -> H36M Z-up, a rotation of +90 degrees about X: (x, y, z) -> (x, -z, y).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

#: CMU ASF length unit: ``:units length 0.45`` -> 1 unit = 1/0.45 inch = 56.44 mm.
CMU_UNIT_MM = 25.4 / 0.45

FLOOR_PERCENTILE = 2.0


@dataclass(frozen=True)
class Rig:
    """How one source rig maps to H36M-17.

    ``joints``: H36M joint name -> source point name or ``{name: weight}``.
    ``mm_per_unit``: millimetres per source length unit. ``contacts``: points that touch the floor (toes),
    ``contact_mm`` above it when they do (joint centres, e.g. Bandai-Namco's toe joint, sit above the sole).
    ``sites``: extra points ``name -> (joint, offset in that joint's frame, source unit)``.
    ``restore``: ``(joint, offset)`` pairs; all descendants of ``joint`` move by ``offset`` in its frame.
    ``to_world``: (3, 3) rotation from source axes to the Z-up world. ``drop_first_frame``: added T-pose.
    """

    name: str
    joints: Mapping[str, Point]
    mm_per_unit: float
    contacts: tuple[str, ...]
    sites: Mapping[str, tuple[str, tuple[float, float, float]]] = field(default_factory=dict)
    restore: tuple[tuple[str, tuple[float, float, float]], ...] = ()
    contact_mm: float = 0.0
    to_world: np.ndarray = field(default_factory=lambda: Y_UP_TO_Z_UP)
    drop_first_frame: bool = False

    def __post_init__(self) -> None:
        if set(self.joints) != set(H36M.names):
            raise InputError(f"rig {self.name}: map all 17 H36M joints, exactly {', '.join(H36M.names)}")
        for name, point in self.joints.items():
            if not isinstance(point, str) and abs(sum(point.values()) - 1.0) > 1e-9:
                raise InputError(f"rig {self.name}: the weights of {name} must sum to 1, not {sum(point.values())}")

    def required_joints(self) -> set[str]:
        """Source joint names the rig reads (its sites resolved to their joints)."""
        points = {p for spec in self.joints.values() for p in ([spec] if isinstance(spec, str) else spec)}
        points |= set(self.contacts)
        named = {self.sites[p][0] if p in self.sites else p for p in points}
        return named | {joint for joint, _ in self.restore}


def _mid(a: str, b: str) -> dict[str, float]:
    return {a: 0.5, b: 0.5}


#: The 12 limb joints shared by the CMU ASF-derived rigs (raw ASF names, bone starts).
_ASF_LIMBS = {
    "RHip": "rfemur", "RKnee": "rtibia", "RFoot": "rfoot", "LHip": "lfemur", "LKnee": "ltibia", "LFoot": "lfoot",
    "LShoulder": "lhumerus", "LElbow": "lradius", "LWrist": "lwrist",
    "RShoulder": "rhumerus", "RElbow": "rradius", "RWrist": "rwrist",
}  # fmt: skip
_ASF_JOINTS = _ASF_LIMBS | {
    "Hip": _mid("lfemur", "rfemur"),
    "Spine": "upperback",
    "Thorax": _mid("lowerneck", "upperneck"),
    "Neck/Nose": "nose",
    "Head": "head_end",
}
_ASF_SITES = {"nose": ("head", (0.0, 0.0, 1.0))}
_ASF_CONTACTS = ("ltoes", "rtoes", "ltoes_end", "rtoes_end")
_THORAX_UNITS = 2.0  # typical CMU thorax bone (subject 35: 2.06 units; the upperback is 1.99-2.14)

CMU_ASF = Rig("cmu_asf", _ASF_JOINTS, CMU_UNIT_MM, _ASF_CONTACTS, _ASF_SITES)

CMU_AMC2BVH = Rig(
    "cmu_amc2bvh", _ASF_JOINTS, CMU_UNIT_MM, _ASF_CONTACTS, _ASF_SITES, restore=(("thorax", (0, _THORAX_UNITS, 0)),)
)

CMU_MAX = Rig(
    "cmu_max",
    {
        "Hip": _mid("LeftHip", "RightHip"),
        "RHip": "RightHip",
        "RKnee": "RightKnee",
        "RFoot": "RightAnkle",
        "LHip": "LeftHip",
        "LKnee": "LeftKnee",
        "LFoot": "LeftAnkle",
        "Spine": "Chest",
        "Thorax": _mid("lowerneck", "Neck"),
        "Neck/Nose": "nose",
        "Head": "Head_end",
        "LShoulder": "LeftShoulder",
        "LElbow": "LeftElbow",
        "LWrist": "LeftWrist",
        "RShoulder": "RightShoulder",
        "RElbow": "RightElbow",
        "RWrist": "RightWrist",
    },
    CMU_UNIT_MM,
    ("LeftToe", "RightToe", "LeftToe_end", "RightToe_end"),
    {"nose": ("Head", (0.0, 0.0, 1.0))},
    restore=(("Chest2", (0, _THORAX_UNITS, 0)),),
)

CMU_DAZ = Rig(
    "cmu_daz",
    {
        "Hip": _mid("lThigh", "rThigh"),
        "RHip": "rThigh",
        "RKnee": "rShin",
        "RFoot": "rFoot",
        "LHip": "lThigh",
        "LKnee": "lShin",
        "LFoot": "lFoot",
        "Spine": _mid("abdomen", "chest"),
        "Thorax": "neck",
        "Neck/Nose": "nose",
        "Head": "head_top",
        "LShoulder": "lShldr",
        "LElbow": "lForeArm",
        "LWrist": "lHand",
        "RShoulder": "rShldr",
        "RElbow": "rForeArm",
        "RWrist": "rHand",
    },
    10.0,
    ("lFoot_end", "rFoot_end"),
    {"nose": ("head", (0.0, 3.0, 6.0)), "head_top": ("head", (0.0, 15.0, 2.0))},  # head frame: Y up, Z forward
    contact_mm=20.0,  # toe End Site height in the added T-pose frame 0
    drop_first_frame=True,
)

BANDAI = Rig(
    "bandai",
    {
        "Hip": _mid("UpperLeg_L", "UpperLeg_R"),
        "RHip": "UpperLeg_R",
        "RKnee": "LowerLeg_R",
        "RFoot": "Foot_R",
        "LHip": "UpperLeg_L",
        "LKnee": "LowerLeg_L",
        "LFoot": "Foot_L",
        "Spine": _mid("Spine", "Chest"),
        "Thorax": "Neck",
        "Neck/Nose": "nose",
        "Head": "head_top",
        "LShoulder": "UpperArm_L",
        "LElbow": "LowerArm_L",
        "LWrist": "Hand_L",
        "RShoulder": "UpperArm_R",
        "RElbow": "LowerArm_R",
        "RWrist": "Hand_R",
    },
    10.0,
    ("Toes_L", "Toes_R"),
    {"nose": ("Head", (4.0, 5.0, 0.0)), "head_top": ("Head", (15.0, 1.5, 0.0))},  # Head frame: X up, Y forward
    contact_mm=40.0,  # toe joint height above the raw floor (y = 0) in every take
)

RIGS: Mapping[str, Rig] = MappingProxyType({r.name: r for r in (CMU_DAZ, CMU_MAX, CMU_ASF, CMU_AMC2BVH, BANDAI)})


def _point(clip: MocapClip, positions: np.ndarray, rig: Rig, name: str) -> np.ndarray:
    """(F, 3) source-unit position of a joint or site of ``rig`` in ``clip``."""
    if name in rig.sites:
        joint, offset = rig.sites[name]
        j = clip.index(joint)
        return positions[:, j] + clip.orientations[:, j] @ np.asarray(offset, dtype=np.float64)
    return positions[:, clip.index(name)]


def _restored_positions(clip: MocapClip, rig: Rig) -> np.ndarray:
    """Clip positions with ``rig.restore`` applied: (F, J, 3) source unit."""
    positions = clip.positions.copy()
    for joint, offset in rig.restore:
        j = clip.index(joint)
        below = np.zeros(len(clip.names), dtype=bool)
        for k, p in enumerate(clip.parents):
            below[k] = p >= 0 and (p == j or below[p])
        positions[:, below] += (clip.orientations[:, j] @ np.asarray(offset, dtype=np.float64))[:, None]
    return positions


def map_clip(clip: MocapClip, rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """Map a source clip to H36M-17 in the world frame (mm, Z up), before floor/centre placement.

    Returns ``poses`` (F', 17, 3) and ``contacts`` (F', K, 3) mm, with F' = F - 1 if the rig drops an
    added first frame; contacts are lowered by ``rig.contact_mm`` to the floor they stand on.

    Raises:
        MocapFormatError: the clip lacks joints the rig reads, or has no frame left once the rig's added
            first frame is dropped; names the clip's file.
    """
    missing = rig.required_joints() - set(clip.names)
    if missing:
        raise MocapFormatError(
            clip.path, f"rig {rig.name!r} needs joints missing from the file: {sorted(missing)}; is it the right rig?"
        )
    if rig.drop_first_frame and clip.num_frames < 2:
        raise MocapFormatError(
            clip.path,
            f"only the added T-pose frame: rig {rig.name!r} drops the first frame of every take (an added T-pose), "
            "so a take needs at least 2 frames",
        )
    positions = _restored_positions(clip, rig)
    points: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in points:
            points[name] = _point(clip, positions, rig, name)
        return points[name]

    joints = []
    for name in H36M.names:
        spec = rig.joints[name]
        weights = {spec: 1.0} if isinstance(spec, str) else spec
        joints.append(sum(w * get(src) for src, w in weights.items()))
    poses = np.stack(joints, axis=1)
    contacts = np.stack([get(c) for c in rig.contacts], axis=1)
    start = 1 if rig.drop_first_frame else 0
    scale = rig.mm_per_unit * rig.to_world.T
    return poses[start:] @ scale, contacts[start:] @ scale - np.array([0.0, 0.0, rig.contact_mm])


def place_on_floor(poses: np.ndarray, contacts: np.ndarray) -> np.ndarray:
    """Shift a sequence: floor (``FLOOR_PERCENTILE`` of the per-frame lowest contact) to z = 0, mean Hip x, y
    to the origin. ``poses`` (F, 17, 3), ``contacts`` (F, K, 3), mm, Z up, F >= 1 -> (F, 17, 3).

    Raises:
        InputError: no frames (F = 0).
    """
    if poses.shape[0] == 0 or contacts.shape[0] == 0:
        raise InputError(f"no frames to place on the floor (poses {poses.shape}, contacts {contacts.shape})")
    floor = np.percentile(contacts[..., 2].min(axis=1), FLOOR_PERCENTILE)
    centre = poses[:, H36M.root, :2].mean(axis=0)
    return poses - np.array([centre[0], centre[1], floor])
