"""Acclaim ASF (skeleton) / AMC (motion) reader -- the original CMU mocap format -- with forward kinematics.

ASF gives, per bone, a rest ``direction`` (unit vector, world axes), a ``length`` (ASF length unit; CMU:
``:units length 0.45`` -> 1 unit = 1/0.45 inch = 56.44 mm), an ``axis`` (Euler angles + order defining the
bone's local frame ``C``) and its ``dof`` (rotational degrees of freedom, in AMC value order). AMC gives
per frame the root's ``order`` values and each bone's dof values.

Kinematics (Acclaim convention, column vectors): ``M_bone = M_parent @ C @ R @ C^-1`` with ``R`` the dof
rotations applied in the listed order (``rx ry rz`` -> ``Rz @ Ry @ Rx``; the ASF axis order ``XYZ`` the
same way) and a bone's end ``= start + length * M_bone @ direction``. The clip has one joint per bone,
placed at the bone's START (as amc2bvh names its BVH joints), the root, and ``<bone>_end`` for leaf bones,
so the raw-ASF mapping serves both this reader and amc2bvh BVH files. Root translation values from the
AMC replace the ASF ``position``.

Errors raise :class:`MocapFormatError` naming file and line: a file that is not UTF-8, a missing section,
a :root ``order`` other than TX TY TZ RX RY RZ, an axis order other than three of X, Y, Z, a position,
orientation, direction, axis or length that is not the right number of finite numbers, a bone defined
twice or named ``root``, a :hierarchy that is not a tree (a bone attached twice, ``root`` as a child),
AMC frames out of order, missing, with the wrong number of values, non-numeric or NaN/inf values, and
values so large that the joint positions overflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.kinematics import MocapClip, checked_forward_kinematics
from structpose.data.mocap.rotations import euler_to_matrix
from structpose.data.mocap.text import finite_numbers, read_lines

CMU_FPS = 120.0

_ROOT_CHANNELS = ("TX", "TY", "TZ", "RX", "RY", "RZ")
_AXIS_ORDER = re.compile(r"^[XYZ]{3}$")
_FRAME_NUMBER = re.compile(r"^[0-9]+$")

Entries = list[tuple[int, list[str]]]  # (line number, tokens) of one ASF section


@dataclass
class AsfBone:
    """One ASF bone. ``direction`` (3,) unit vector; ``length`` ASF units; ``axis`` (3,) angles; ``dof`` names."""

    name: str
    direction: np.ndarray = field(default_factory=lambda: np.zeros(3))
    length: float = 0.0
    axis: np.ndarray = field(default_factory=lambda: np.zeros(3))
    axis_order: str = "XYZ"
    dof: tuple[str, ...] = ()


@dataclass
class AsfSkeleton:
    """A parsed ASF file: the root's AMC value ``order`` and rest frame, bones, and parent bone names."""

    path: Path
    root_order: tuple[str, ...]
    root_position: np.ndarray
    root_axis: np.ndarray
    root_axis_order: str
    bones: dict[str, AsfBone]
    parent: dict[str, str]
    degrees: bool = True

    def joint_tree(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Clip joint names (root, bone starts in hierarchy order, leaf ``<bone>_end``) and parent indices."""
        names, parents = ["root"], [-1]
        children: dict[str, list[str]] = {}
        for child, par in self.parent.items():
            children.setdefault(par, []).append(child)
        stack = list(reversed(children.get("root", [])))
        while stack:
            bone = stack.pop()
            names.append(bone)
            parents.append(names.index(self.parent[bone]))
            if bone not in children:
                names.append(f"{bone}_end")
                parents.append(len(names) - 2)
            stack.extend(reversed(children.get(bone, [])))
        return tuple(names), tuple(parents)


def _euler(values: np.ndarray, order: str, degrees: bool) -> np.ndarray:
    """Acclaim rotation: angles (..., n) applied in ``order`` (first listed acts first) -> (..., 3, 3)."""
    values = np.asarray(values, dtype=np.float64)
    deg = values if degrees else np.rad2deg(values)
    return euler_to_matrix(deg[..., ::-1], order[::-1])


def read_asf(path: str | Path) -> AsfSkeleton:
    """Parse an ASF skeleton file.

    Raises:
        MocapFormatError: the file is not a readable ASF file (see the module docstring); names file and line.
    """
    path = Path(path)
    sections, starts = _sections(path)
    units = {toks[0].lower(): toks[1] for _, toks in sections.get("units", []) if len(toks) > 1}
    degrees = units.get("angle", "deg").lower().startswith("deg")
    root_order, position, orientation, axis_order = _parse_root(path, sections["root"], starts["root"])
    bones = _parse_bones(path, sections["bonedata"])
    parent = _parse_hierarchy(path, sections["hierarchy"], bones)
    return AsfSkeleton(path, root_order, position, orientation, axis_order, bones, parent, degrees)


def _sections(path: Path) -> tuple[dict[str, Entries], dict[str, int]]:
    """The ``:section`` blocks of an ASF file (comments and blank lines dropped) and their header lines."""
    sections: dict[str, Entries] = {}
    starts: dict[str, int] = {}
    current = None
    for n, line in enumerate(read_lines(path), start=1):
        toks = line.split("#")[0].split()
        if not toks:
            continue
        if toks[0].startswith(":"):
            current = toks[0][1:].lower()
            sections[current] = [(n, toks[1:])] if len(toks) > 1 else []
            starts[current] = n
        elif current is not None:
            sections[current].append((n, toks))
    for required in ("root", "bonedata", "hierarchy"):
        if required not in sections:
            raise MocapFormatError(path, f"no :{required} section")
    return sections, starts


def _vector(path: Path, line: int, tokens: list[str], what: str) -> np.ndarray:
    """Three finite numbers (3,) of the ASF line ``what``."""
    if len(tokens) != 3:
        raise MocapFormatError(path, f"bad {what!r} line: 3 numbers expected, found {len(tokens)}", line)
    return finite_numbers(path, tokens, line, f"bad {what!r} line")


def _axis_order(path: Path, line: int, token: str) -> str:
    """An Euler axis order: three of X, Y, Z (upper case), e.g. ``XYZ``."""
    if not _AXIS_ORDER.match(token.upper()):
        raise MocapFormatError(path, f"bad axis order {token!r} (three of X, Y, Z, e.g. XYZ)", line)
    return token.upper()


def _parse_root(path: Path, entries: Entries, start: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, str]:
    """The :root section -> (AMC value order, position (3,), orientation (3,) angles, axis order)."""
    root = {toks[0].lower(): (n, toks[1:]) for n, toks in entries}
    missing = [key for key in ("order", "axis", "position", "orientation") if key not in root]
    if missing:
        raise MocapFormatError(path, f"bad :root section: no {missing[0]!r} line", start)
    n, order = root["order"]
    bad = [t for t in order if t.upper() not in _ROOT_CHANNELS]
    if bad:
        raise MocapFormatError(path, f"bad :root order value {bad[0]!r} (use {' '.join(_ROOT_CHANNELS)})", n)
    n, axis = root["axis"]
    axis_order = _axis_order(path, n, " ".join(axis))
    position = _vector(path, *root["position"], "position")
    orientation = _vector(path, *root["orientation"], "orientation")
    return tuple(t.upper() for t in order), position, orientation, axis_order


def _parse_bones(path: Path, entries: Entries) -> dict[str, AsfBone]:
    """The :bonedata section: ``begin`` ... ``end`` blocks -> bones by name."""
    bones: dict[str, AsfBone] = {}
    bone: AsfBone | None = None
    for n, toks in entries:
        key = toks[0].lower()
        if key == "begin":
            if bone is not None:
                raise MocapFormatError(path, "'begin' inside a bone block (a missing 'end')", n)
            bone = AsfBone(name="")
        elif key == "end":
            if bone is None or not bone.name:
                raise MocapFormatError(path, "bone without a name", n)
            bones[bone.name] = bone
            bone = None
        elif bone is None:
            raise MocapFormatError(path, f"{toks[0]!r} outside a begin/end block", n)
        else:
            _bone_field(path, n, toks, bone, bones)
    if bone is not None:
        raise MocapFormatError(path, "bone block without 'end'", entries[-1][0])
    return bones


def _bone_field(path: Path, n: int, toks: list[str], bone: AsfBone, bones: dict[str, AsfBone]) -> None:
    """Set one field of ``bone`` from the bonedata line ``toks`` (line ``n``); unknown keys are ignored."""
    key = toks[0].lower()
    if key in ("name", "length") and len(toks) != 2:
        raise MocapFormatError(path, f"bad {toks[0]!r} line: one value expected, found {len(toks) - 1}", n)
    if key == "name":
        if toks[1] == "root":
            raise MocapFormatError(path, "a bone named 'root', the root's own name: rename it (and in :hierarchy)", n)
        if toks[1] in bones:
            raise MocapFormatError(path, f"bone {toks[1]!r} defined twice: give each bone its own name", n)
        bone.name = toks[1]
    elif key == "direction":
        bone.direction = _vector(path, n, toks[1:], "direction")
    elif key == "length":
        bone.length = float(finite_numbers(path, toks[1:], n, "bad 'length' line")[0])
    elif key == "axis":
        if len(toks) != 5:
            raise MocapFormatError(path, "bad 'axis' line: 3 angles and an order expected, e.g. 'axis 0 0 20 XYZ'", n)
        bone.axis = _vector(path, n, toks[1:4], "axis")
        bone.axis_order = _axis_order(path, n, toks[4])
    elif key == "dof":
        bone.dof = tuple(t.lower() for t in toks[1:])
        unsupported = [d for d in bone.dof if d not in ("rx", "ry", "rz")]
        if unsupported:
            raise MocapFormatError(path, f"unsupported dof {unsupported[0]!r} of bone {bone.name!r}", n)


def _parse_hierarchy(path: Path, entries: Entries, bones: dict[str, AsfBone]) -> dict[str, str]:
    """The :hierarchy section -> parent bone name of each attached bone; it must be a tree below ``root``."""
    parent: dict[str, str] = {}
    for n, toks in entries:
        if toks[0].lower() in ("begin", "end"):
            continue
        for name in toks:
            if name != "root" and name not in bones:
                raise MocapFormatError(path, f"unknown bone {name!r} in :hierarchy", n)
        if toks[0] != "root" and toks[0] not in parent:
            raise MocapFormatError(path, f"bone {toks[0]!r} used as a parent before it is attached", n)
        for child in toks[1:]:
            if child == "root":
                raise MocapFormatError(path, f"'root' cannot be a child (of {toks[0]!r}): it is the tree's root", n)
            if child in parent:
                raise MocapFormatError(path, f"bone {child!r} attached twice (to {parent[child]!r} before)", n)
            parent[child] = toks[0]
    return parent


def read_amc(path: str | Path, skeleton: AsfSkeleton) -> dict[str, np.ndarray]:
    """Parse an AMC motion file -> {bone name (``"root"`` included): (F, n_values) array in AMC order}.

    Raises:
        MocapFormatError: the file is not a readable AMC file for ``skeleton``; names file and line.
    """
    path = Path(path)
    expected = {"root": len(skeleton.root_order)} | {b.name: len(b.dof) for b in skeleton.bones.values()}
    values: dict[str, list[list[str]]] = {}
    value_lines: dict[str, list[int]] = {}
    frame_lines: list[int] = []
    for n, line in enumerate(read_lines(path), start=1):
        toks = line.split()
        if not toks or toks[0].startswith(("#", ":")):
            continue
        if len(toks) == 1 and _FRAME_NUMBER.match(toks[0]):
            if int(toks[0]) != len(frame_lines) + 1:
                raise MocapFormatError(path, f"frame {toks[0]} where frame {len(frame_lines) + 1} was expected", n)
            frame_lines.append(n)
            continue
        name = toks[0]
        if not frame_lines:
            raise MocapFormatError(path, "motion values before the first frame number", n)
        if name not in expected:
            raise MocapFormatError(path, f"unknown bone {name!r}", n)
        if len(toks) - 1 != expected[name]:
            raise MocapFormatError(path, f"bone {name!r} has {len(toks) - 1} values, expected {expected[name]}", n)
        rows = values.setdefault(name, [])
        if len(rows) != len(frame_lines) - 1:
            raise MocapFormatError(path, f"bone {name!r} repeated or missing before this frame", n)
        rows.append(toks[1:])
        value_lines.setdefault(name, []).append(n)
    if not frame_lines:
        raise MocapFormatError(path, "no frames")
    return {
        name: _bone_values(path, name, values.get(name, []), value_lines.get(name, []), frame_lines, count)
        for name, count in expected.items()
    }


def _bone_values(
    path: Path, name: str, rows: list[list[str]], lines: list[int], frame_lines: list[int], count: int
) -> np.ndarray:
    """One bone's AMC values as a (F, count) array; missing frames, text and NaN raise with the line."""
    num_frames = len(frame_lines)
    if count and len(rows) != num_frames:
        raise MocapFormatError(
            path, f"bone {name!r} missing in frame {len(rows) + 1} (truncated?)", frame_lines[len(rows)]
        )
    try:
        out = np.array(rows, dtype=np.float64).reshape(num_frames, count)
    except ValueError:
        for row, line in zip(rows, lines, strict=True):
            finite_numbers(path, row, line, f"bone {name!r}")  # raises at the first non-numeric value
        raise MocapFormatError(path, f"non-numeric value for bone {name!r}", lines[0]) from None
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        raise MocapFormatError(path, f"NaN or infinite value for bone {name!r}", lines[int(np.argmin(finite))])
    return out


def asf_amc_clip(skeleton: AsfSkeleton, motion: dict[str, np.ndarray], path: Path, fps: float) -> MocapClip:
    """Forward kinematics of an AMC motion on its ASF skeleton -> :class:`MocapClip` (ASF length units)."""
    names, parents = skeleton.joint_tree()
    num_frames = motion["root"].shape[0]
    translations = np.zeros((num_frames, len(names), 3))
    rotations = np.broadcast_to(np.eye(3), (num_frames, len(names), 3, 3)).copy()
    root_vals = motion["root"]
    root_t = np.broadcast_to(skeleton.root_position, (num_frames, 3)).copy()
    for k, axis in enumerate("XYZ"):
        if f"T{axis}" in skeleton.root_order:
            root_t[:, k] = root_vals[:, skeleton.root_order.index(f"T{axis}")]
    translations[:, 0] = root_t
    rot_cols = [k for k, ch in enumerate(skeleton.root_order) if ch.startswith("R")]
    root_rot_order = "".join(skeleton.root_order[k][1] for k in rot_cols)
    c_root = _euler(skeleton.root_axis, skeleton.root_axis_order, skeleton.degrees)
    rotations[:, 0] = c_root @ _euler(root_vals[:, rot_cols], root_rot_order, skeleton.degrees) @ c_root.T
    for j, name in enumerate(names[1:], start=1):
        parent_name = names[parents[j]]
        if parent_name != "root":
            parent_bone = skeleton.bones[parent_name]
            translations[:, j] = parent_bone.length * parent_bone.direction
        if name.endswith("_end") and name not in skeleton.bones:
            continue
        bone = skeleton.bones[name]
        if bone.dof:
            c = _euler(bone.axis, bone.axis_order, skeleton.degrees)
            order = "".join(d[1].upper() for d in bone.dof)
            rotations[:, j] = c @ _euler(motion[name], order, skeleton.degrees) @ c.T
    positions, orientations = checked_forward_kinematics(path, parents, translations, rotations)
    return MocapClip(names, parents, positions, orientations, fps, path)


def load_asf_amc(asf_path: str | Path, amc_path: str | Path, fps: float = CMU_FPS) -> MocapClip:
    """Read an ASF skeleton and an AMC motion and run forward kinematics (AMC files state no rate: CMU 120 Hz).

    Returns:
        The clip: positions (F, J, 3) in ASF length units for the F >= 1 frames of the AMC file, finite.

    Raises:
        MocapFormatError: either file cannot be read (see the module docstring); names the file and line.
    """
    skeleton = read_asf(asf_path)
    return asf_amc_clip(skeleton, read_amc(amc_path, skeleton), Path(amc_path), fps)
