"""Pose-error metrics and the conventions of the benchmark. Pure functions on numpy arrays or torch tensors
of poses (N, J, 3) in mm (Human3.6M 17-joint order, root = joint 0, the pelvis).

Conventions (named by :data:`METRIC_CONVENTIONS`, which a report should print):

* **Root-relative by construction.** Before any scoring, every method's predicted pose is re-centred on its
  own *predicted* root joint and the ground truth on its root (:func:`center_on_root`), so the compared poses
  have their root at zero whatever a method outputs: a global translation neither costs nor helps. The
  alternative, predicting only the 16 non-root joints, was not chosen because it changes the networks (their
  output layer and the auto-encoder's pose space) for no difference in the metric.
* **17 joints, root included.** The re-centred root then has an error of 0 under protocol #1 and N-MPJPE,
  and the MPJPE is the mean over all 17 joints including it, as VideoPose3D and most Human3.6M papers report
  it. A 16-joint mean (root excluded) is 17/16 of it; pass a ``mask`` without the root to get it.
* **Per action, then over actions.** Every metric returns per-frame errors with ``reduce=False``;
  :func:`per_action` averages them over the frames of each action and reports the mean of the per-action
  means (the "Avg" column of the paper's Table 1), for MPJPE, N-MPJPE and P-MPJPE alike.

Metrics (all through :func:`pose_error`, one alignment each; ``mask`` selects the joints that count):

* :func:`mpjpe`: protocol #1 of Human3.6M, the mean per-joint position error, no alignment.
* :func:`n_mpjpe`: N-MPJPE (Rhodin et al., CVPR 2018), the MPJPE after scaling each prediction by the
  least-squares scale ``s = <pred, gt> / <pred, pred>`` (per frame, root-centred, no rotation).
* :func:`p_mpjpe`: protocol #2, the MPJPE after aligning each prediction to its ground truth by the best
  similarity transform (rotation, translation, scale; proper rotations only, no reflection).
* :func:`limb_ratio_error` / :func:`limb_ratio_errors`: the limb-length-ratio error of the paper's
  Table 2, in OUR reading (the paper does not define it): for a group of limbs (lower body, upper body,
  full body, see ``Skeleton.limb_groups``), the SUM over all unordered pairs of limbs (i, j) of the
  group of the MEAN over frames of ``|log(l_i / l_j)_pred - log(l_i / l_j)_gt|``. It is unit-free,
  blind to the global scale of the prediction, and grows with the number of pairs, hence from the lower
  body (4 limbs, 6 pairs) to the full body (8 limbs, 28 pairs), as in the paper's table.

Reference rows, the floor and the ceiling of the benchmark: :func:`mean_pose_baseline` (the mean training
pose for every test frame) and :func:`nearest_pose_oracle` (the training pose of least MPJPE to each test
pose, an oracle that reads the test ground truth: a bound for retrieval methods such as LinKDE).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from types import ModuleType
from typing import TypeVar

import numpy as np
import torch

from structpose.errors import InputError
from structpose.skeleton import H36M, Skeleton

Array = TypeVar("Array", np.ndarray, torch.Tensor)
Mask = np.ndarray | torch.Tensor | None  # (N, J) bool: the joints that count

#: The conventions every number of this module follows; a report names them next to its tables.
METRIC_CONVENTIONS = (
    "structpose-metrics v1: poses root-centred (each on its own root), mean over all 17 joints incl. the root; "
    "per-action means, then their mean; N-MPJPE: per-frame least-squares scale; "
    "P-MPJPE: per-frame similarity Procrustes, no reflection"
)

#: The alignments of :func:`pose_error`: protocol #1, N-MPJPE, protocol #2.
ALIGNMENTS = ("none", "scale", "procrustes")

_CANDIDATES = 16  # oracle: training poses per test pose kept by the screening and re-ranked exactly
_U64 = 2.0**-53  # unit roundoff of float64


def _xp(a: np.ndarray | torch.Tensor) -> ModuleType:
    """The array namespace of ``a``: ``torch`` or ``numpy``."""
    return torch if isinstance(a, torch.Tensor) else np


def _check_poses(poses: Array, name: str = "poses") -> None:
    if not isinstance(poses, np.ndarray | torch.Tensor):
        raise InputError(f"{name}: expected a numpy array or a torch tensor, got {type(poses).__name__}")
    if not (poses.ndim == 3 and poses.shape[-1] == 3 and poses.shape[0] > 0 and poses.shape[1] > 0):
        raise InputError(f"{name}: expected (N, J, 3) poses with N, J >= 1, got {tuple(poses.shape)}")


def _check_pair(pred: Array, gt: Array) -> None:
    if type(pred) is not type(gt):
        raise InputError("pred and gt must both be numpy arrays or both torch tensors")
    if not (pred.shape == gt.shape and pred.ndim == 3 and pred.shape[-1] == 3):
        raise InputError(f"expected two (N, J, 3) poses, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    _check_poses(pred, "pred")


def _check_root(root: int, num_joints: int) -> None:
    if isinstance(root, bool) or not isinstance(root, int | np.integer) or not 0 <= root < num_joints:
        raise InputError(f"root: expected a joint index in [0, {num_joints}), got {root!r}")


def _reduce(per_frame: Array, reduce: bool) -> Array | float:
    return float(per_frame.mean()) if reduce else per_frame


def center_on_root(poses: Array, root: int = 0) -> Array:
    """Each pose re-centred on its own root joint: ``poses - poses[..., root, :]``, so its root is exactly 0.

    Args:
        poses: (..., J, 3) numpy array or torch tensor, mm.
        root: index of the root joint (0, the pelvis, for Human3.6M).

    Returns:
        (..., J, 3), same type, dtype and unit.
    """
    if not isinstance(poses, np.ndarray | torch.Tensor) or poses.ndim < 2 or poses.shape[-1] != 3:
        raise InputError(f"expected (..., J, 3) poses, got {getattr(poses, 'shape', type(poses).__name__)}")
    _check_root(root, poses.shape[-2])
    return poses - poses[..., root : root + 1, :]


def _weights(mask: Mask, pred: Array) -> Array | None:
    """``mask`` (N, J) bool as 0/1 weights of ``pred``'s type and dtype (None: every joint counts)."""
    if mask is None:
        return None
    if isinstance(pred, torch.Tensor):
        mask = torch.as_tensor(mask, device=pred.device)
        boolean = mask.dtype == torch.bool
    else:
        mask = np.asarray(mask)
        boolean = mask.dtype == np.bool_
    if not boolean or tuple(mask.shape) != tuple(pred.shape[:2]):
        shape = tuple(pred.shape[:2])
        raise InputError(f"mask: expected a boolean (N, J) = {shape} array, got {mask.dtype} {tuple(mask.shape)}")
    if not bool(mask.any(-1).all()):
        raise InputError("mask: every frame needs at least one visible joint")
    return mask.to(pred.dtype) if isinstance(mask, torch.Tensor) else mask.astype(pred.dtype)


