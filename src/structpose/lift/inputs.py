"""What the lifter sees: mocap 2D made to look like a detector's, and its normalisation by the person box.

The lifter is trained on mocap joints projected by a camera, but used on a detector's keypoints. Two things
differ, and both are modelled here, in one place, for training and evaluation alike:

1. **The hips.** A 2D detector's hips (BlazePose's, COCO's) are where a hip looks to be on the body's
   surface; mocap hip joints are the joint centres. With no paired real 2D/3D data offline the offset cannot
   be measured here: :class:`HipOffset` models it as the two hips moved towards their midpoint (``width``:
   the detector's hip separation as a fraction of the mocap's) and up towards the thorax (``rise``: a
   fraction of the hip-centre-to-thorax distance), each drawn around its nominal value in training
   (``jitter``). The nominal values are assumptions, not measurements; the lifting report measures how
   much a wrong one costs (its "hip offset" table).
2. **The synthesised joints.** Hip, Thorax and Spine are not detected; the detector's 17 joints are built
   by :func:`structpose.keypoints.synthesise`, and the lifter's training input by
   :func:`structpose.keypoints.detector_view`, which applies the same rules to the mocap's 2D.

:func:`lifter_input` then centres the visible keypoints on their bounding box and divides them by half its
longer side (scale and position in the image are removed, as for a person box), and appends the visibility
flag: (..., 17, 2) px -> (..., 51).

Functions take numpy arrays or torch tensors (of one kind per call) unless they say otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from structpose.keypoints import detector_view
from structpose.skeleton import H36M

_J = H36M.index
R_HIP, L_HIP, THORAX = _J("RHip"), _J("LHip"), _J("Thorax")
R_SHOULDER, L_SHOULDER = _J("RShoulder"), _J("LShoulder")
HIP, SPINE = _J("Hip"), _J("Spine")
#: the joints a detector gives (directly or as a face landmark); the others are synthesised from them
DIRECT_JOINTS: tuple[int, ...] = tuple(j for j in range(H36M.num_joints) if j not in (HIP, SPINE, THORAX))
#: the joints a waist-up photo does not show: hips, knees, feet
LOWER_BODY: tuple[int, ...] = tuple(_J(n) for n in ("RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot"))


@dataclass(frozen=True)
class HipOffset:
    """Where a detector's hips are relative to mocap hip joints (module docstring).

    ``width``: the detector's hip separation / the mocap's; ``rise``: how far the hips move towards the thorax,
    as a fraction of the hip-centre-to-thorax distance; ``jitter``: training draws ``width`` and ``rise``
    uniformly within ± ``jitter`` of their values (per sample). ``width=1, rise=0``: no offset.
    """

    width: float = 0.9
    rise: float = 0.05
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.width <= 2.0 or not -0.5 <= self.rise <= 0.5 or not 0.0 <= self.jitter < 0.5:
            raise ValueError(f"need 0 < width <= 2, |rise| <= 0.5 and 0 <= jitter < 0.5: {self}")


def _hips_moved(xy, width, rise):
    """``xy`` (..., 17, 2) with the two hips moved (module docstring); ``width``/``rise`` broadcast to (..., 1)."""
    mid = (xy[..., R_HIP, :] + xy[..., L_HIP, :]) / 2
    up = xy[..., THORAX, :] - mid
    out = xy.clone() if isinstance(xy, torch.Tensor) else xy.copy()
    for j in (R_HIP, L_HIP):
        out[..., j, :] = mid + width * (xy[..., j, :] - mid) + rise * up
    return out


def derived_visibility(visible):
    """``visible`` (..., 17) bool with Hip, Thorax and Spine visible exactly when what they are built from is
    (Hip: both hips; Thorax: both shoulders; Spine: Hip and Thorax), as :func:`~structpose.keypoints.synthesise`."""
    out = visible.clone() if isinstance(visible, torch.Tensor) else visible.copy()
    out[..., HIP] = visible[..., R_HIP] & visible[..., L_HIP]
    out[..., THORAX] = visible[..., R_SHOULDER] & visible[..., L_SHOULDER]
    out[..., SPINE] = out[..., HIP] & out[..., THORAX]
    return out


def lifter_input(xy, visible):
    """Normalised keypoints: (..., 17, 2) px and (..., 17) bool -> (..., 51) float32 ``[x, y, visible]`` per joint.

    Visible joints are centred on the centre of their bounding box and divided by half its longer side (so
    they lie in [-1, 1]); hidden joints are (0, 0) with flag 0. A sample with no visible joint is all zeros.
    """
    torch_in = isinstance(xy, torch.Tensor)
    x = xy.double() if torch_in else np.asarray(xy, np.float64)
    v = visible.bool() if torch_in else np.asarray(visible, bool)
    vf = v[..., None].double() if torch_in else v[..., None].astype(np.float64)
    big = 1e12
    lo = (x + (1 - vf) * big).amin(-2) if torch_in else (x + (1 - vf) * big).min(-2)
    hi = (x - (1 - vf) * big).amax(-2) if torch_in else (x - (1 - vf) * big).max(-2)
    any_visible = v.any(-1)[..., None]
    centre = (lo + hi) / 2
    half = (hi - lo).amax(-1, keepdim=True) / 2 if torch_in else (hi - lo).max(-1, keepdims=True) / 2
    centre = centre * any_visible
    half = half * any_visible + (~any_visible)  # 1 where nothing is visible
    half = half.clamp_min(1e-6) if torch_in else np.maximum(half, 1e-6)
    norm = (x - centre[..., None, :]) / half[..., None, :] * vf
    parts = (norm, vf)
    out = torch.cat(parts, -1) if torch_in else np.concatenate(parts, -1)
    out = out.reshape(*out.shape[:-2], -1)
    return out.float() if torch_in else out.astype(np.float32)


def augment(joints2d: torch.Tensor, hips: HipOffset, noise_px: float, drop: float,
            waist_up: float = 0.0) -> torch.Tensor:  # fmt: skip
    """Training input from mocap joints (B, 17, 2) px, with torch's RNG: hips moved by ``hips`` with its
    jitter, Gaussian noise of a per-sample std drawn uniformly in [0, ``noise_px``] px, Hip/Thorax/Spine
    synthesised, then each detected joint hidden with probability ``drop``, and the whole lower body
    (:data:`LOWER_BODY`) of a sample with probability ``waist_up`` (a waist-up photo) -> (B, 51)
    (:func:`lifter_input`)."""
    b = len(joints2d)
    device = joints2d.device
    x = joints2d.double()
    width = hips.width + hips.jitter * (2 * torch.rand(b, 1, device=device, dtype=x.dtype) - 1)
    rise = hips.rise + hips.jitter * (2 * torch.rand(b, 1, device=device, dtype=x.dtype) - 1)
    x = _hips_moved(x, width, rise)
    sigma = noise_px * torch.rand(b, 1, 1, device=device, dtype=x.dtype)
    x = x + sigma * torch.randn(x.shape, device=device, dtype=x.dtype)
    x = torch.from_numpy(detector_view(x.cpu().numpy())).to(device)
    visible = torch.ones(b, H36M.num_joints, dtype=torch.bool, device=device)
    direct = list(DIRECT_JOINTS)
    visible[:, direct] = torch.rand(b, len(direct), device=device) >= drop
    cut = torch.rand(b, device=device) < waist_up
    visible[:, list(LOWER_BODY)] &= ~cut[:, None]
    return lifter_input(x, derived_visibility(visible))


def observed_input(joints2d: np.ndarray, hips: HipOffset, noise_px: float = 0.0, drop: float = 0.0,
                   rng: np.random.Generator | None = None, waist_up: bool = False) -> np.ndarray:  # fmt: skip
    """A fixed (evaluation) lifter input from mocap joints (N, 17, 2) px, in numpy: hips at ``hips`` (no
    jitter), Gaussian noise of std ``noise_px`` px, Hip/Thorax/Spine synthesised, each detected joint hidden
    with probability ``drop``, the lower body hidden when ``waist_up`` -> (N, 51) float32. ``rng`` draws the
    noise and the hidden joints."""
    rng = rng or np.random.default_rng(0)
    x = _hips_moved(np.asarray(joints2d, np.float64), hips.width, hips.rise)
    x = detector_view(x + noise_px * rng.standard_normal(x.shape))
    visible = np.ones(x.shape[:-1], bool)
    direct = list(DIRECT_JOINTS)
    visible[..., direct] = rng.random((*x.shape[:-2], len(direct))) >= drop
    if waist_up:
        visible[..., list(LOWER_BODY)] = False
    return lifter_input(x, derived_visibility(visible))
