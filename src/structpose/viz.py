"""Pictures: 2D skeletons over crops, 3D pose plots, sample grids. Left joints red, right blue, centre grey."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from structpose.errors import InputError
from structpose.files import atomic_path  # noqa: E402
from structpose.skeleton import H36M, Skeleton  # noqa: E402

LEFT, RIGHT, CENTRE = "#e8412c", "#2c7be8", "#bbbbbb"


def limb_colour(limb: tuple[int, int], skeleton: Skeleton = H36M) -> str:
    child = limb[1]
    return LEFT if child in skeleton.left else RIGHT if child in skeleton.right else CENTRE


def draw_skeleton_2d(ax, joints2d: np.ndarray, skeleton: Skeleton = H36M, lw: float = 1.5) -> None:
    """Draw a 2D skeleton (J, 2) in image pixels on a matplotlib axis showing the image."""
    if joints2d.shape != (skeleton.num_joints, 2):
        raise InputError(f"expected 2D joints ({skeleton.num_joints}, 2) px, got shape {joints2d.shape}")
    for limb in skeleton.limbs:
        a, b = joints2d[list(limb)]
        ax.plot([a[0], b[0]], [a[1], b[1]], color=limb_colour(limb, skeleton), lw=lw)
    ax.scatter(joints2d[:, 0], joints2d[:, 1], s=4, c="white", zorder=3)


def ratio_reference_lines(ax, paper: float | None = None) -> None:
    """Mark the reading points of a ratio axis (OURS / CNN, say): 1 (no difference) dashed grey and, when
    given, the paper's ratio dotted red, labelled for the legend, so a CI can be read against both.

    Args:
        ax: a matplotlib axis whose y axis is the ratio.
        paper: the paper's value of the same ratio (:func:`structpose.paper.paper_ratios`), or None.
    """
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="1: no difference")
    if paper is not None:
        ax.axhline(paper, color="#c0392b", lw=0.9, ls=":", label=f"Tekin et al. 2016: {paper:.3f}")


def plot_pose_3d(ax, pose: np.ndarray, skeleton: Skeleton = H36M, alpha: float = 1.0, style: str = "-") -> None:
    """Plot a root-relative camera-frame pose (J, 3) mm on a 3D axis, shown upright (camera y points down).

    The axis limits fit every pose drawn on ``ax`` so far (a cube around them with a 10% margin, equal
    aspect), so a skeleton fills its panel and a prediction and its ground truth share one scale.
    """
    if pose.shape != (skeleton.num_joints, 3):
        raise InputError(f"expected a pose ({skeleton.num_joints}, 3) mm, got shape {pose.shape}")
    shown = pose[:, [0, 2, 1]] * np.array([1.0, 1.0, -1.0])  # camera x, z (depth), -y (up)
    for limb in skeleton.limbs:
        a, b = shown[list(limb)]
        ax.plot([a[0], b[0]], [a[1], b[1]], [a[2], b[2]], style, color=limb_colour(limb, skeleton), alpha=alpha)
    points = np.concatenate([getattr(ax, "_structpose_points", np.empty((0, 3))), shown])
    ax._structpose_points = points
    centre = (points.max(0) + points.min(0)) / 2
    half = max(float((points.max(0) - points.min(0)).max()) / 2 * 1.1, 1.0)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_xlabel("x")
    ax.set_ylabel("z (depth)")
    ax.set_zlabel("-y")
    ax.set_box_aspect((1, 1, 1))


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Save ``fig`` atomically (see :func:`structpose.files.atomic_path`) and close it.

    Args:
        fig: a matplotlib figure.
        path: the file; its suffix names the format (``.png``, ``.pdf``, ``.svg``, ...).
        dpi: resolution, dots per inch.

    Returns:
        ``path``, with mode ``0o666`` less the umask. On failure (a full disk included) a previous file at
        ``path`` is left as it was and no temporary file remains.
    """
    path = Path(path)
    fmt = path.suffix[1:].lower() or plt.rcParams["savefig.format"]  # the temporary name has another suffix
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def sample_sheet(
    images: np.ndarray,
    joints2d: np.ndarray,
    poses3d: np.ndarray,
    titles: list[str],
    path: str | Path,
    cols: int = 6,
) -> Path:
    """A grid of crops (N, S, S, 3) with their 2D skeletons (N, J, 2), plus the 3D pose (N, J, 3) of the first."""
    n = len(images)
    rows = int(np.ceil(n / cols))
    fig = plt.figure(figsize=(2.2 * cols + 4.5, 2.3 * rows))
    grid = fig.add_gridspec(rows, cols + 2)
    for i in range(n):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        ax.imshow(images[i])
        draw_skeleton_2d(ax, joints2d[i])
        ax.set_xlim(0, images.shape[2])
        ax.set_ylim(images.shape[1], 0)
        ax.set_title(titles[i], fontsize=7)
        ax.axis("off")
    ax3 = fig.add_subplot(grid[:, cols:], projection="3d")
    plot_pose_3d(ax3, poses3d[0])
    ax3.set_title(f"3D pose of '{titles[0]}' (camera frame)", fontsize=8)
    return save_figure(fig, path)
