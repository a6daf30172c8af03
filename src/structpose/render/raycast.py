"""A vectorised numpy ray caster for capsules, restricted to the pixels of a person crop.

Rays start at the camera centre (the origin of the camera frame) and pass through the centres of an
``n x n`` grid of crop pixels. Lens distortion is inverted exactly (by
:func:`~structpose.camera.undistort_normalized`) once per lens on a fine table, looked up at a coarse
grid of nodes at most ``NODE_SPACING_PX`` apart and interpolated (Catmull-Rom) in between, so a ray
through crop pixel ``q`` hits the 3D points that :meth:`Camera.project` maps to ``q`` (to a few
thousandths of a pixel).

Per-capsule culling: each capsule's screen-space bounding box (exact for the two end spheres in the
undistorted image plane, then distorted) bounds the rays it is tested against; the (ray, capsule) pairs
of all boxes are then solved in one vectorised pass.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from structpose.camera import Camera, undistort_normalized
from structpose.render.interp import cubic_matrix, resample

#: Largest spacing, in full-image pixels, of the nodes where the undistortion is looked up exactly.
NODE_SPACING_PX = 48.0
#: Extent and spacing of the per-lens table of undistorted coordinates (normalised image coordinates).
TABLE_LIMIT, TABLE_STEP = 1.2, 0.005


@lru_cache(maxsize=8)
def undistortion_table(k: tuple[float, float, float], p: tuple[float, float]) -> np.ndarray:
    """Undistorted normalised coordinates (G, G, 2) of a regular grid of distorted ones, ``TABLE_STEP``
    apart over ``[-TABLE_LIMIT, TABLE_LIMIT]^2`` (row: y, column: x); NaN where the lens model has no
    inverse (the fixed-point iteration did not land back on the grid point)."""
    g = np.arange(-TABLE_LIMIT, TABLE_LIMIT + TABLE_STEP / 2, TABLE_STEP)
    xd = np.stack(np.meshgrid(g, g), axis=-1)
    xy = undistort_normalized(xd, k, p, iters=50)
    lens = Camera(fx=1.0, fy=1.0, cx=0.0, cy=0.0, k=k, p=p)
    back = lens.project(np.concatenate([xy, np.ones(xy.shape[:-1] + (1,))], axis=-1))
    xy[np.abs(back - xd).max(axis=-1) > 1e-9] = np.nan
    return xy


def _lookup(table: np.ndarray, xd: np.ndarray, yd: np.ndarray) -> np.ndarray:
    """Bilinear lookup of an :func:`undistortion_table` on the grid ``yd`` (m,) x ``xd`` (l,) -> (m, l, 2)."""
    G = table.shape[0]
    fx, fy = (xd + TABLE_LIMIT) / TABLE_STEP, (yd + TABLE_LIMIT) / TABLE_STEP
    ix, iy = (
        np.clip(np.floor(fx).astype(np.int64), 0, G - 2),
        np.clip(np.floor(fy).astype(np.int64), 0, G - 2),
    )
    wx, wy = (fx - ix)[None, :, None], (fy - iy)[:, None, None]
    if np.any((wx < 0) | (wx > 1)) or np.any((wy < 0) | (wy > 1)):
        return np.full((len(yd), len(xd), 2), np.nan)
    iy, ix = iy[:, None], ix[None, :]
    top = table[iy, ix] * (1 - wx) + table[iy, ix + 1] * wx
    bottom = table[iy + 1, ix] * (1 - wx) + table[iy + 1, ix + 1] * wx
    return top * (1 - wy) + bottom * wy


def crop_rays(camera: Camera, box: np.ndarray, n: int) -> np.ndarray:
    """Unit ray directions (n, n, 3) float32 in the camera frame through an n x n grid over ``box``.

    Row ``i``, column ``j`` is the ray through full-image pixel ``box[:2] + (j + 0.5, i + 0.5) * side / n``.
    Raises ``ValueError`` if the crop reaches where the lens model cannot be inverted.
    """
    side = float(box[2] - box[0])
    nodes = int(np.clip(np.ceil(side / NODE_SPACING_PX), 3, n)) + 1
    # node offsets from the box corner, px: evenly spread over the pixel centres, plus one beyond each end
    s = (0.5 + np.arange(-1, nodes + 1) * (n - 1) / (nodes - 1)) * (side / n)
    xy = _lookup(undistortion_table(camera.k, camera.p), (box[0] + s - camera.cx) / camera.fx,
                 (box[1] + s - camera.cy) / camera.fy)  # fmt: skip
    if not np.all(np.isfinite(xy)):
        raise ValueError("the crop reaches beyond where the camera's lens distortion can be inverted")
    W = cubic_matrix(n, nodes)
    x, y = resample(xy[..., 0].astype(np.float32), W), resample(xy[..., 1].astype(np.float32), W)
    inv = 1 / np.sqrt(x * x + y * y + 1)
    rays = np.empty((n, n, 3), dtype=np.float32)
    rays[..., 0] = x * inv
    rays[..., 1] = y * inv
    rays[..., 2] = inv
    return rays


def capsule_boxes(
    camera: Camera,
    box: np.ndarray,
    n: int,
    a: np.ndarray,
    b: np.ndarray,
    r: np.ndarray,
) -> np.ndarray:
    """Per-capsule ray-grid windows (N, 4) int ``[i0, i1, j0, j1]`` (rows i0:i1, columns j0:j1) that hold
    every ray which can hit the capsule; empty windows where a capsule is outside the crop.

    ``a``, ``b``: (N, 3) camera-frame capsule ends, mm; ``r``: (N,) radii. Capsules must lie in front.
    The capsule is the hull of its end spheres, whose exact extent in x/z and y/z bounds it in the
    undistorted image plane; that box's corners and edge midpoints, distorted, bound it in pixels.
    """
    c = np.concatenate([a, b])  # (2N, 3) sphere centres
    rho = np.hypot(c[:, :2], c[:, 2:])  # (2N, 2): distance from the camera in the xz and yz planes
    phi = np.arctan2(c[:, :2], c[:, 2:])
    alpha = np.arcsin(np.minimum(np.concatenate([r, r])[:, None] / rho, 1.0))
    lo, hi = np.tan(phi - alpha).reshape(2, -1, 2), np.tan(phi + alpha).reshape(2, -1, 2)
    (x0, y0), (x1, y1) = lo.min(axis=0).T, hi.max(axis=0).T
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xs = np.stack([x0, xm, x1, x1, x1, xm, x0, x0], axis=1)
    ys = np.stack([y0, y0, y0, ym, y1, y1, y1, ym], axis=1)
    px = camera.project(np.stack([xs, ys, np.ones_like(xs)], axis=-1))  # (N, 8, 2)
    q = (px - np.asarray(box[:2])) * (n / float(box[2] - box[0])) - 0.5  # crop-grid index coordinates
    first = np.clip(np.floor(q.min(axis=1)).astype(np.int64) - 1, 0, n)
    last = np.clip(np.ceil(q.max(axis=1)).astype(np.int64) + 2, 0, n)
    return np.stack([first[:, 1], last[:, 1], first[:, 0], last[:, 0]], axis=1)


def _window_rays(windows: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat ray indices (T,) of all windows (N, 4) of a grid ``width`` rays wide, concatenated in window
    order, and the window each belongs to (T,)."""
    i0, i1, j0, j1 = windows.T
    h, w = np.maximum(i1 - i0, 0), np.maximum(j1 - j0, 0)
    sizes = h * w
    owner = np.repeat(np.arange(len(windows)), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # position in window
    w_own = w[owner]
    return (local // w_own + i0[owner]) * width + local % w_own + j0[owner], owner


def _first_hits(d: np.ndarray, a: np.ndarray, u: np.ndarray, consts: np.ndarray) -> np.ndarray:
    """Distance along unit rays ``d`` (3, ...) to their entry into capsules given by ends ``a`` (3, ...),
    axes ``u`` (3, ...) and :func:`_capsule_constants` rows ``consts`` (7, ...), all broadcast together;
    NaN for misses (they come out of the square roots)."""
    au, cyl, length, half, mid, ca, cba = consts
    with np.errstate(invalid="ignore", divide="ignore"):
        da = d[0] * a[0] + d[1] * a[1] + d[2] * a[2]
        du = d[0] * u[0] + d[1] * u[1] + d[2] * u[2]
        # infinite cylinder: A t^2 - 2 B t + C = 0 with A = 1 - (d.u)^2, B = d.a - (d.u)(a.u)
        A = 1 - du * du
        B = da - du * au
        t = (B - np.sqrt(B * B - A * cyl)) / A
        s = t * du - mid  # axial position of the hit relative to the segment's middle
        # beyond the segment the ray can only enter through the end sphere on that side
        far = s > 0
        dc = da + length * du * far  # d . (sphere centre)
        ts = dc - np.sqrt(dc * dc - (ca + cba * far))
        np.copyto(ts, t, where=np.abs(s) <= half)
    return ts


def _capsule_constants(a: np.ndarray, b: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit axes (3, N) float32 and per-capsule constants (7, N) float32 of capsules ``a``-``b`` (N, 3),
    radii ``r`` (N,), for rays from the origin: a.u, |a_perp|^2 - r^2, length, length / 2,
    a.u + length / 2, |a|^2 - r^2 and |b|^2 - |a|^2."""
    ba = b - a
    length = np.linalg.norm(ba, axis=1)
    u = ba / np.maximum(length, 1e-9)[:, None]
    au = np.einsum("ij,ij->i", a, u)  # axial position of the camera centre's foot, relative to a
    ca = np.einsum("ij,ij->i", a, a) - r * r  # the sphere at a
    cb = np.einsum("ij,ij->i", b, b) - r * r
    consts = np.stack([au, ca - au * au, length, length / 2, au + length / 2, ca, cb - ca])
    return u.T.astype(np.float32), consts.astype(np.float32)


def raycast(
    rays: np.ndarray, a: np.ndarray, b: np.ndarray, r: np.ndarray, windows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest capsule hit along each ray.

    ``rays``: (H, W, 3) unit directions from the origin; ``a``, ``b``: (N, 3) capsule ends, mm;
    ``r``: (N,) radii; ``windows``: (N, 4) from :func:`capsule_boxes`, or ``None`` to test every ray
    against every capsule. Returns ``dist`` (H, W) float32, the distance to the hit along the ray in mm
    (``inf`` for no hit), and ``index`` (H, W) int32, the capsule hit (-1 for none; the last capsule
    on exact ties).

    With windows, the (ray, capsule) pairs of all windows are gathered and solved in one vectorised pass
    (per-call overhead, not arithmetic, dominates small windows), then merged window by window into the
    depth buffer. Without, each capsule in turn meets every ray: a plain vectorised caster.
    """
    H, W, _ = rays.shape
    u, consts = _capsule_constants(a, b, r)
    a32 = a.T.astype(np.float32)
    flat = rays.reshape(-1, 3)
    dist = np.full((H, W), np.inf, dtype=np.float32)
    index = np.full((H, W), -1, dtype=np.int32)
    if windows is None:
        d = np.ascontiguousarray(flat.T)
        for k in range(len(r)):
            _merge(dist, index, k, (0, H, 0, W), _first_hits(d, a32[:, k], u[:, k], consts[:, k]))
        return dist, index
    ray, cap = _window_rays(windows, W)
    d = np.take(flat, ray, axis=0).T  # (3, T) the rays of every window, one after the other
    ts = _first_hits(d, np.take(a32, cap, axis=1), np.take(u, cap, axis=1), np.take(consts, cap, axis=1))
    start = 0
    for k, (i0, i1, j0, j1) in enumerate(windows.tolist()):
        if i1 > i0 and j1 > j0:
            size = (i1 - i0) * (j1 - j0)
            _merge(dist, index, k, (i0, i1, j0, j1), ts[start : start + size])
            start += size
    return dist, index


def _merge(dist: np.ndarray, index: np.ndarray, k: int, window: tuple[int, ...], t: np.ndarray) -> None:
    """Depth-test capsule ``k``'s hit distances ``t`` (h * w,) over ``window`` into ``dist``, ``index``.
    NaN (a miss) is never closer; on exact ties the later capsule wins."""
    i0, i1, j0, j1 = window
    zv = dist[i0:i1, j0:j1]
    t = t.reshape(zv.shape)
    closer = t <= zv
    np.copyto(zv, t, where=closer)
    np.copyto(index[i0:i1, j0:j1], k, where=closer)
