"""Reader of the exponential-map CMU text format of Li et al. (CVPR 2018), with its skeleton JSON.

Each line of a take is one frame of comma-separated floats: the root position (3, CMU ASF units) and one
exponential map (3, radians) per joint of a fixed 38-joint CMU tree (``skeleton_from_li2018_fk.json``:
``parent_0based``, ``offset_raw_units``). The authors' forward kinematics uses row vectors,
``p_j = offset_j @ Rw_parent + p_parent`` and ``Rw_j = R_j @ Rw_parent`` with ``R_j = expmap(r_j)``;
in our column-vector convention the local rotation is therefore ``expmap(r_j).T``. Only the root is
translated. The authors scale offsets by 70; we keep CMU units (1 unit = 56.44 mm, see ``mapping``).

The tree is the amc2bvh layout of the CMU ASF skeleton (same zero-length thorax/wrist artifacts), so the
joints get the raw ASF names of :data:`LI2018_JOINTS` and map to H36M with the ``cmu_amc2bvh`` rig.
No frame rate is stated upstream; the frame counts match CMU's native 120 Hz.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.kinematics import MocapClip, checked_forward_kinematics
from structpose.data.mocap.rotations import expmap_to_matrix
from structpose.data.mocap.text import read_lines

LI2018_FPS = 120.0

_SIDE = ("hipjoint", "femur", "tibia", "foot", "toes", "toes_end")
_ARM = ("clavicle", "humerus", "radius", "wrist", "hand", "fingers", "fingers_end", "thumb", "thumb_end")
#: Joint names of the 38-joint tree, in file order (checked against the parents in :func:`load_li2018`).
LI2018_JOINTS: tuple[str, ...] = (
    ("root",)
    + tuple("l" + n for n in _SIDE)
    + tuple("r" + n for n in _SIDE)
    + ("lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head", "head_end")
    + tuple("l" + n for n in _ARM)
    + tuple("r" + n for n in _ARM)
)
LI2018_PARENTS = (
    (-1, 0, 1, 2, 3, 4, 5, 0, 7, 8, 9, 10, 11, 0, 13, 14, 15, 16, 17, 18)
    + (15, 20, 21, 22, 23, 24, 25, 23, 27)
    + (15, 29, 30, 31, 32, 33, 34, 32, 36)
)


def read_li2018_skeleton(path: str | Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Parents (38,) and offsets (38, 3) in CMU units from ``skeleton_from_li2018_fk.json``.

    Raises:
        MocapFormatError: not UTF-8 JSON with ``parent_0based`` (the 38-joint tree) and finite
            ``offset_raw_units`` (38 x 3).
    """
    path = Path(path)
    text = "\n".join(read_lines(path))
    try:
        data = json.loads(text)
        parents = tuple(int(p) for p in data["parent_0based"])
        offsets = np.asarray(data["offset_raw_units"], dtype=np.float64).reshape(len(parents), 3)
    except (KeyError, TypeError, ValueError) as err:
        raise MocapFormatError(path, f"not a Li et al. skeleton JSON ({type(err).__name__}: {err})") from None
    if parents != LI2018_PARENTS:
        raise MocapFormatError(path, "parents differ from the 38-joint Li et al. CMU tree")
    if not np.isfinite(offsets).all():
        raise MocapFormatError(path, "NaN or infinite offset")
    return parents, offsets


def load_li2018(path: str | Path, skeleton_json: str | Path, fps: float = LI2018_FPS) -> MocapClip:
    """Read one exp-map take and run forward kinematics -> :class:`MocapClip` (CMU units, Y up)."""
    path = Path(path)
    parents, offsets = read_li2018_skeleton(skeleton_json)
    lines = read_lines(path)
    width = 3 + 3 * len(parents)
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != width:
            raise MocapFormatError(path, f"{len(fields)} values, expected {width}", n)
        try:
            row = np.array(fields, dtype=np.float64)
        except ValueError:
            raise MocapFormatError(path, "non-numeric value", n) from None
        if not np.isfinite(row).all():
            raise MocapFormatError(path, "NaN or infinite value", n)
        rows.append(row)
    if not rows:
        raise MocapFormatError(path, "no frames")
    values = np.stack(rows)
    rotations = np.swapaxes(expmap_to_matrix(values[:, 3:].reshape(len(rows), len(parents), 3)), -1, -2)
    translations = np.broadcast_to(offsets, (len(rows), len(parents), 3)).copy()
    translations[:, 0] += values[:, :3]
    positions, orientations = checked_forward_kinematics(path, parents, translations, rotations)
    return MocapClip(LI2018_JOINTS, parents, positions, orientations, fps, path)