def _norms(diff: Array) -> Array:
    """(..., 3) -> (...) Euclidean norms; for tensors with the zero subgradient at 0 (the re-centred root's
    error is exactly 0, where ``sqrt`` would give NaN gradients)."""
    if isinstance(diff, torch.Tensor):
        return torch.linalg.vector_norm(diff, dim=-1)
    return np.sqrt((diff * diff).sum(-1))


def _joint_mean(values: Array, w: Array | None) -> Array:
    """(N, J) per-joint values -> (N,) their mean over the joints of weight 1."""
    return values.mean(-1) if w is None else (values * w).sum(-1) / w.sum(-1)


def _point_mean(points: Array, w: Array | None) -> Array:
    """(N, J, 3) -> (N, 1, 3) the mean position of the joints of weight 1."""
    if w is None:
        return points.mean(-2, keepdims=True)
    return (points * w[..., None]).sum(-2, keepdims=True) / w.sum(-1)[:, None, None]


def _scale(pred: Array, gt: Array, w: Array | None) -> Array:
    """(N, J, 3) ``s * pred`` with the per-frame least-squares ``s = <pred, gt> / <pred, pred>`` (weights ``w``)."""
    cross, norm = (pred * gt).sum(-1), (pred * pred).sum(-1)  # (N, J)
    if w is not None:
        cross, norm = cross * w, norm * w
    return (cross.sum(-1) / norm.sum(-1))[:, None, None] * pred


