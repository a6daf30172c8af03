"""Human3.6M camera model: hand-computed projections, conventions, round trips."""

import numpy as np
import pytest
import torch

from structpose.camera import (
    H36M_CAMERA_IDS,
    Camera,
    h36m_camera,
    h36m_cameras,
    h36m_intrinsics,
    project_torch,
)


def test_projection_hand_computed_radial():
    cam = Camera(fx=1000, fy=1000, cx=500, cy=500, k=(0.1, 0.0, 0.0))
    # x = 0.1, r2 = 0.01, radial = 1.001 -> u = 1000 * 0.1001 + 500
    np.testing.assert_allclose(cam.project(np.array([100.0, 0.0, 1000.0])), [600.1, 500.0])


def test_projection_hand_computed_tangential():
    cam = Camera(fx=1000, fy=1000, cx=500, cy=500, p=(0.01, 0.02))
    # x=.1 y=.2 r2=.05 tan = p1*y + p2*x = .004 ; x' = .1*1.004 + p2*r2 = .1014 ; y' = .2*1.004 + p1*r2 = .2013
    np.testing.assert_allclose(cam.project(np.array([100.0, 200.0, 1000.0])), [601.4, 701.3])


def _videopose3d_project(X, f, c, k, p):
    """VideoPose3D's common/camera.py project_to_2d, in numpy (its tangential vector is [p2, p1] of ours)."""
    XX = X[..., :2] / X[..., 2:]
    r2 = np.sum(XX**2, axis=-1, keepdims=True)
    radial = 1 + np.sum(k * np.concatenate([r2, r2**2, r2**3], -1), -1, keepdims=True)
    tan = np.sum(p * XX, -1, keepdims=True)
    return f * (XX * (radial + tan) + p * r2) + c


def test_matches_videopose3d_convention():
    """The published numbers for camera 54138969 as VideoPose3D lists them give the same pixels."""
    cam = h36m_intrinsics("54138969")
    f = np.array([1145.0494384765625, 1143.7811279296875])
    c = np.array([512.54150390625, 515.4514770507812])
    k = np.array([-0.20709891617298126, 0.24777518212795258, -0.0030751503072679043])
    p = np.array([-0.0009756988729350269, -0.00142447161488235])
    X = np.random.default_rng(0).uniform([-800, -800, 3000], [800, 800, 6000], size=(50, 3))
    # f, c, k, p above are VideoPose3D's float32 copies of the calibration: 1.5e-5 px from ours
    np.testing.assert_allclose(cam.project(X), _videopose3d_project(X, f, c, k, p), atol=1e-3)


def test_project_unproject_round_trip():
    cam = h36m_camera("S9", "60457274")
    X = np.random.default_rng(1).uniform([-1000, -1000, 2000], [1000, 1000, 7000], size=(100, 3))
    back = cam.unproject(cam.project(X), X[:, 2])
    np.testing.assert_allclose(back, X, atol=1e-6)


def test_world_camera_round_trip_and_centre():
    cam = h36m_camera("S1", "54138969")
    X = np.random.default_rng(2).normal(size=(10, 17, 3)) * 1000
    np.testing.assert_allclose(cam.camera_to_world(cam.world_to_camera(X)), X, atol=1e-9)
    np.testing.assert_allclose(cam.world_to_camera(cam.center), 0, atol=1e-9)


def test_published_cameras_are_plausible():
    cams = h36m_cameras()
    assert len(cams) == 11 and all(len(v) == 4 for v in cams.values())
    for subject in ("S1", "S9", "S11"):
        for cid in H36M_CAMERA_IDS:
            cam = cams[subject][cid]
            np.testing.assert_allclose(cam.R @ cam.R.T, np.eye(3), atol=1e-6)
            assert np.linalg.det(cam.R) == pytest.approx(1.0, abs=1e-6)
            # Cameras stand 3-6 m from the capture centre, 1-2 m above the floor (Z up, mm).
            assert 3000 < np.linalg.norm(cam.center[:2]) < 6500
            assert 800 < cam.center[2] < 2200
            # ... and look at the capture centre: the world origin projects inside the image.
            u, v = cam.project_world(np.array([0.0, 0.0, 900.0]))
            assert 0 < u < cam.width and 0 < v < cam.height


def test_torch_projection_matches_numpy():
    cam = h36m_camera("S5", "55011271")
    X = np.random.default_rng(3).uniform([-900, -900, 3000], [900, 900, 6000], size=(4, 17, 3))
    out = project_torch(torch.tensor(X), torch.tensor(cam.intrinsics_vector()).expand(4, 9))
    np.testing.assert_allclose(out.numpy(), cam.project(X), atol=1e-6)  # both float64; operation order may differ


def test_bad_input_is_refused():
    with pytest.raises(KeyError, match="S12"):
        h36m_camera("S12", "54138969")
    with pytest.raises(ValueError, match="behind"):
        Camera(1000, 1000, 500, 500).project(np.array([0.0, 0.0, -10.0]))
