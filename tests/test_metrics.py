"""Pose metrics: Protocol #1 and #2 errors, N-MPJPE, root-centring, masks, per-action tables, limb-length-ratio
errors, and the reference rows (mean-pose baseline, nearest-training-pose oracle)."""

import numpy as np
import pytest
import torch

import structpose.metrics as metrics
from structpose.errors import InputError
from structpose.metrics import (
    ALIGNMENTS,
    METRIC_CONVENTIONS,
    center_on_root,
    limb_ratio_error,
    limb_ratio_errors,
    mean_pose_baseline,
    mpjpe,
    n_mpjpe,
    nearest_pose_indices,
    nearest_pose_oracle,
    p_mpjpe,
    per_action,
    pose_error,
    procrustes_align,
    scale_align,
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
    assert mpjpe(shifted, gt, root=None) == pytest.approx(5.0)  # compared as given
    np.testing.assert_allclose(mpjpe(shifted, gt, reduce=False, root=None), np.full(4, 5.0))
    assert mpjpe(shifted, gt) == pytest.approx(0.0, abs=1e-12)  # the convention: each pose on its own root
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


# ------------------------------------------------------------------ conventions: root-centring, 17 joints


def test_center_on_root_zeroes_the_root_and_keeps_the_shape():
    p = poses(3) + np.array([100.0, -50.0, 900.0])
    c = center_on_root(p)
    assert c.shape == p.shape and np.all(c[:, 0] == 0.0)
    np.testing.assert_allclose(c[:, 1:] - c[:, 1:2], p[:, 1:] - p[:, 1:2], atol=1e-9)  # shape unchanged
    assert torch.equal(center_on_root(torch.from_numpy(p), root=2), torch.from_numpy(p - p[:, 2:3]))
    for bad_root in (17, -1, 1.0, True):
        with pytest.raises(InputError, match="root"):
            center_on_root(p, root=bad_root)


def test_recentring_makes_a_translated_prediction_score_like_the_untranslated_one():
    rng = np.random.default_rng(40)
    gt = poses(6, seed=4)
    pred = gt + rng.normal(0, 25, gt.shape)
    moved = pred + rng.normal(0, 1000, (6, 1, 3))  # a different global translation per frame
    gt_moved = gt + rng.normal(0, 1000, (6, 1, 3))
    for alignment in ALIGNMENTS:
        np.testing.assert_allclose(
            pose_error(moved, gt_moved, alignment, reduce=False),
            pose_error(pred, gt, alignment, reduce=False),
            rtol=1e-9,
        )
    assert mpjpe(moved, gt, root=None) > 500.0  # without the convention the translation dominates


def test_the_root_counts_as_a_zero_error_joint_in_a_17_joint_mean():
    gt = poses(2)
    pred = gt + np.array([0.0, 0.0, 40.0])  # every joint off by 40 mm: re-centring removes it entirely
    assert mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-12)
    pred = gt.copy()
    pred[:, 1:] += np.array([0.0, 30.0, 40.0])  # every non-root joint off by 50 mm, the root exact
    assert mpjpe(pred, gt) == pytest.approx(50.0 * 16 / 17)  # the zero root is averaged in: 17 joints
    no_root = np.ones((2, 17), dtype=bool)
    no_root[:, 0] = False
    assert mpjpe(pred, gt, mask=no_root) == pytest.approx(50.0)  # the 16-joint convention, if ever wanted


def test_metric_conventions_are_named():
    assert isinstance(METRIC_CONVENTIONS, str) and len(METRIC_CONVENTIONS) < 240
    for word in ("root-centred", "17 joints", "per-action", "N-MPJPE", "P-MPJPE", "Procrustes", "scale"):
        assert word in METRIC_CONVENTIONS


# --------------------------------------------------------------------------- N-MPJPE, P-MPJPE, pose_error


def test_a_scaled_pose_has_zero_n_mpjpe_and_p_mpjpe_but_not_zero_mpjpe():
    gt = poses(5)
    pred = 2.0 * gt
    assert n_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    by_hand = np.linalg.norm(gt, axis=-1).mean()  # 2 gt - gt = gt, per joint, 17 joints, then frames
    assert mpjpe(pred, gt) == pytest.approx(by_hand) and by_hand > 100.0
    np.testing.assert_allclose(scale_align(pred, gt), gt, atol=1e-9)