def _procrustes(pred: Array, gt: Array, w: Array | None) -> Array:
    """(N, J, 3) each ``pred[n]`` mapped by the similarity ``s R x + t`` (det R = +1) fitted on the weighted joints."""
    xp = _xp(pred)
    mu_p, mu_g = _point_mean(pred, w), _point_mean(gt, w)
    x, y = pred - mu_p, gt - mu_g
    xw = x if w is None else x * w[..., None]
    u, sv, vt = xp.linalg.svd(xw.swapaxes(-1, -2) @ y)  # x^T W y = U S V^T, (N, 3, 3)
    d = xp.sign(xp.linalg.det(u @ vt))  # -1 where the best orthogonal map is a reflection
    flip = xp.ones_like(sv)
    flip[:, -1] = d
    rot = (u * flip[:, None, :]) @ vt  # U diag(1, 1, d) V^T: maximises tr(R^T x^T W y) over rotations
    scale = (sv * flip).sum(-1) / (xw * x).sum((-1, -2))  # (N,)
    return scale[:, None, None] * (x @ rot) + mu_g


def scale_align(pred: Array, gt: Array, mask: Mask = None) -> Array:
    """Each ``pred[n]`` scaled by the least-squares ``s = <pred, gt> / <pred, pred>`` (no rotation, no shift).

    Args:
        pred: (N, J, 3) predictions, mm, already root-centred (as :func:`pose_error` passes them).
        gt: (N, J, 3) ground truth, mm, root-centred.
        mask: (N, J) bool, the joints the scale is fitted on (default all).

    Returns:
        (N, J, 3) ``s[n] * pred[n]``, mm; NaN in a frame whose fitted joints are all at the origin.
    """
    _check_pair(pred, gt)
    return _scale(pred, gt, _weights(mask, pred))


def procrustes_align(pred: Array, gt: Array, mask: Mask = None) -> Array:
    """Each ``pred[n]`` mapped by the similarity ``s R x + t`` (det R = +1) closest to ``gt[n]`` in least squares.

    Args:
        pred: (N, J, 3) predictions, mm.
        gt: (N, J, 3) ground truth, mm.
        mask: (N, J) bool, the joints the similarity is fitted on (default all); it moves every joint.

    Returns:
        (N, J, 3) aligned predictions, mm; NaN in a frame whose fitted joints coincide.
    """
    _check_pair(pred, gt)
    return _procrustes(pred, gt, _weights(mask, pred))


def pose_error(
    pred: Array,
    gt: Array,
    alignment: str = "none",
    mask: Mask = None,
    reduce: bool = True,
    root: int | None = 0,
) -> Array | float:
    """The one metric entry point (as mmpose's ``keypoint_mpjpe``): per-frame mean joint error after alignment.

    Both poses are first re-centred on their own root (module docstring), then ``pred`` is aligned to ``gt``:
    ``"none"`` (protocol #1, MPJPE), ``"scale"`` (N-MPJPE, least-squares scale) or ``"procrustes"``
    (protocol #2, P-MPJPE, similarity transform). The alignment is fitted on the joints of ``mask`` and the
    error averaged over them, per frame.

    Args:
        pred: (N, J, 3) predictions, mm; numpy array or torch tensor (of the same type as ``gt``).
        gt: (N, J, 3) ground truth, mm.
        alignment: one of :data:`ALIGNMENTS`.
        mask: (N, J) bool, the joints that count (default all J, the root included); every frame needs one.
        reduce: return the mean over frames (a float) instead of the per-frame errors.
        root: the root joint both poses are re-centred on; None compares them as given.

    Returns:
        (N,) per-frame errors in mm (numpy array or tensor, of ``pred``'s dtype; differentiable for tensors),
        or their mean over frames as a float if ``reduce``. For the paper's per-action table, pass the
        per-frame errors to :func:`per_action`. NaN for a frame whose fit is undefined ("scale",
        "procrustes": the fitted predicted joints all at one point, e.g. only the root visible).
    """
    _check_pair(pred, gt)
    if alignment not in ALIGNMENTS:
        raise InputError(f"alignment: expected one of {ALIGNMENTS}, got {alignment!r}")
    w = _weights(mask, pred)
    if root is not None:
        pred, gt = center_on_root(pred, root), center_on_root(gt, root)
    if alignment == "scale":
        pred = _scale(pred, gt, w)
    elif alignment == "procrustes":
        pred = _procrustes(pred, gt, w)
    return _reduce(_joint_mean(_norms(pred - gt), w), reduce)


