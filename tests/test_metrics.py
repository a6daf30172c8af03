"""Pose metrics: Protocol #1 and #2 errors, per-action tables, limb-length-ratio errors."""

import numpy as np
import pytest
import torch

from structpose.metrics import (
    limb_ratio_error,
    limb_ratio_errors,
    mpjpe,
    p_mpjpe,
    per_action,
    procrustes_align,
)
from structpose.skeleton import H36M


def poses(n: int, seed: int = 0) -> np.ndarray:
    """(n, 17, 3) root-relative poses in mm with no zero-length limb."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 300, (n, 17, 3))
    return p - p[:, :1]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def test_a_pose_against_itself_scores_zero_everywhere():
    gt = poses(5)
    assert mpjpe(gt, gt) == 0.0
    assert p_mpjpe(gt, gt) == pytest.approx(0.0, abs=1e-9)
    assert limb_ratio_errors(gt, gt) == {"lower": 0.0, "upper": 0.0, "full": 0.0}


def test_mpjpe_known_value_and_per_frame():
    gt = poses(4)
    shifted = gt + np.array([3.0, 4.0, 0.0])
    assert mpjpe(shifted, gt) == pytest.approx(5.0)
    np.testing.assert_allclose(mpjpe(shifted, gt, reduce=False), np.full(4, 5.0))
    pred = gt.copy()
    pred[1, 2] += [0.0, 0.0, 170.0]  # one joint of one frame off by 170 mm
    np.testing.assert_allclose(mpjpe(pred, gt, reduce=False), [0.0, 10.0, 0.0, 0.0])


def test_mpjpe_catches_a_left_right_swap_and_p_mpjpe_ignores_similarities():
    gt = poses(6)
    swapped = gt[:, H36M.flip_permutation]
    assert mpjpe(swapped, gt) > 50.0
    rng = np.random.default_rng(1)
    pred = gt + rng.normal(0, 20, gt.shape)
    moved = np.stack([2.5 * p @ random_rotation(rng).T + rng.normal(0, 500, 3) for p in pred])
    assert mpjpe(moved, gt) > 100.0
    np.testing.assert_allclose(p_mpjpe(moved, gt, reduce=False), p_mpjpe(pred, gt, reduce=False), rtol=1e-9)
    assert p_mpjpe(pred, gt) < mpjpe(pred, gt)


def test_procrustes_recovers_a_similarity_and_never_reflects():
    rng = np.random.default_rng(2)
    gt = poses(3, seed=2)
    rot = random_rotation(rng)
    pred = 0.7 * gt @ rot.T + np.array([10.0, -20.0, 30.0])
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # a reflection is not a rotation: must not be undone
    assert p_mpjpe(mirrored, gt) > 10.0


def test_numpy_and_torch_agree():
    gt, pred = poses(8), poses(8, seed=3)
    tg, tp = torch.from_numpy(gt), torch.from_numpy(pred)  # float64 on both sides: only summation orders differ
    assert mpjpe(tp, tg) == pytest.approx(mpjpe(pred, gt))
    per_frame = p_mpjpe(pred, gt, reduce=False)
    np.testing.assert_allclose(p_mpjpe(tp, tg, reduce=False).numpy(), per_frame, rtol=1e-9)
    assert limb_ratio_errors(tp, tg) == pytest.approx(limb_ratio_errors(pred, gt))


def test_per_action_means_and_overall_mean():
    errors = np.array([1.0, 3.0, 10.0, 20.0, 30.0])
    table = per_action(errors, np.array(["Walking", "Walking", "Eating", "Eating", "Eating"]))
    assert table == {"Eating": 20.0, "Walking": 2.0, "mean": 11.0}  # mean of the action means
    assert per_action(torch.tensor(errors), ["A"] * 5) == {"A": 12.8, "mean": 12.8}


def test_limb_ratio_error_is_scale_invariant_and_sees_a_longer_thigh():
    gt = poses(10)
    scaled = 1.7 * gt
    for group in H36M.limb_groups:
        assert limb_ratio_error(scaled, gt, group) == pytest.approx(0.0, abs=1e-12)
    longer = gt.copy()
    knee, hip = 2, 1  # right thigh: RHip -> RKnee; move the knee and everything below it
    longer[:, [2, 3]] += 0.25 * (gt[:, knee] - gt[:, hip])[:, None]
    errors = limb_ratio_errors(longer, gt)
    assert errors["upper"] == pytest.approx(0.0, abs=1e-12)
    # the thigh is in 3 of the 6 lower-body pairs and 7 of the 28 full-body pairs, each off by log(1.25)
    assert errors["lower"] == pytest.approx(3 * np.log(1.25))
    assert errors["full"] == pytest.approx(7 * np.log(1.25))


def test_limb_ratio_error_definition_by_hand():
    gt, pred = poses(4), poses(4, seed=5)
    lengths_p = H36M.bone_lengths(pred, H36M.limb_groups["upper"])
    lengths_g = H36M.bone_lengths(gt, H36M.limb_groups["upper"])
    expected = sum(
        np.mean(np.abs(np.log(lengths_p[:, i] / lengths_p[:, j]) - np.log(lengths_g[:, i] / lengths_g[:, j])))
        for i in range(4)
        for j in range(i + 1, 4)
    )
    assert limb_ratio_error(pred, gt, "upper") == pytest.approx(expected)


def test_shape_checks():
    with pytest.raises(ValueError, match="expected two"):
        mpjpe(poses(2), poses(3))
    with pytest.raises(ValueError, match="expected two"):
        mpjpe(poses(2)[0], poses(2)[0])