def test_a_rotated_pose_has_zero_p_mpjpe_but_not_zero_n_mpjpe():
    gt = poses(5)
    rot = random_rotation(np.random.default_rng(6))
    pred = 0.8 * gt @ rot.T  # rotated (and scaled) about the root
    assert p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert n_mpjpe(pred, gt) > 50.0 and mpjpe(pred, gt) > n_mpjpe(pred, gt)


def test_n_mpjpe_by_hand():
    rng = np.random.default_rng(70)
    gt = poses(4, seed=7)
    pred = 1.3 * gt + rng.normal(0, 40, gt.shape) + 200.0  # the shift is removed by the re-centring
    p, g = pred - pred[:, :1], gt - gt[:, :1]
    expected = []
    for pn, gn in zip(p, g, strict=True):
        s = np.sum(pn * gn) / np.sum(pn * pn)
        expected.append(np.mean(np.linalg.norm(s * pn - gn, axis=-1)))
    np.testing.assert_allclose(n_mpjpe(pred, gt, reduce=False), expected, rtol=1e-12)
    assert n_mpjpe(pred, gt) == pytest.approx(np.mean(expected))
    assert p_mpjpe(pred, gt) <= n_mpjpe(pred, gt) <= mpjpe(pred, gt)  # more freedom, less error, per frame here


def test_pose_error_is_the_entry_point_of_the_named_metrics():
    gt, pred = poses(5), poses(5, seed=8)
    for alignment, named in zip(ALIGNMENTS, (mpjpe, n_mpjpe, p_mpjpe), strict=True):
        np.testing.assert_array_equal(pose_error(pred, gt, alignment, reduce=False), named(pred, gt, reduce=False))
        assert pose_error(pred, gt, alignment) == named(pred, gt)
    with pytest.raises(InputError, match="alignment"):
        pose_error(pred, gt, "rigid")


def test_per_action_aggregates_every_metric_the_same_way():
    gt, pred = poses(6), poses(6, seed=9)
    actions = np.array(["Walk", "Walk", "Walk", "Sit", "Sit", "Eat"])
    for metric in (mpjpe, n_mpjpe, p_mpjpe):
        per_frame = metric(pred, gt, reduce=False)
        table = per_action(per_frame, actions)
        means = [per_frame[:3].mean(), per_frame[3:5].mean(), per_frame[5]]
        assert table["Walk"] == pytest.approx(means[0]) and table["Sit"] == pytest.approx(means[1])
        assert table["mean"] == pytest.approx(np.mean(means))  # mean over actions, not over frames


# ----------------------------------------------------------------------------------------------- masks


def test_masking_the_only_wrong_joint_gives_zero():
    rng = np.random.default_rng(100)
    gt = poses(3, seed=10)
    moved = np.stack([1.5 * p @ random_rotation(rng).T for p in gt])  # a similarity: 0 under P-MPJPE
    pred = gt.copy()
    pred[:, 5] += 80.0  # one wrong joint per frame
    mask = np.ones((3, 17), dtype=bool)
    mask[:, 5] = False
    for alignment in ALIGNMENTS:  # the alignment is fitted on the visible joints, so it is not thrown off
        assert pose_error(pred, gt, alignment, mask=mask) == pytest.approx(0.0, abs=1e-9)
        assert pose_error(pred, gt, alignment) > 1.0
    wrong = moved.copy()
    wrong[:, 5] += 80.0
    assert p_mpjpe(wrong, gt, mask=mask) == pytest.approx(0.0, abs=1e-9)