def mpjpe(pred: Array, gt: Array, reduce: bool = True, *, mask: Mask = None, root: int | None = 0) -> Array | float:
    """Protocol #1 of Human3.6M: MPJPE, the mean Euclidean joint error of root-centred poses, no alignment.

    Args:
        pred: (N, J, 3) predictions, mm (numpy or torch, as ``gt``).
        gt: (N, J, 3) ground truth, mm.
        reduce: mean over frames (float) instead of per-frame errors.
        mask: (N, J) bool, the joints that count (default all 17, the root included).
        root: see :func:`pose_error`.

    Returns:
        (N,) per-frame errors in mm, or their mean (float) if ``reduce``.
    """
    return pose_error(pred, gt, "none", mask, reduce, root)


def n_mpjpe(pred: Array, gt: Array, reduce: bool = True, *, mask: Mask = None, root: int | None = 0) -> Array | float:
    """N-MPJPE (Rhodin et al., CVPR 2018): MPJPE after the per-frame least-squares scale of the root-centred
    prediction, ``s = <pred, gt> / <pred, pred>`` (no rotation, no translation).

    Args:
        pred: (N, J, 3) predictions, mm (numpy or torch, as ``gt``).
        gt: (N, J, 3) ground truth, mm.
        reduce: mean over frames (float) instead of per-frame errors.
        mask: (N, J) bool, the joints the scale is fitted on and that count.
        root: see :func:`pose_error`.

    Returns:
        (N,) per-frame errors in mm, or their mean (float) if ``reduce``.
    """
    return pose_error(pred, gt, "scale", mask, reduce, root)


def p_mpjpe(pred: Array, gt: Array, reduce: bool = True, *, mask: Mask = None, root: int | None = 0) -> Array | float:
    """Protocol #2 of Human3.6M: P-MPJPE, the MPJPE after per-frame Procrustes alignment of the prediction
    (the similarity transform: rotation with det +1, translation, scale).

    Args:
        pred: (N, J, 3) predictions, mm (numpy or torch, as ``gt``).
        gt: (N, J, 3) ground truth, mm.
        reduce: mean over frames (float) instead of per-frame errors.
        mask: (N, J) bool, the joints the similarity is fitted on and that count.
        root: see :func:`pose_error`.

    Returns:
        (N,) per-frame errors in mm, or their mean (float) if ``reduce``.
    """
    return pose_error(pred, gt, "procrustes", mask, reduce, root)


def per_action(errors: np.ndarray | torch.Tensor, actions: np.ndarray | list[str]) -> dict[str, float]:
    """Per-action means of per-frame errors, and the mean over actions: the paper's aggregation, for any metric.

    Pass the ``reduce=False`` output of :func:`mpjpe`, :func:`n_mpjpe`, :func:`p_mpjpe` or :func:`pose_error`.

    Args:
        errors: (N,) per-frame errors (mm for the MPJPE family).
        actions: (N,) str, the action of each frame.

    Returns:
        ``{action: mean error over its frames}`` sorted by action name, plus ``"mean"``: the unweighted mean of
        the per-action means (the "Avg" column of Human3.6M tables; not the mean over frames).
    """
    if isinstance(errors, torch.Tensor):
        errors = errors.detach().cpu().numpy()
    errors = np.asarray(errors, dtype=np.float64)
    actions = np.asarray(actions)
    if not (errors.ndim == 1 and errors.shape == actions.shape):
        raise InputError("one action per error")
    if "mean" in actions:
        raise InputError("'mean' is reserved")
    out = {str(a): float(errors[actions == a].mean()) for a in np.unique(actions)}
    out["mean"] = float(np.mean(list(out.values())))
    return out


