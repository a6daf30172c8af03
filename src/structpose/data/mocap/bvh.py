"""BVH (Biovision hierarchy) reader with vectorised forward kinematics.

Handles any hierarchy (several roots, End Sites), any channel layout and any Euler order per joint, e.g.
CMU (ROOT ``Xposition Yposition Zposition Zrotation Yrotation Xrotation``, joints 3 rotation channels) and
Bandai-Namco (every joint 6 channels, rotation order Z X Y).

Semantics: a joint's local transform is ``T(t) @ R`` where ``R`` is the product of its rotation channels in
the order written (``Zrotation Xrotation Yrotation`` -> ``Rz @ Rx @ Ry``, column vectors) and ``t`` is its
OFFSET, except that position channels, where present, *replace* the matching OFFSET component (root
trajectories; Bandai-Namco's per-joint position channels equal the OFFSETs). End Sites become joints named
``<parent>_end`` without channels. Angles are degrees; lengths stay in the file's unit.

Malformed files raise :class:`MocapFormatError` naming file and line: not UTF-8, a bad header (an OFFSET
that is not a finite number, a channel count that is not a whole number, hierarchies nested deeper than
:data:`MAX_DEPTH`), ``Frames:`` not a whole number >= 1 (a take needs a frame) or not matching the data,
``Frame Time:`` not a positive finite number, a motion line with the wrong number of values, non-numeric
values, NaN/inf, and values so large that the joint positions overflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.kinematics import MocapClip, checked_forward_kinematics
from structpose.data.mocap.rotations import euler_to_matrix
from structpose.data.mocap.text import read_lines
from structpose.files import write_text

#: Deepest joint nesting read (real rigs: about 10 for a body, 15 with fingers).
MAX_DEPTH = 256

_CHANNEL = re.compile(r"^([XYZ])(position|rotation)$", re.IGNORECASE)
_COUNT = re.compile(r"^[0-9]+$")
_FRAMES = re.compile(r"^\s*Frames\s*:\s*(\S+)\s*$", re.IGNORECASE)
_FRAME_TIME = re.compile(r"^\s*Frame\s+Time\s*:\s*(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class BvhJoint:
    """One joint of the hierarchy. ``offset``: (3,) in the file's unit; ``channels``: e.g. ``("Zrotation", ...)``."""

    name: str
    parent: int
    offset: tuple[float, float, float]
    channels: tuple[str, ...]


