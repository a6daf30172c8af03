"""Pose-error metrics. Pure functions on numpy arrays or torch tensors of poses (N, J, 3) in mm.

* :func:`mpjpe`: Protocol #1 of Human3.6M, the mean per-joint position error, no alignment; the poses
  are compared as given (root-relative in structpose).
* :func:`p_mpjpe`: Protocol #2, the MPJPE after aligning each predicted pose to its ground truth by the
  best similarity transform (rotation, translation, scale; proper rotations only, no reflection).
* :func:`per_action`: errors averaged per action, plus their mean.
* :func:`limb_ratio_error` / :func:`limb_ratio_errors`: the limb-length-ratio error of the paper's
  Table 2, in OUR reading (the paper does not define it): for a group of limbs (lower body, upper body,
  full body, see ``Skeleton.limb_groups``), the SUM over all unordered pairs of limbs (i, j) of the
  group of the MEAN over frames of ``|log(l_i / l_j)_pred - log(l_i / l_j)_gt|``. It is unit-free,
  blind to the global scale of the prediction, and grows with the number of pairs, hence from the lower
  body (4 limbs, 6 pairs) to the full body (8 limbs, 28 pairs), as in the paper's table.
"""

from __future__ import annotations

from itertools import combinations
from types import ModuleType
from typing import TypeVar

import numpy as np
import torch

from structpose.errors import InputError
from structpose.skeleton import H36M, Skeleton

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _xp(a: np.ndarray | torch.Tensor) -> ModuleType:
    """The array namespace of ``a``: ``torch`` or ``numpy``."""
    return torch if isinstance(a, torch.Tensor) else np


def _check_pair(pred: Array, gt: Array) -> None:
    if type(pred) is not type(gt):
        raise InputError("pred and gt must both be numpy arrays or both torch tensors")
    if not (pred.shape == gt.shape and pred.ndim == 3 and pred.shape[-1] == 3):
        raise InputError(f"expected two (N, J, 3) poses, got {tuple(pred.shape)} and {tuple(gt.shape)}")


def _reduce(per_frame: Array, reduce: bool) -> Array | float:
    return float(per_frame.mean()) if reduce else per_frame


def mpjpe(pred: Array, gt: Array, reduce: bool = True) -> Array | float:
    """Protocol #1: mean over joints (and frames) of the Euclidean joint error, in the poses' unit (mm).

    ``pred``, ``gt``: (N, J, 3). Returns a float, or the (N,) per-frame errors unless ``reduce``.
    """
    _check_pair(pred, gt)
    return _reduce((((pred - gt) ** 2).sum(-1) ** 0.5).mean(-1), reduce)


def procrustes_align(pred: Array, gt: Array) -> Array:
    """Each ``pred[n]`` (N, J, 3) mapped by the similarity ``s R x + t`` (det R = +1) closest to ``gt[n]``."""
    _check_pair(pred, gt)
    xp = _xp(pred)
    mu_p, mu_g = pred.mean(-2, keepdims=True), gt.mean(-2, keepdims=True)
    x, y = pred - mu_p, gt - mu_g
    u, sv, vt = xp.linalg.svd(x.swapaxes(-1, -2) @ y)  # x^T y = U S V^T, (N, 3, 3)
    d = xp.sign(xp.linalg.det(u @ vt))  # -1 where the best orthogonal map is a reflection
    flip = xp.ones_like(sv)
    flip[:, -1] = d
    rot = (u * flip[:, None, :]) @ vt  # U diag(1, 1, d) V^T: maximises tr(R^T x^T y) over rotations
    scale = (sv * flip).sum(-1) / (x**2).sum((-1, -2))  # (N,)
    return scale[:, None, None] * (x @ rot) + mu_g


def p_mpjpe(pred: Array, gt: Array, reduce: bool = True) -> Array | float:
    """Protocol #2: MPJPE after per-frame Procrustes alignment (rotation, translation, scale) of ``pred``.

    ``pred``, ``gt``: (N, J, 3). Returns a float, or the (N,) per-frame errors unless ``reduce``.
    """
    return mpjpe(procrustes_align(pred, gt), gt, reduce)


def per_action(errors: np.ndarray | torch.Tensor, actions: np.ndarray | list[str]) -> dict[str, float]:
    """Per-frame ``errors`` (N,) averaged over the frames of each action (N,) str, sorted by action name,
    plus ``"mean"``: the mean of the per-action errors (the "Avg" column of Human3.6M tables)."""
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
