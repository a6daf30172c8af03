"""The Human3.6M 17-joint skeleton: the one source of truth for joint order, parents, sides and limbs.

Joint order (the 17-joint subset used by 3d-pose-baseline and VideoPose3D, kept 32-joint indices
``0,1,2,3,6,7,8,12,13,14,15,17,18,19,25,26,27``; shoulders re-parented to the thorax)::

    0 Hip   1 RHip   2 RKnee   3 RFoot   4 LHip   5 LKnee   6 LFoot   7 Spine   8 Thorax
    9 Neck/Nose   10 Head   11 LShoulder   12 LElbow   13 LWrist   14 RShoulder   15 RElbow   16 RWrist

Poses throughout structpose are arrays of shape ``(..., 17, 3)`` in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from structpose.errors import InputError


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree: joint names, parent indices (-1 for the root) and left/right joint lists."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    limb_groups: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.parents):
            raise InputError("one parent per joint")
        for j, p in enumerate(self.parents):
            if p >= j:
                raise InputError(f"parents must precede children (joint {j} has parent {p})")
        if len(self.left) != len(self.right):
            raise InputError("left and right lists pair up")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    @property
    def limbs(self) -> tuple[tuple[int, int], ...]:
        """Bones as (parent, child) pairs, in child order."""
        return tuple((p, j) for j, p in enumerate(self.parents) if p >= 0)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def limb_name(self, limb: tuple[int, int]) -> str:
        return f"{self.names[limb[0]]}-{self.names[limb[1]]}"

    @property
    def flip_permutation(self) -> np.ndarray:
        """Index array that swaps left and right joints: ``pose[..., perm, :]`` is the mirrored labelling."""
        perm = np.arange(self.num_joints)
        perm[list(self.left)] = self.right
        perm[list(self.right)] = self.left
        return perm

    def bone_lengths(self, poses: np.ndarray, limbs: tuple[tuple[int, int], ...] | None = None) -> np.ndarray:
        """Lengths of ``limbs`` (default: all bones). ``poses``: (..., J, 3) -> (..., L), same unit."""
        poses = np.asarray(poses)
        if poses.shape[-2:] != (self.num_joints, 3):
            raise InputError(f"expected (..., {self.num_joints}, 3), got {poses.shape}")
        limbs = self.limbs if limbs is None else limbs
        a = np.array([lb[0] for lb in limbs])
        b = np.array([lb[1] for lb in limbs])
        return np.linalg.norm(poses[..., b, :] - poses[..., a, :], axis=-1)


H36M_JOINTS: tuple[str, ...] = (
    "Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax",
    "Neck/Nose", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist",
)  # fmt: skip

# Limb groups of the limb-length-ratio metric (Table 2 of the paper). Our reading: the limbs of the
# arms and legs whose proportions a pose prior should keep; "full" is their union.
_LOWER = ((1, 2), (2, 3), (4, 5), (5, 6))  # thighs and shins
_UPPER = ((11, 12), (12, 13), (14, 15), (15, 16))  # upper arms and forearms

H36M = Skeleton(
    names=H36M_JOINTS,
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left=(4, 5, 6, 11, 12, 13),
    right=(1, 2, 3, 14, 15, 16),
    limb_groups={"lower": _LOWER, "upper": _UPPER, "full": _LOWER + _UPPER},
)

#: Indices into Human3.6M's 32-joint D3_Positions that give the 17 joints above, in order.
H36M_32_TO_17: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

NUM_JOINTS = H36M.num_joints


def root_relative(poses: np.ndarray, root: int = 0) -> np.ndarray:
    """Subtract the root joint. ``poses``: (..., J, 3) -> (..., J, 3)."""
    poses = np.asarray(poses)
    return poses - poses[..., root : root + 1, :]