def test_mask_means_over_the_visible_joints_of_each_frame():
    gt = poses(2)
    pred = gt.copy()
    pred[0, 3] += [0.0, 0.0, 60.0]
    mask = np.zeros((2, 17), dtype=bool)
    mask[0, [0, 3, 4]] = True  # frame 0: 3 visible joints, one 60 mm off
    mask[1, 7] = True
    np.testing.assert_allclose(mpjpe(pred, gt, reduce=False, mask=mask), [20.0, 0.0], atol=1e-9)
    t_mask = torch.from_numpy(mask)
    assert mpjpe(torch.from_numpy(pred), torch.from_numpy(gt), mask=t_mask) == pytest.approx(10.0)


def test_bad_masks_raise():
    gt = poses(2)
    with pytest.raises(InputError, match="boolean"):
        mpjpe(gt, gt, mask=np.ones((2, 17)))  # not boolean
    with pytest.raises(InputError, match="boolean"):
        mpjpe(gt, gt, mask=np.ones((2, 16), dtype=bool))
    empty = np.ones((2, 17), dtype=bool)
    empty[1] = False
    with pytest.raises(InputError, match="visible"):
        p_mpjpe(gt, gt, mask=empty)


# ------------------------------------------------------------------------------------ numpy and torch


def test_torch_float32_matches_numpy_float64_within_float32_rounding():
    # float32 keeps ~7 significant digits (unit roundoff 6e-8); the root subtraction, squares, sums, square
    # roots and (for P-MPJPE) the 3x3 SVD compound it to ~1e-6 relative on errors of tens of mm: rtol 1e-5.
    rng = np.random.default_rng(110)
    gt = poses(16, seed=11)
    pred = 1.1 * gt + rng.normal(0, 30, gt.shape)
    tp, tg = (torch.from_numpy(a).float() for a in (pred, gt))
    for alignment in ALIGNMENTS:
        want = pose_error(pred, gt, alignment, reduce=False)
        got = pose_error(tp, tg, alignment, reduce=False)
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-5)
        np.testing.assert_allclose(  # float64 on both sides: only summation orders differ
            pose_error(torch.from_numpy(pred), torch.from_numpy(gt), alignment, reduce=False).numpy(), want, rtol=1e-12
        )


def test_mpjpe_of_tensors_stays_differentiable_for_training():
    gt = torch.from_numpy(poses(4)).float()
    pred = (gt + 10.0).requires_grad_()
    loss = mpjpe(pred, gt, reduce=False).mean()  # as structpose.train.base.mpjpe_mm calls it
    loss.backward()
    assert isinstance(loss, torch.Tensor) and pred.grad is not None and torch.isfinite(pred.grad).all()


# ------------------------------------------------------------------------------------- reference rows


def test_mean_pose_baseline_by_hand():
    train = poses(5, seed=12) + np.arange(5.0)[:, None, None] * 100.0  # not root-relative on purpose
    test = poses(3, seed=13)
    baseline = mean_pose_baseline(train, 3)
    assert baseline.shape == (3, 17, 3) and np.all(baseline[:, 0] == 0.0)
    mean = sum(t - t[0] for t in train) / 5
    expected = np.mean([np.mean([np.linalg.norm(mean[j] - (x[j] - x[0])) for j in range(17)]) for x in test])
    assert mpjpe(baseline, test) == pytest.approx(expected, rel=1e-12)
    tb = mean_pose_baseline(torch.from_numpy(train).float(), 3)
    assert tb.dtype == torch.float32 and torch.allclose(tb, torch.from_numpy(baseline).float())
    assert mean_pose_baseline(train, 0).shape == (0, 17, 3)
    for bad in (-1, 2.0, True):
        with pytest.raises(InputError, match="n:"):
            mean_pose_baseline(train, bad)


