"""Human3.6M's camera model: world <-> camera transforms and pinhole projection with distortion.

Conventions (those of Human3.6M's metadata and of the shipped ``assets/h36m_cameras.json``):

* ``X_cam = R @ X_world + t``, millimetres; the camera looks down +z, x right, y down in the image.
* Distortion is Human3.6M's own model (its official ``ProjectPointRadial``, also used by
  3d-pose-baseline and VideoPose3D), *not* OpenCV's: with ``(x, y) = (X/Z, Y/Z)``, ``r2 = x^2 + y^2``::

      radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
      tan    = p1 y + p2 x
      x'     = x (radial + tan) + p2 r2
      y'     = y (radial + tan) + p1 r2
      u, v   = fx x' + cx,  fy y' + cy

  ``[k1, k2, p1, p2, k3]`` is the order of the metadata's distortion vector.

All functions are vectorised over leading dimensions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from structpose.errors import InputError

H36M_CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")
H36M_SUBJECTS: tuple[str, ...] = tuple(f"S{i}" for i in range(1, 12))
#: Nominal image sizes (width, height) of the four Human3.6M cameras.
H36M_RESOLUTION: dict[str, tuple[int, int]] = {
    "54138969": (1000, 1002),
    "55011271": (1000, 1000),
    "58860488": (1000, 1000),
    "60457274": (1000, 1002),
}


@dataclass(frozen=True)
class Camera:
    """A calibrated camera. Intrinsics in pixels, extrinsics in millimetres (``X_cam = R X_world + t``)."""

    fx: float
    fy: float
    cx: float
    cy: float
    k: tuple[float, float, float] = (0.0, 0.0, 0.0)  # radial k1, k2, k3
    p: tuple[float, float] = (0.0, 0.0)  # tangential p1, p2 (Human3.6M's convention)
    R: np.ndarray = None  # type: ignore[assignment]  (3, 3) world -> camera rotation
    t: np.ndarray = None  # type: ignore[assignment]  (3,) translation, mm
    width: int = 1000
    height: int = 1000
    id: str = ""

    def __post_init__(self) -> None:
        R = np.eye(3) if self.R is None else np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        t = np.zeros(3) if self.t is None else np.asarray(self.t, dtype=np.float64).reshape(3)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)

    # ---- extrinsics -------------------------------------------------------------------------
    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, (3,) mm."""
        return -self.R.T @ self.t

    def world_to_camera(self, X: np.ndarray) -> np.ndarray:
        """(..., 3) world mm -> (..., 3) camera mm."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-1] != 3:
            raise InputError(f"expected points (..., 3) in mm, got shape {X.shape}")
        return X @ self.R.T + self.t

    def camera_to_world(self, X: np.ndarray) -> np.ndarray:
        """(..., 3) camera mm -> (..., 3) world mm."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape[-1] != 3:
            raise InputError(f"expected points (..., 3) in mm, got shape {X.shape}")
        return (X - self.t) @ self.R

    # ---- intrinsics -------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def intrinsics_vector(self) -> np.ndarray:
        """``[fx, fy, cx, cy, k1, k2, k3, p1, p2]`` (9,), the layout stored with every sample."""
        return np.array([self.fx, self.fy, self.cx, self.cy, *self.k, *self.p], dtype=np.float64)

    @classmethod
    def from_intrinsics_vector(cls, v: np.ndarray, **kw) -> Camera:
        v = [float(x) for x in np.asarray(v).reshape(9)]
        return cls(fx=v[0], fy=v[1], cx=v[2], cy=v[3], k=(v[4], v[5], v[6]), p=(v[7], v[8]), **kw)

    def without_distortion(self) -> Camera:
        return replace(self, k=(0.0, 0.0, 0.0), p=(0.0, 0.0))

    def project(self, X_cam: np.ndarray, distort: bool = True) -> np.ndarray:
        """Camera-frame points (..., 3) mm -> pixels (..., 2). Points must be in front (z > 0)."""
        return project(X_cam, self.intrinsics_vector() if distort else self.without_distortion().intrinsics_vector())

    def project_world(self, X_world: np.ndarray, distort: bool = True) -> np.ndarray:
        return self.project(self.world_to_camera(X_world), distort)

    def unproject(self, uv: np.ndarray, depth: np.ndarray, distort: bool = True) -> np.ndarray:
        """Pixels (..., 2) and depth z (...) mm -> camera-frame points (..., 3) mm (inverse of ``project``)."""
        uv = np.asarray(uv, dtype=np.float64)
        depth = np.asarray(depth, dtype=np.float64)
        xd = np.stack([(uv[..., 0] - self.cx) / self.fx, (uv[..., 1] - self.cy) / self.fy], axis=-1)
        xy = undistort_normalized(xd, self.k, self.p) if distort else xd
        return np.concatenate([xy * depth[..., None], depth[..., None]], axis=-1)


