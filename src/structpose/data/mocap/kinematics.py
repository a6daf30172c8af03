"""Posed kinematic trees: forward kinematics over all frames and the :class:`MocapClip` the readers return."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structpose.data.mocap.errors import MocapFormatError


def forward_kinematics(
    parents: tuple[int, ...], translations: np.ndarray, rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World joint positions and orientations of a kinematic tree, vectorised over frames.

    ``parents``: J parent indices (-1 for a root; parents precede children).
    ``translations``: (F, J, 3) or (J, 3) position of each joint in its parent's frame (root: in the world).
    ``rotations``: (F, J, 3, 3) rotation of each joint's frame relative to its parent's frame.
    Returns ``positions`` (F, J, 3) in the unit of ``translations`` and ``orientations`` (F, J, 3, 3):
    ``p_j = p_parent + O_parent @ t_j`` and ``O_j = O_parent @ R_j``.
    """
    num_frames, num_joints = rotations.shape[:2]
    translations = np.broadcast_to(translations, (num_frames, num_joints, 3))
    positions = np.empty((num_frames, num_joints, 3))
    orientations = np.empty((num_frames, num_joints, 3, 3))
    for j, p in enumerate(parents):
        if p < 0:
            positions[:, j] = translations[:, j]
            orientations[:, j] = rotations[:, j]
        else:
            positions[:, j] = positions[:, p] + np.einsum("fab,fb->fa", orientations[:, p], translations[:, j])
            orientations[:, j] = orientations[:, p] @ rotations[:, j]
    return positions, orientations


def checked_forward_kinematics(
    path: Path, parents: tuple[int, ...], translations: np.ndarray, rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`forward_kinematics` of a file's clip, refusing output that overflowed.

    Args:
        path: the file the clip was read from (named in the error).
        parents, translations, rotations: as for :func:`forward_kinematics` (finite).

    Returns:
        ``positions`` (F, J, 3) and ``orientations`` (F, J, 3, 3), all finite.

    Raises:
        MocapFormatError: a position is not finite (finite inputs near the float64 limit); names the frame.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        positions, orientations = forward_kinematics(parents, translations, rotations)
    bad = ~np.isfinite(positions).reshape(len(positions), -1).all(axis=1)
    if bad.any():
        raise MocapFormatError(
            path,
            f"joint positions of frame {int(np.argmax(bad)) + 1} are not finite: offsets or values too large "
            "(near the float64 limit); the file is probably corrupt",
        )
    return positions, orientations


@dataclass
class MocapClip:
    """One motion-capture take after forward kinematics, in the source's own units and axes.

    ``positions``: (F, J, 3) world joint positions (source unit, e.g. cm or CMU units; source up axis).
    ``orientations``: (F, J, 3, 3) world orientation of each joint's frame (column vectors).
    ``fps``: the frame rate the file states (may be wrong: see ``catalog.RATE_OVERRIDES``).
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    positions: np.ndarray
    orientations: np.ndarray
    fps: float
    path: Path

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def site(self, joint: str, offset: tuple[float, float, float]) -> np.ndarray:
        """World position (F, 3) of a point fixed in ``joint``'s frame at ``offset`` (source unit)."""
        j = self.index(joint)
        return self.positions[:, j] + self.orientations[:, j] @ np.asarray(offset, dtype=np.float64)