@dataclass
class BvhFile:
    """A parsed BVH file. ``motion``: (F, C) channel values in file order (degrees / file length unit)."""

    path: Path
    joints: list[BvhJoint]
    motion: np.ndarray
    frame_time: float

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def parents(self) -> tuple[int, ...]:
        return tuple(j.parent for j in self.joints)

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame local translations (F, J, 3) and rotations (F, J, 3, 3) from the channel values."""
        num_frames, num_joints = self.motion.shape[0], len(self.joints)
        offsets = np.array([j.offset for j in self.joints], dtype=np.float64)
        translations = np.broadcast_to(offsets, (num_frames, num_joints, 3)).copy()
        rotations = np.broadcast_to(np.eye(3), (num_frames, num_joints, 3, 3)).copy()
        column = 0
        for j, joint in enumerate(self.joints):
            order, rot_cols = "", []
            for k, channel in enumerate(joint.channels):
                axis, kind = _CHANNEL.match(channel).groups()
                if kind.lower() == "position":
                    translations[:, j, "XYZ".index(axis.upper())] = self.motion[:, column + k]
                else:
                    order += axis.upper()
                    rot_cols.append(column + k)
            if order:
                rotations[:, j] = euler_to_matrix(self.motion[:, rot_cols], order)
            column += len(joint.channels)
        return translations, rotations

    def to_clip(self) -> MocapClip:
        """Forward kinematics of all frames -> :class:`MocapClip` (positions (F, J, 3) in the file's unit).

        Raises:
            MocapFormatError: the positions are not finite (values too large for float64).
        """
        positions, orientations = checked_forward_kinematics(self.path, self.parents, *self.local_transforms())
        return MocapClip(self.names, self.parents, positions, orientations, 1.0 / self.frame_time, self.path)


def load_bvh(path: str | Path) -> MocapClip:
    """Read a BVH file and run forward kinematics: world joint positions (F, J, 3) for all F >= 1 frames.

    Raises:
        MocapFormatError: the file is not a readable BVH file (see the module docstring); names file and line.
    """
    return read_bvh(path).to_clip()


def read_bvh(path: str | Path) -> BvhFile:
    """Parse a BVH file (hierarchy + motion block) without running forward kinematics.

    Returns:
        The joints and the (F, C) motion, F >= 1 frames of C channel values, finite.

    Raises:
        MocapFormatError: the file is not a readable BVH file (see the module docstring); names file and line.
    """
    path = Path(path)
    lines = read_lines(path)
    motion_at = next((i for i, ln in enumerate(lines) if ln.strip().upper() == "MOTION"), None)
    if motion_at is None:
        raise MocapFormatError(path, "no MOTION section")
    joints = _HierarchyParser(path, lines[:motion_at]).parse()
    num_frames, frame_time, data_at = _motion_header(path, lines, motion_at)
    num_channels = sum(len(j.channels) for j in joints)
    motion = _motion_values(path, lines, data_at, num_channels)
    if motion.shape[0] != num_frames:
        raise MocapFormatError(
            path, f"header says Frames: {num_frames} but the motion block has {motion.shape[0]} lines", motion_at + 2
        )
    return BvhFile(path, joints, motion, frame_time)


class _HierarchyParser:
    """Recursive-descent parser of the HIERARCHY block over (token, line number) pairs."""

    def __init__(self, path: Path, lines: list[str]) -> None:
        self.path = path
        self.tokens = [(tok, n + 1) for n, ln in enumerate(lines) for tok in ln.split()]
        self.pos = 0
        self.joints: list[BvhJoint] = []

    def _next(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.tokens):
            line = self.tokens[-1][1] if self.tokens else None
            raise MocapFormatError(self.path, f"hierarchy ends early, expected {what}", line)
        self.pos += 1
        return self.tokens[self.pos - 1]

    def _expect(self, word: str) -> None:
        tok, line = self._next(repr(word))
        if tok.upper() != word.upper():
            raise MocapFormatError(self.path, f"expected {word!r}, found {tok!r}", line)

    def _float(self) -> float:
        tok, line = self._next("a number")
        try:
            value = float(tok)
        except ValueError:
            raise MocapFormatError(self.path, f"expected a number, found {tok!r}", line) from None
        if not np.isfinite(value):
            raise MocapFormatError(self.path, f"non-finite number {tok!r} (NaN and inf are not allowed)", line)
        return value

    def parse(self) -> list[BvhJoint]:
        self._expect("HIERARCHY")
        while self.pos < len(self.tokens):
            self._expect("ROOT")
            self._joint(-1, self._next("a joint name")[0], 1)
        if not self.joints:
            raise MocapFormatError(self.path, "no ROOT joint in the hierarchy")
        return self.joints

    def _joint(self, parent: int, name: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            line = self.tokens[self.pos - 1][1]
            raise MocapFormatError(self.path, f"joints nested more than {MAX_DEPTH} deep (unbalanced braces?)", line)
        self._expect("{")
        index = len(self.joints)
        self.joints.append(BvhJoint(name, parent, (0.0, 0.0, 0.0), ()))
        offset, channels = (0.0, 0.0, 0.0), ()
        while True:
            tok, line = self._next("'}'")
            key = tok.upper()
            if key == "OFFSET":
                offset = (self._float(), self._float(), self._float())
            elif key == "CHANNELS":
                count_tok, _ = self._next("a channel count")
                if not _COUNT.match(count_tok):
                    raise MocapFormatError(self.path, f"bad channel count {count_tok!r}", line)
                channels = tuple(self._next("a channel name")[0] for _ in range(int(count_tok)))
                bad = [c for c in channels if not _CHANNEL.match(c)]
                if bad:
                    raise MocapFormatError(self.path, f"unknown channel {bad[0]!r}", line)
            elif key == "JOINT":
                self._joint(index, self._next("a joint name")[0], depth + 1)
            elif key == "END":
                self._expect("Site")
                self._joint(index, f"{name}_end", depth + 1)
            elif key == "}":
                self.joints[index] = BvhJoint(name, parent, offset, channels)
                return
            else:
                raise MocapFormatError(self.path, f"unexpected {tok!r} in joint {name!r}", line)


def _header_value(path: Path, lines: list[str], n: int, pattern: re.Pattern[str], label: str) -> str:
    """The value of the header line ``lines[n]`` (0-based) matching ``pattern``."""
    match = pattern.match(lines[n]) if n < len(lines) else None
    if match is None:
        raise MocapFormatError(path, f"expected '{label} <value>'", n + 1)
    return match.group(1)


def _motion_header(path: Path, lines: list[str], motion_at: int) -> tuple[int, float, int]:
    """Parse ``Frames:`` and ``Frame Time:`` after the MOTION line -> (frames, frame time s, first data line)."""
    frames = _header_value(path, lines, motion_at + 1, _FRAMES, "Frames:")
    if not _COUNT.match(frames):
        raise MocapFormatError(path, f"bad Frames: value {frames!r}, expected a whole number", motion_at + 2)
    if int(frames) == 0:
        raise MocapFormatError(path, "no motion frames (Frames: 0); a take needs at least one frame", motion_at + 2)
    text = _header_value(path, lines, motion_at + 2, _FRAME_TIME, "Frame Time:")
    try:
        frame_time = float(text)
    except ValueError:
        frame_time = float("nan")
    if not (np.isfinite(frame_time) and frame_time > 0 and np.isfinite(1.0 / frame_time)):
        raise MocapFormatError(path, f"bad Frame Time: {text!r}, expected seconds per frame > 0", motion_at + 3)
    return int(frames), frame_time, motion_at + 3


def _motion_values(path: Path, lines: list[str], start: int, num_channels: int) -> np.ndarray:
    """The motion block as an (F, C) array; blank lines are skipped, every other line must hold C numbers."""
    numbers = [n for n in range(start, len(lines)) if lines[n].strip()]
    rows = [lines[n].split() for n in numbers]
    counts = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    bad = np.flatnonzero(counts != num_channels)
    if bad.size:
        n = numbers[bad[0]]
        raise MocapFormatError(
            path, f"{counts[bad[0]]} values on a motion line, the hierarchy has {num_channels} channels", n + 1
        )
    try:
        values = np.array(list(chain.from_iterable(rows)), dtype=np.float64).reshape(len(rows), num_channels)
    except ValueError:
        for n, row in zip(numbers, rows, strict=True):
            try:
                np.array(row, dtype=np.float64)
            except ValueError as err:
                raise MocapFormatError(path, f"non-numeric motion value ({err})", n + 1) from None
        raise MocapFormatError(path, "non-numeric motion value", numbers[0] + 1) from None
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        raise MocapFormatError(path, "NaN or infinite motion value", numbers[int(np.argmin(finite))] + 1)
    return values


def format_bvh(bvh: BvhFile) -> str:
    """BVH text of ``bvh`` (joints named ``<parent>_end`` without channels or children become End Sites).

    Numbers are written with Python's shortest round-trip repr, so :func:`read_bvh` gives back the same values.
    """
    children: dict[int, list[int]] = {}
    for j, joint in enumerate(bvh.joints):
        children.setdefault(joint.parent, []).append(j)
    out = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        joint, pad = bvh.joints[j], "  " * depth
        is_end = joint.name.endswith("_end") and not joint.channels and j not in children
        head = "End Site" if is_end else ("ROOT " if joint.parent < 0 else "JOINT ") + joint.name
        out.extend([pad + head, pad + "{", f"{pad}  OFFSET {' '.join(repr(float(v)) for v in joint.offset)}"])
        if not is_end:
            out.append(f"{pad}  CHANNELS {len(joint.channels)} {' '.join(joint.channels)}".rstrip())
        for child in children.get(j, []):
            emit(child, depth + 1)
        out.append(pad + "}")

    for root in children.get(-1, []):
        emit(root, 0)
    out += ["MOTION", f"Frames: {bvh.motion.shape[0]}", f"Frame Time: {bvh.frame_time!r}"]
    out += [" ".join(repr(float(v)) for v in row) for row in bvh.motion]
    return "\n".join(out) + "\n"


def write_bvh(path: str | Path, bvh: BvhFile) -> Path:
    """Write ``bvh`` as a BVH file at ``path`` (atomically: a failed write leaves ``path`` as it was)."""
    return write_text(path, format_bvh(bvh))
