"""Pose a mesh body from a 17-joint mocap pose: bone rotations solved from joint positions, then skinning.

The pose library holds joint *positions*; a skinned body needs bone *rotations*. We solve them from the
positions (rather than carrying the BVH/AMC rotations into the library) because the library's positions
are the one description every source shares (CMU ASF/AMC, Bandai-Namco BVH, a user's own mocap, a
Human3.6M import), and because the rotations of another rig would need retargeting anyway.

Every segment of the body (see :data:`structpose.render.bodybank.SEGMENTS`: named by the Human3.6M joint
at its child end, 0 for the pelvis) turns rigidly about its parent joint:

- the pelvis (segment 0) by the rotation taking the body's rest hip line and lower-back direction to the
  pose's (twist from the hip line);
- the upper back (segment 8, Spine -> Thorax) by the rotation taking its rest direction and shoulder line to
  the pose's (twist from the shoulder line);
- every other segment by the parent segment's rotation followed by the smallest rotation ("swing") that
  takes the rest bone direction to the pose's: twist comes from the parent frame.

**Label of record.** Sampled bodies have their own bone lengths, so the rendered body cannot sit on the
mocap joints. As in SURREAL, the label is the rendered body's own 17 joints: the rest joints of the body
carried by the segment rotations (:attr:`Posed.joints`). Bone *directions* are the mocap's exactly; bone
lengths, hip and shoulder widths are the body's. The pelvis sits on the mocap root.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from structpose.skeleton import H36M

_P = H36M.parents
_J = {name: H36M.index(name) for name in H36M.names}
_HIPS = frozenset((_J["RHip"], _J["LHip"]))  # the hip offsets turn with the pelvis (segment 0)


@dataclass(frozen=True)
class Posed:
    """A body posed on a mocap frame.

    ``rotations``: (..., 17, 3, 3) rotation of the segment ending at each joint (index 0: the pelvis; the
    hips' are the pelvis's), rest -> posed; ``joints``: (..., 17, 3) float64 mm, the label pose (the body's
    own joints, same frame as the mocap pose); ``matrices``: (..., 17, 3, 4) affine map of each segment, rest
    body coordinates -> posed (``x -> M[:, :3] x + M[:, 3]``).
    """

    rotations: np.ndarray
    joints: np.ndarray
    matrices: np.ndarray

    def __getitem__(self, index) -> Posed:
        """The solution of one pose (or a sub-batch) of a batch."""
        return Posed(self.rotations[index], self.joints[index], self.matrices[index])


#: Joints in kinematic order, one tree level at a time (children of the previous level's joints).
_LEVELS: tuple[tuple[int, ...], ...] = ((1, 4, 7), (2, 5, 8), (3, 6, 9, 11, 14), (10, 12, 15), (13, 16))
_FRAMED = {_J["Thorax"]: ((_J["RShoulder"], _J["LShoulder"]), (_J["Spine"], _J["Thorax"]))}
_PIVOTS = np.array([0] + [_P[j] for j in range(1, H36M.num_joints)])


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stacked 3 x 3 matrix products by ``einsum`` (not BLAS): every product is computed the same way whatever
    the batch, so a pose solved alone or in a chunk gives the same bits."""
    return np.einsum("...ij,...jk->...ik", a, b)


