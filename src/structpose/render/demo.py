"""Hand-made reference poses and a contact sheet, to check the renderer by eye and in tests.

The poses follow the H36M 17-joint order with typical adult proportions (about 1.72 m tall), world
frame Z up, mm, feet (ankle joints) about 70 mm above the floor z = 0, facing +y before ``yaw``; the
subject's left side is at -x (its left hand on the viewer's right when seen from the front).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from structpose.skeleton import H36M

POSES: tuple[str, ...] = ("stand", "tpose", "walk", "left_arm_up", "squat")

_THIGH, _SHIN, _UPPER_ARM, _FOREARM = 450.0, 440.0, 280.0, 250.0


def _limb(start: np.ndarray, length: float, pitch_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """End of a limb of ``length`` hanging down from ``start``, swung forward (+y) by ``pitch_deg`` and
    outward along +x by ``roll_deg``."""
    p, r = np.deg2rad(pitch_deg), np.deg2rad(roll_deg)
    return start + length * np.array([np.sin(r), np.sin(p) * np.cos(r), -np.cos(p) * np.cos(r)])


def demo_pose(
    kind: str = "stand",
    yaw_deg: float = 0.0,
    position: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """A pose (17, 3) float64 mm of ``kind`` in :data:`POSES`, turned by ``yaw_deg`` about +z and moved to
    ``position`` (x, y) mm on the floor."""
    if kind not in POSES:
        raise ValueError(f"unknown demo pose {kind!r}; known: {', '.join(POSES)}")
    squat = kind == "squat"
    J = {name: np.zeros(3) for name in H36M.names}
    J["Hip"] = np.array([0.0, 0.0, 640.0 if squat else 950.0])
    # legs: (thigh pitch, knee bend) per side; right hip at +x
    legs = {
        "walk": {"R": (25.0, 10.0), "L": (-20.0, 30.0)},
        "squat": {"R": (70.0, 120.0), "L": (70.0, 120.0)},
    }
    for side, sx in (("R", 1.0), ("L", -1.0)):
        pitch, bend = legs.get(kind, {}).get(side, (0.0, 0.0))
        J[f"{side}Hip"] = J["Hip"] + [sx * 130.0, 0.0, -10.0]
        J[f"{side}Knee"] = _limb(J[f"{side}Hip"], _THIGH, pitch)
        J[f"{side}Foot"] = _limb(J[f"{side}Knee"], _SHIN, pitch - bend)
    lean = 25.0 if squat else 0.0
    J["Spine"] = _limb(J["Hip"], -230.0, -lean)
    J["Thorax"] = _limb(J["Spine"], -250.0, -lean)
    J["Neck/Nose"] = J["Thorax"] + [0.0, 60.0, 150.0]
    J["Head"] = J["Neck/Nose"] + [0.0, -25.0, 115.0]
    arms = {
        "tpose": {"R": (0.0, 90.0, 0.0), "L": (0.0, 90.0, 0.0)},
        "walk": {"R": (-25.0, 8.0, 20.0), "L": (25.0, 8.0, 35.0)},
        "left_arm_up": {"L": (0.0, 170.0, 0.0)},
        "squat": {"R": (80.0, 10.0, 10.0), "L": (80.0, 10.0, 10.0)},
    }
    for side, sx in (("R", 1.0), ("L", -1.0)):
        pitch, roll, bend = arms.get(kind, {}).get(side, (0.0, 8.0, 10.0))
        J[f"{side}Shoulder"] = J["Thorax"] + [sx * 155.0, 0.0, -15.0]
        J[f"{side}Elbow"] = _limb(J[f"{side}Shoulder"], _UPPER_ARM, pitch, sx * roll)
        J[f"{side}Wrist"] = _limb(J[f"{side}Elbow"], _FOREARM, pitch + bend, sx * roll)
    pose = np.stack([J[name] for name in H36M.names])
    c, s = np.cos(np.deg2rad(yaw_deg)), np.sin(np.deg2rad(yaw_deg))
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return pose @ Rz.T + [position[0], position[1], 0.0]


def contact_sheet(samples: list, path: str | Path, columns: int = 4) -> Path:
    """Save a grid of rendered samples with their 2D skeletons drawn over (left red, right blue)."""
    import matplotlib.pyplot as plt

    from structpose.viz import draw_skeleton_2d, save_figure

    rows = int(np.ceil(len(samples) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, sample in zip(axes.ravel(), samples, strict=False):
        ax.imshow(sample.image, extent=(0, sample.image.shape[1], sample.image.shape[0], 0))
        draw_skeleton_2d(ax, sample.joints2d, lw=0.8)
    return save_figure(fig, path)
