"""Solving a body's segment rotations from a 17-joint pose (structpose.render.retarget): numpy only."""

import numpy as np
import pytest

from structpose.render.demo import demo_pose
from structpose.render.retarget import pose_body, segment_rotations, skin, swing
from structpose.skeleton import H36M


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _rest():
    """A rest pose of other proportions than the demo poses: the demo stand scaled by 0.9, arms lowered."""
    rest = demo_pose("stand") * 0.9
    return rest - rest[0]


@pytest.mark.parametrize("a,b", [((1, 0, 0), (0, 1, 0)), ((0, 0, 1), (0, 0, -1)), ((1, 2, 3), (1, 2, 3.01))])
def test_swing_takes_a_to_b_and_is_a_rotation(a, b):
    a, b = np.array(a, float), np.array(b, float)
    R = swing(a, b, np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-9)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(R) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["stand", "walk", "left_arm_up", "squat", "tpose"])
def test_the_label_has_the_pose_bone_directions_and_the_body_bone_lengths(kind):
    pose, rest = demo_pose(kind, yaw_deg=37.0, position=(300.0, -200.0)), _rest()
    label = pose_body(pose, rest).joints
    np.testing.assert_allclose(label[0], pose[0], atol=1e-9)  # the pelvis sits on the mocap root
    for p, j in H36M.limbs:
        if j in (H36M.index("RHip"), H36M.index("LHip")):
            continue  # the hips turn with the pelvis: the hip line's direction, not each offset's
        d_label, d_pose = label[j] - label[p], pose[j] - pose[p]
        np.testing.assert_allclose(np.linalg.norm(d_label), np.linalg.norm(rest[j] - rest[p]), rtol=1e-9)
        np.testing.assert_allclose(d_label / np.linalg.norm(d_label), d_pose / np.linalg.norm(d_pose), atol=1e-9)
    hips = label[H36M.index("LHip")] - label[H36M.index("RHip")]
    pose_hips = pose[H36M.index("LHip")] - pose[H36M.index("RHip")]
    assert hips @ pose_hips / np.linalg.norm(hips) / np.linalg.norm(pose_hips) > 0.999


def test_the_rest_pose_poses_to_itself():
    rest = _rest()
    posed = pose_body(rest, rest)
    np.testing.assert_allclose(posed.joints, rest, atol=1e-9)
    np.testing.assert_allclose(posed.rotations, np.broadcast_to(np.eye(3), (17, 3, 3)), atol=1e-9)


def test_a_rotated_pose_rotates_the_solution():
    rng = np.random.default_rng(0)
    pose, rest, Q = demo_pose("walk"), _rest(), _rotation(rng)
    a = pose_body(pose, rest)
    b = pose_body(pose @ Q.T, rest)
    np.testing.assert_allclose(b.joints, a.joints @ Q.T, atol=1e-6)
    np.testing.assert_allclose(b.rotations, Q @ a.rotations, atol=1e-9)


def test_segment_rotations_are_rotations():
    R = segment_rotations(demo_pose("squat"), _rest())
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)


def test_skinning_with_one_segment_is_that_segments_rigid_map():
    rng = np.random.default_rng(1)
    posed = pose_body(demo_pose("left_arm_up"), _rest())
    verts, normals = rng.normal(size=(50, 3)) * 100, rng.normal(size=(50, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    seg = np.full((50, 2), 12)
    seg[:, 1] = 13
    out, n = skin(posed.matrices, verts, normals, seg, np.tile([1.0, 0.0], (50, 1)))
    M = posed.matrices[12]
    np.testing.assert_allclose(out, verts @ M[:, :3].T + M[:, 3], atol=1e-9)
    np.testing.assert_allclose(n, normals @ M[:, :3].T, atol=1e-6)
    # a blend of two segments lies between their maps, and its normals stay unit
    out2, n2 = skin(posed.matrices, verts, normals, seg, np.tile([0.5, 0.5], (50, 1)))
    M2 = posed.matrices[13]
    np.testing.assert_allclose(out2, 0.5 * (out + verts @ M2[:, :3].T + M2[:, 3]), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(n2, axis=1), 1.0, atol=1e-6)