def _unit(v: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis (zero where the vector is zero)."""
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, n, out=np.zeros_like(v), where=n > 1e-9)


def _frame(x_dir: np.ndarray, z_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal frames (..., 3, 3), columns x, y, z: z along ``z_dir`` (..., 3), x along ``x_dir`` made
    orthogonal to it; and a mask (...,) of the frames that exist (the two directions not parallel)."""
    z = _unit(z_dir)
    x = x_dir - np.sum(x_dir * z, axis=-1, keepdims=True) * z
    ok = (np.linalg.norm(x, axis=-1) > 1e-6) & (np.linalg.norm(z, axis=-1) > 0)
    x = _unit(x)
    return np.stack([x, np.cross(z, x), z], axis=-1), ok


def swing(a: np.ndarray, b: np.ndarray, fallback_axis: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) taking directions ``a`` (..., 3) to ``b`` (..., 3) (Rodrigues).
    Opposite directions turn by 180 degrees about ``fallback_axis`` (..., 3) made orthogonal to ``a``; a zero
    ``a`` or ``b`` gives the identity."""
    a, b = _unit(np.asarray(a, dtype=np.float64)), _unit(np.asarray(b, dtype=np.float64))
    shape = np.broadcast_shapes(a.shape, b.shape)
    a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    c = np.sum(a * b, axis=-1)
    v = np.cross(a, b)
    K = np.zeros(shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    opposite = c < -1 + 1e-9
    scale = 1 / np.where(opposite, 1.0, 1 + c)
    R = np.eye(3) + K + _mm(K, K) * scale[..., None, None]
    degenerate = ~np.any(a, axis=-1) | ~np.any(b, axis=-1)
    R[degenerate] = np.eye(3)
    if np.any(opposite & ~degenerate):
        f = np.broadcast_to(np.asarray(fallback_axis, dtype=np.float64), shape)
        axis = _unit(f - np.sum(f * a, axis=-1, keepdims=True) * a)
        other = np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        axis = np.where(np.any(axis, axis=-1, keepdims=True), axis, _unit(np.cross(a, other)))
        half_turn = 2 * axis[..., :, None] * axis[..., None, :] - np.eye(3)
        pick = opposite & ~degenerate
        R[pick] = half_turn[pick]
    return R


def _frame_rotation(rest: np.ndarray, pose: np.ndarray, x_pair: tuple[int, int], z_pair: tuple[int, int]) -> np.ndarray:
    """Rotations (N, 3, 3) taking the rest frame spanned by the joints ``x_pair`` (from, to) and ``z_pair`` to
    the pose's (rest, pose: (N, 17, 3)); the swing of the ``z_pair`` direction where a frame is degenerate."""
    f_rest, ok_rest = _frame(rest[:, x_pair[1]] - rest[:, x_pair[0]], rest[:, z_pair[1]] - rest[:, z_pair[0]])
    f_pose, ok_pose = _frame(pose[:, x_pair[1]] - pose[:, x_pair[0]], pose[:, z_pair[1]] - pose[:, z_pair[0]])
    R = _mm(f_pose, np.swapaxes(f_rest, -1, -2))
    bad = ~(ok_rest & ok_pose)
    if bad.any():
        R[bad] = swing(rest[bad, z_pair[1]] - rest[bad, z_pair[0]], pose[bad, z_pair[1]] - pose[bad, z_pair[0]],
                       np.array([1.0, 0.0, 0.0]))  # fmt: skip
    return R


def segment_rotations(pose: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Rest -> posed rotations (..., 17, 3, 3) of the segment ending at each joint (see the module docstring).

    Args:
        pose: (..., 17, 3) mm, mocap poses (any right-handed frame).
        rest: (..., 17, 3) mm, the bodies' rest joints (broadcast against ``pose``).
    """
    pose, rest = np.broadcast_arrays(np.asarray(pose, dtype=np.float64), np.asarray(rest, dtype=np.float64))
    lead = pose.shape[:-2]
    pose, rest = pose.reshape(-1, H36M.num_joints, 3), rest.reshape(-1, H36M.num_joints, 3)
    R = np.empty((len(pose), H36M.num_joints, 3, 3))
    R[:, 0] = _frame_rotation(rest, pose, (_J["RHip"], _J["LHip"]), (_J["Hip"], _J["Spine"]))
    for level in _LEVELS:
        free = [j for j in level if j not in _HIPS and j not in _FRAMED]
        parents = [_P[j] for j in free]
        parent = R[:, parents]
        rest_dir = np.einsum("nsij,nsj->nsi", parent, rest[:, free] - rest[:, parents])
        R[:, free] = _mm(swing(rest_dir, pose[:, free] - pose[:, parents], parent[..., :, 0]), parent)
        for j in level:
            if j in _HIPS:
                R[:, j] = R[:, 0]
            elif j in _FRAMED:
                R[:, j] = _frame_rotation(rest, pose, *_FRAMED[j])
    return R.reshape(lead + (H36M.num_joints, 3, 3))


def pose_body(pose: np.ndarray, rest: np.ndarray) -> Posed:
    """Solve the segment rotations of bodies with rest joints ``rest`` (..., 17, 3) mm for the mocap poses
    ``pose`` (..., 17, 3) mm, and carry the rest joints and the segments' affine maps with them
    (:class:`Posed`, with the same leading shape)."""
    pose, rest = np.broadcast_arrays(np.asarray(pose, dtype=np.float64), np.asarray(rest, dtype=np.float64))
    R = segment_rotations(pose, rest)
    joints = np.empty(pose.shape)
    joints[..., 0, :] = pose[..., 0, :]
    for level in _LEVELS:
        parents = [_P[j] for j in level]
        offsets = np.einsum("...sij,...sj->...si", R[..., level, :, :], rest[..., level, :] - rest[..., parents, :])
        joints[..., level, :] = joints[..., parents, :] + offsets
    M = np.empty(pose.shape[:-2] + (H36M.num_joints, 3, 4))
    M[..., :3] = R
    M[..., 3] = joints[..., _PIVOTS, :] - np.einsum("...sij,...sj->...si", R, rest[..., _PIVOTS, :])
    return Posed(R, joints, M)


def skin(
    matrices: np.ndarray, vertices: np.ndarray, normals: np.ndarray, segment_index: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Linear blend skinning with per-segment affine maps.

    Args:
        matrices: (17, 3, 4) segment maps (:attr:`Posed.matrices`).
        vertices: (V, 3) rest vertices, mm; normals: (V, 3) rest unit normals.
        segment_index: (V, K) int segment ids; weights: (V, K) float, rows summing to 1.

    Returns:
        Posed vertices (V, 3) float64 mm and unit normals (V, 3) float32 (rotated by the blended rotation).
    """
    A = np.einsum("vk,vkij->vij", weights, matrices[segment_index])  # (V, 3, 4)
    posed = np.einsum("vij,vj->vi", A[:, :, :3], vertices) + A[:, :, 3]
    n = np.einsum("vij,vj->vi", A[:, :, :3], normals)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-9)
    return posed, n.astype(np.float32)