def mean_pose_baseline(train_poses: Array, n: int, root: int = 0) -> Array:
    """The floor of the benchmark: the mean root-centred training pose, predicted for every test frame.

    Args:
        train_poses: (M, J, 3) training poses, mm (numpy or torch).
        n: number of test frames.
        root: the root joint the training poses are centred on before averaging.

    Returns:
        (n, J, 3) copies of the mean pose (root exactly 0), mm, of ``train_poses``' type and floating dtype
        (averaged in float64).
    """
    _check_poses(train_poses, "train_poses")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InputError(f"n: expected a number of frames >= 0, got {n!r}")
    centred = center_on_root(train_poses, root)
    if isinstance(centred, torch.Tensor):
        dtype = centred.dtype if centred.is_floating_point() else torch.float64
        return centred.double().mean(0).to(dtype).expand(int(n), -1, -1).clone()
    dtype = centred.dtype if np.issubdtype(centred.dtype, np.floating) else np.float64
    return np.broadcast_to(centred.mean(0, dtype=np.float64).astype(dtype), (int(n), *centred.shape[1:])).copy()


def _exact_mpjpe(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MPJPE of root-centred float64 poses broadcast together, (..., J, 3) -> (...): the formula of :func:`mpjpe`."""
    return _norms(a - b).mean(-1)


def _screen(test: torch.Tensor, train_blocks: list[torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` training poses of least approximate joint-distance sum to each test pose, block by block.

    Args:
        test: (B, J, 3) float64 test poses.
        train_blocks: (J, 5, C) float64 blocks ``[-2 r, 1, |r|^2 + delta]`` of the training poses, in index order.
        k: candidates to keep per test pose.

    Returns:
        ``(sums, indices)``, both (B, min(k, M)): the approximate sums over joints of the joint distances,
        ascending, and the training indices they belong to.
    """
    a = torch.cat([test, (test * test).sum(-1, keepdim=True), torch.ones_like(test[..., :1])], -1)
    a = a.transpose(0, 1).contiguous()  # (J, B, 5) = [t, |t|^2, 1]: a @ block = |t - r|^2 + delta per joint
    sums, indices, start = test.new_empty(len(test), 0), torch.empty(len(test), 0, dtype=torch.long), 0
    work: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # reused buffers: fresh large ones page-fault
    for block in train_blocks:
        size = block.shape[-1]
        sq, dist = work.setdefault(size, (test.new_empty(a.shape[0], len(test), size), test.new_empty(len(test), size)))
        torch.sqrt(torch.bmm(a, block, out=sq), out=sq)  # > 0 by construction (see _nearest_all)
        torch.sum(sq, 0, out=dist)  # (B, C)
        near, pick = dist.topk(min(k, size), dim=1, largest=False)
        sums, indices = torch.cat([sums, near], 1), torch.cat([indices, pick + start], 1)
        sums, pick = sums.topk(min(k, sums.shape[1]), dim=1, largest=False)
        indices, start = indices.gather(1, pick), start + size
    return sums, indices


def _exact_argmin(test: np.ndarray, train: np.ndarray, block: int) -> np.ndarray:
    """(B,) index of the training pose of least :func:`_exact_mpjpe` to each test pose, ties to the lowest index.

    Args:
        test: (B, J, 3) root-centred float64 test poses.
        train: (M, J, 3) root-centred float64 training poses, compared ``block`` at a time.
        block: training poses per step (memory: B x block x J x 3 float64).
    """
    best, where = np.full(len(test), np.inf), np.zeros(len(test), dtype=np.int64)
    for start in range(0, len(train), block):
        err = _exact_mpjpe(test[:, None], train[None, start : start + block])  # (B, C)
        arg = err.argmin(1)
        val = err[np.arange(len(test)), arg]
        better = val < best  # strict: an equal error later keeps the lower index
        best[better], where[better] = val[better], arg[better] + start
    return where


def _nearest_chunk(t64: np.ndarray, r64: np.ndarray, t_off: torch.Tensor, blocks, slack: float) -> np.ndarray:
    """Exact nearest training index for a chunk of test poses: screening, then exact re-ranking of the candidates.

    The screened sums of joint distances are within ``slack`` plus a relative (J + 4) u of the
    exact ones, so a test pose is settled when its k-th screened sum minus that bound still exceeds the exact
    best of its candidates (no other training pose can then reach it); otherwise (near-ties, duplicates) it is
    recomputed exactly against every training pose.
    """
    num_joints = t64.shape[1]
    sums, cand = _screen(t_off, blocks, _CANDIDATES)
    cand = np.sort(cand.numpy(), 1)  # ascending indices: argmin below breaks ties to the lowest one
    err = _exact_mpjpe(t64[:, None], r64[cand])  # (B, k) exact MPJPE of the candidates
    arg = err.argmin(1)
    rows = np.arange(len(t64))
    where, best = cand[rows, arg], err[rows, arg]
    if cand.shape[1] < len(r64):  # else every training pose was a candidate
        kth = sums[:, -1].numpy() * (1 - (num_joints + 4) * _U64) - slack
        unsure = ~(kth > num_joints * best * (1 + 1e-12))
        if unsure.any():
            where[unsure] = _exact_argmin(t64[unsure], r64, block=max(1, 2**18 // (unsure.sum() * num_joints)))
    return where


def _float64_numpy(poses: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(poses, torch.Tensor):
        return poses.detach().cpu().double().numpy()
    return np.asarray(poses, dtype=np.float64)


def nearest_pose_indices(train_poses: Array, test_poses: Array, chunk: int = 512) -> Array:
    """For every test pose, the index of the training pose of least MPJPE to it (both root-centred), exactly.

    Exact: the true argmin of the per-frame MPJPE (a mean of per-joint Euclidean norms, NOT the argmin of the
    squared distance of the 51-d vectors, which can differ), as :func:`mpjpe` evaluates it in float64; ties go
    to the lowest index. How (all in float64, on CPU): a screening keeps the 16 best candidates per test pose
    (per-joint distances from ``|t|^2 + |r|^2 - 2 t.r`` batched matmuls, see :func:`_nearest_all`), they are
    re-ranked by the direct formula, and a rigorous bound on the screening's rounding error (~1e-7 of the
    poses' extent, ~1e-4 mm) proves that no other training pose can win; a test pose it cannot settle
    (candidates tied within the bound, e.g. duplicated training poses) is recomputed directly against every
    training pose. Memory: about 16 * J * chunk^2 bytes (70 MB for J = 17 and the default chunk).

    Args:
        train_poses: (M, J, 3) training poses, mm (numpy or torch, finite).
        test_poses: (N, J, 3) test ground-truth poses, mm, of the same type and J.
        chunk: test poses per step; training poses are taken 2 * chunk at a time.

    Returns:
        (N,) int64 indices into ``train_poses`` (numpy array, or CPU tensor for tensors).
    """
    _check_poses(train_poses, "train_poses")
    _check_poses(test_poses, "test_poses")
    if type(train_poses) is not type(test_poses) or train_poses.shape[1] != test_poses.shape[1]:
        got = [f"{type(p).__name__} {tuple(p.shape)}" for p in (train_poses, test_poses)]
        raise InputError(f"train_poses and test_poses: expected one type and number of joints, got {got}")
    if isinstance(chunk, bool) or not isinstance(chunk, int | np.integer) or chunk < 1:
        raise InputError(f"chunk: expected an integer >= 1, got {chunk!r}")
    r64, t64 = (_float64_numpy(center_on_root(p)) for p in (train_poses, test_poses))
    if not (np.isfinite(r64).all() and np.isfinite(t64).all()):
        raise InputError("train_poses and test_poses must be finite")
    where = np.concatenate(list(_nearest_all(t64, r64, int(chunk))))
    return torch.from_numpy(where) if isinstance(train_poses, torch.Tensor) else where


def _nearest_all(t64: np.ndarray, r64: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """:func:`_nearest_chunk` over the test poses, ``chunk`` at a time, after the shared preparation.

    The screening skips the root joint (0 after centring, so its distance is exactly 0) and works on the poses
    minus the mean training pose (one point subtracted per joint: distances unchanged, magnitudes and rounding
    smaller). It computes ``|t_j|^2 + |r_j|^2 + delta - 2 t_j.r_j`` by matmuls, whose rounding error is below
    ``delta = 32 u (max|t_j| + max|r_j|)^2``: the value stays positive (no clamp: torch's sqrt of 0 is ~8x
    slower) and within ``2 delta`` of ``d_j^2``, so each screened joint distance is within ``sqrt(2 delta)``
    of ``d_j``; ``slack`` doubles that bound per joint.
    """
    joints = slice(1, None) if r64.shape[1] > 1 else slice(None)
    offset = r64[:, joints].mean(0)
    r_off, t_off = r64[:, joints] - offset, t64[:, joints] - offset
    reach = np.linalg.norm(r_off, axis=-1).max() + np.linalg.norm(t_off, axis=-1).max()
    delta = 32 * _U64 * reach**2 + 1e-200  # + a floor far above float64 subnormals
    slack = 2 * r_off.shape[1] * np.sqrt(2 * delta)  # on a sum over joints of joint distances, mm
    r = torch.from_numpy(r_off)
    packed = torch.cat([-2 * r, torch.ones_like(r[..., :1]), (r * r).sum(-1, keepdim=True) + delta], -1)
    blocks = [b.permute(1, 2, 0).contiguous() for b in packed.split(2 * chunk)]  # (J', 5, C) each
    t = torch.from_numpy(t_off)
    with torch.no_grad():
        for start in range(0, len(t64), chunk):
            part = slice(start, start + chunk)
            yield _nearest_chunk(t64[part], r64, t[part], blocks, slack)


def nearest_pose_oracle(train_poses: Array, test_poses: Array, chunk: int = 512) -> Array:
    """The ceiling of retrieval: for every test pose, the root-centred training pose of least MPJPE to it.

    An oracle (it reads the test ground truth): no method that outputs a training pose, such as LinKDE's or
    StructNet's retrieval, can score below it. Exact, ties to the lowest index, computed in float64; see
    :func:`nearest_pose_indices`.

    Args:
        train_poses: (M, J, 3) training poses, mm (numpy or torch, finite).
        test_poses: (N, J, 3) test ground-truth poses, mm, of the same type and J.
        chunk: test poses per step (see :func:`nearest_pose_indices`).

    Returns:
        (N, J, 3) the chosen training poses, root-centred (root exactly 0), of ``train_poses``' type and dtype.
    """
    where = nearest_pose_indices(train_poses, test_poses, chunk)
    return center_on_root(train_poses)[where.to(train_poses.device) if isinstance(where, torch.Tensor) else where]


def limb_ratio_error(pred: Array, gt: Array, group: str, skeleton: Skeleton = H36M) -> float:
    """Limb-length-ratio error of limb group ``group`` (module docstring): sum over limb pairs (i, j) of the
    frame-mean of ``|log(l_i / l_j)_pred - log(l_i / l_j)_gt|``; unit-free. ``pred``, ``gt``: (N, J, 3), with
    limbs of non-zero length (a zero-length limb makes the ratio, hence the error, infinite)."""
    _check_pair(pred, gt)
    if pred.shape[1] != skeleton.num_joints:
        raise InputError(f"expected {skeleton.num_joints} joints")
    limbs = skeleton.limb_groups[group]
    parent = [p for p, _ in limbs]
    child = [c for _, c in limbs]
    xp = _xp(pred)
    log_len = [xp.log(((p[:, child] - p[:, parent]) ** 2).sum(-1) ** 0.5) for p in (pred, gt)]  # (N, L) each
    diff = log_len[0] - log_len[1]  # log l_pred - log l_gt per limb
    return float(sum(abs(diff[:, i] - diff[:, j]).mean() for i, j in combinations(range(len(limbs)), 2)))


def limb_ratio_errors(pred: Array, gt: Array, skeleton: Skeleton = H36M) -> dict[str, float]:
    """:func:`limb_ratio_error` for every limb group of ``skeleton`` ("lower", "upper", "full" for H36M)."""
    return {group: limb_ratio_error(pred, gt, group, skeleton) for group in skeleton.limb_groups}