def _distort(xy: np.ndarray, k, p) -> np.ndarray:
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = p[0] * y + p[1] * x
    return np.stack([x * (radial + tan) + p[1] * r2, y * (radial + tan) + p[0] * r2], axis=-1)


def undistort_normalized(xd: np.ndarray, k, p, iters: int = 20) -> np.ndarray:
    """Invert Human3.6M's distortion on normalised image coordinates (..., 2) by fixed-point iteration."""
    xy = xd.copy()
    for _ in range(iters):
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
        tan = p[0] * y + p[1] * x
        xy = np.stack([(xd[..., 0] - p[1] * r2) / (radial + tan), (xd[..., 1] - p[0] * r2) / (radial + tan)], -1)
    return xy


def project(X_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Project camera-frame points (..., 3) mm with intrinsics ``[fx,fy,cx,cy,k1,k2,k3,p1,p2]`` (9,) -> (..., 2)."""
    X = np.asarray(X_cam, dtype=np.float64)
    if X.shape[-1] != 3:
        raise InputError(f"expected points (..., 3) in mm, got shape {X.shape}")
    v = np.asarray(intrinsics, dtype=np.float64)
    if v.shape != (9,):
        raise InputError(f"expected intrinsics (9,) [fx, fy, cx, cy, k1, k2, k3, p1, p2], got shape {v.shape}")
    if not np.all(X[..., 2] > 0):
        raise InputError("points behind the camera cannot be projected")
    xy = _distort(X[..., :2] / X[..., 2:3], v[4:7], v[7:9])
    return xy * v[0:2] + v[2:4]


def project_torch(X_cam: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Differentiable ``project``: X_cam (B, J, 3) mm, intrinsics (B, 9) -> (B, J, 2) pixels."""
    if not (X_cam.ndim == 3 and X_cam.shape[-1] == 3):
        raise InputError(f"expected camera-frame points (B, J, 3), got shape {tuple(X_cam.shape)}")
    if intrinsics.shape != (X_cam.shape[0], 9):
        raise InputError(f"expected intrinsics ({X_cam.shape[0]}, 9), got shape {tuple(intrinsics.shape)}")
    f, c = intrinsics[:, None, 0:2], intrinsics[:, None, 2:4]
    k, p = intrinsics[:, None, 4:7], intrinsics[:, None, 7:9]
    xy = X_cam[..., :2] / X_cam[..., 2:3].clamp(min=1e-6)
    x, y = xy[..., 0:1], xy[..., 1:2]
    r2 = x * x + y * y
    radial = 1 + k[..., 0:1] * r2 + k[..., 1:2] * r2**2 + k[..., 2:3] * r2**3
    tan = p[..., 0:1] * y + p[..., 1:2] * x
    xd = torch.cat([x * (radial + tan) + p[..., 1:2] * r2, y * (radial + tan) + p[..., 0:1] * r2], dim=-1)
    return xd * f + c


@lru_cache(maxsize=1)
def _camera_json() -> dict:
    text = resources.files("structpose.assets").joinpath("h36m_cameras.json").read_text()
    return json.loads(text)


def h36m_intrinsics(camera_id: str) -> Camera:
    """The published intrinsics of one Human3.6M camera (identity extrinsics)."""
    d = _camera_json()["intrinsics"]
    if camera_id not in d:
        raise KeyError(f"unknown Human3.6M camera {camera_id!r}; known: {', '.join(H36M_CAMERA_IDS)}")
    K = np.asarray(d[camera_id]["calibration_matrix"])
    k1, k2, p1, p2, k3 = d[camera_id]["distortion"]
    w, h = H36M_RESOLUTION[camera_id]
    return Camera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], (k1, k2, k3), (p1, p2), width=w, height=h, id=camera_id)


def h36m_camera(subject: str, camera_id: str) -> Camera:
    """Human3.6M camera ``camera_id`` as calibrated for ``subject`` (e.g. ``"S9"``, ``"54138969"``)."""
    ext = _camera_json()["extrinsics"]
    if subject not in ext:
        raise KeyError(f"unknown Human3.6M subject {subject!r}; known: {', '.join(H36M_SUBJECTS)}")
    e = ext[subject][camera_id]
    return replace(h36m_intrinsics(camera_id), R=np.asarray(e["R"]), t=np.asarray(e["t"]).reshape(3))


def h36m_cameras() -> dict[str, dict[str, Camera]]:
    """All published cameras: ``{subject: {camera_id: Camera}}`` (11 subjects x 4 cameras)."""
    return {s: {c: h36m_camera(s, c) for c in H36M_CAMERA_IDS} for s in H36M_SUBJECTS}