def brute_force_nearest(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """The definition: for each test pose, argmin over training poses of the per-frame MPJPE (first on ties)."""
    return np.array([np.argmin(mpjpe(np.broadcast_to(t, train.shape), train, reduce=False)) for t in test])


def test_oracle_matches_brute_force_exactly():
    rng = np.random.default_rng(140)
    train = poses(300, seed=14) + rng.normal(0, 100, (300, 1, 3))
    test = poses(40, seed=15)
    expected = brute_force_nearest(train, test)
    for chunk in (7, 64, 512):  # several test chunks and training blocks, and one of each
        np.testing.assert_array_equal(nearest_pose_indices(train, test, chunk=chunk), expected)
    oracle = nearest_pose_oracle(train, test, chunk=16)
    np.testing.assert_array_equal(oracle, center_on_root(train)[expected])
    floor = [mpjpe(np.broadcast_to(t, train.shape), train, reduce=False).min() for t in test]
    np.testing.assert_allclose(mpjpe(oracle, test, reduce=False), floor, rtol=1e-12)
    t_idx = nearest_pose_indices(torch.from_numpy(train).float(), torch.from_numpy(test).float())
    np.testing.assert_array_equal(t_idx.numpy(), brute_force_nearest(train.astype(np.float32), test.astype(np.float32)))


def test_oracle_takes_the_mpjpe_argmin_not_the_squared_l2_argmin():
    rng = np.random.default_rng(160)
    test = poses(1, seed=16)
    spike = test.copy()
    spike[0, 5] += [170.0, 0.0, 0.0]  # one joint off by 170 mm: MPJPE 10, squared L2 28900
    spread = test.copy()
    spread[0, 1:] += rng.normal(size=(16, 3)) * 20.0  # 16 joints off by ~32 mm: MPJPE ~30, squared L2 ~19200
    far = test + rng.normal(0, 200, (50, 17, 3))
    train = np.concatenate([spread, far[:20], spike, far[20:]])  # spread at 0, spike at 21
    sq_l2 = ((center_on_root(train) - center_on_root(test)) ** 2).sum((1, 2))
    assert sq_l2.argmin() == 0  # squared L2 prefers the spread error
    assert brute_force_nearest(train, test)[0] == 21  # MPJPE prefers the single large error
    assert nearest_pose_indices(train, test)[0] == 21


def test_oracle_breaks_ties_to_the_lowest_index_and_settles_near_ties_exactly():
    rng = np.random.default_rng(170)
    test = poses(3, seed=17)
    base = test[0] + rng.normal(0, 10, (17, 3))
    twins = np.repeat(base[None], 40, 0)  # more exact duplicates than the screening keeps candidates
    near = base + rng.normal(0, 1e-9, (40, 17, 3))  # ties far below the screening's rounding bound
    near[:, 0] = base[0]
    other = poses(60, seed=18)
    train = np.concatenate([other[:30], twins, other[30:], near])
    idx = nearest_pose_indices(train, test, chunk=8)
    np.testing.assert_array_equal(idx, brute_force_nearest(train, test))
    assert idx[0] in (30, *range(100, 140))  # the first twin, unless a near-twin is a hair closer


def test_oracle_with_fewer_training_poses_than_candidates():
    train, test = poses(3, seed=19), poses(5, seed=20)
    np.testing.assert_array_equal(nearest_pose_indices(train, test), brute_force_nearest(train, test))
    assert metrics._CANDIDATES > 3


def test_oracle_input_checks():
    train, test = poses(4), poses(2, seed=1)
    with pytest.raises(InputError, match="same type|one type"):
        nearest_pose_indices(train, torch.from_numpy(test))
    with pytest.raises(InputError, match="one type"):
        nearest_pose_indices(train, test[:, :16])
    with pytest.raises(InputError, match=r"\(N, J, 3\)"):
        nearest_pose_oracle(train[0], test)
    bad = test.copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(InputError, match="finite"):
        nearest_pose_indices(train, bad)
    with pytest.raises(InputError, match="chunk"):
        nearest_pose_indices(train, test, chunk=0)


def test_bad_shapes_and_types_raise_input_error():
    gt = poses(2)
    with pytest.raises(InputError, match="expected two"):
        pose_error(gt[..., :2], gt[..., :2])
    with pytest.raises(InputError, match="numpy arrays or both torch"):
        mpjpe(gt, torch.from_numpy(gt))
    with pytest.raises(InputError, match="N, J >= 1"):
        mpjpe(gt[:0], gt[:0])
    with pytest.raises(InputError, match=r"\(\.\.\., J, 3\)"):
        center_on_root(gt[..., :2])
    with pytest.raises(InputError, match="numpy array or a torch tensor"):
        mean_pose_baseline(gt.tolist(), 2)
