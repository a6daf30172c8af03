"""BVH reader: forward kinematics against hand-computed positions, rotation orders, errors, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from structpose.data.mocap.bvh import BvhFile, BvhJoint, load_bvh, read_bvh, write_bvh
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.rotations import euler_to_matrix, expmap_to_matrix

CMU_ROOT = "Xposition Yposition Zposition Zrotation Yrotation Xrotation"


def chain_bvh(joint_channels: str, frames: list[str], declared: int | None = None) -> str:
    """ROOT ``root`` (6 CMU channels) -> JOINT ``a`` at (0, 10, 0) with ``joint_channels`` -> End Site (0, 5, 0)."""
    count = len(joint_channels.split())
    return (
        f"""HIERARCHY
ROOT root
{{
  OFFSET 0 0 0
  CHANNELS 6 {CMU_ROOT}
  JOINT a
  {{
    OFFSET 0 10 0
    CHANNELS {count} {joint_channels}
    End Site
    {{
      OFFSET 0 5 0
    }}
  }}
}}
MOTION
Frames: {len(frames) if declared is None else declared}
Frame Time: 0.0083333
"""
        + "\n".join(frames)
        + "\n"
    )


def write(tmp_path: Path, text: str, name: str = "take.bvh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fk_by_hand(tmp_path: Path) -> None:
    frames = ["0 0 0 0 0 0 0 0 0", "1 2 3 90 0 0 0 90 0"]  # root pos, root Z Y X, joint Z X Y
    clip = load_bvh(write(tmp_path, chain_bvh("Zrotation Xrotation Yrotation", frames)))
    assert clip.names == ("root", "a", "a_end")
    assert clip.parents == (-1, 0, 1)
    assert clip.fps == pytest.approx(120.0, rel=1e-4)
    np.testing.assert_allclose(clip.positions[0], [[0, 0, 0], [0, 10, 0], [0, 15, 0]], atol=1e-9)
    # frame 1: Rz(90) takes the offset (0, 10, 0) to (-10, 0, 0); the joint's Rx(90) takes (0, 5, 0) to (0, 0, 5)
    np.testing.assert_allclose(clip.positions[1], [[1, 2, 3], [-9, 2, 3], [-9, 2, 8]], atol=1e-9)


@pytest.mark.parametrize(
    ("channels", "expected_end"),
    [
        # R = Rx(90) @ Ry(90): Ry leaves (0, 5, 0) alone, Rx(90) takes it to (0, 0, 5)
        ("Zrotation Xrotation Yrotation", [0, 10, 5]),
        # R = Ry(90) @ Rx(90): Rx(90) gives (0, 0, 5), Ry(90) takes that to (5, 0, 0)
        ("Zrotation Yrotation Xrotation", [5, 10, 0]),
    ],
)
def test_rotation_order_matters(tmp_path: Path, channels: str, expected_end: list[float]) -> None:
    clip = load_bvh(write(tmp_path, chain_bvh(channels, ["0 0 0 0 0 0 0 90 90"])))
    np.testing.assert_allclose(clip.positions[0, 2], expected_end, atol=1e-9)


def test_six_channel_joints_replace_offsets(tmp_path: Path) -> None:
    channels = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"  # Bandai-Namco layout
    frames = ["0 0 0 0 0 0 0 20 0 0 0 0", "5 0 0 0 0 0 0 10 0 0 0 -90"]
    clip = load_bvh(write(tmp_path, chain_bvh(channels, frames)))
    np.testing.assert_allclose(clip.positions[0], [[0, 0, 0], [0, 20, 0], [0, 25, 0]], atol=1e-9)
    # Ry(-90) leaves the End Site offset (0, 5, 0) unchanged
    np.testing.assert_allclose(clip.positions[1], [[5, 0, 0], [5, 10, 0], [5, 15, 0]], atol=1e-9)


def test_orientations_are_rotations(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [" ".join(f"{v:.4f}" for v in rng.uniform(-180, 180, 9)) for _ in range(5)]
    clip = load_bvh(write(tmp_path, chain_bvh("Zrotation Xrotation Yrotation", frames)))
    eye = np.broadcast_to(np.eye(3), clip.orientations.shape)
    np.testing.assert_allclose(clip.orientations @ np.swapaxes(clip.orientations, -1, -2), eye, atol=1e-9)
    bone = np.linalg.norm(clip.positions[:, 2] - clip.positions[:, 1], axis=-1)
    np.testing.assert_allclose(bone, 5.0)


def test_euler_and_expmap_agree() -> None:
    rng = np.random.default_rng(1)
    angles = rng.uniform(-180, 180, size=(7, 3))
    zyx = euler_to_matrix(angles, "ZYX")
    manual = (
        euler_to_matrix(angles[:, :1], "Z") @ euler_to_matrix(angles[:, 1:2], "Y") @ euler_to_matrix(angles[:, 2:], "X")
    )
    np.testing.assert_allclose(zyx, manual, atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix([90.0], "Z") @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    axis_angle = np.array([[0, 0, np.pi / 2], [0, 0, 0], [1e-12, 0, 0]])
    r = expmap_to_matrix(axis_angle)
    np.testing.assert_allclose(r[0], euler_to_matrix([90.0], "Z"), atol=1e-12)
    np.testing.assert_allclose(r[1:], np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-9)
    rotvec = rng.normal(size=(5, 3))
    r = expmap_to_matrix(rotvec)
    np.testing.assert_allclose(np.einsum("fab,fb->fa", r, rotvec), rotvec, atol=1e-12)  # axis is fixed
    np.testing.assert_allclose(np.linalg.det(r), 1.0)


@pytest.mark.parametrize(
    ("frames", "declared", "line", "message"),
    [
        (["0 0 0 0 0 0 0 0 0", "0 0 0 0 0 0 0 0 0"], 3, 17, "Frames: 3"),  # truncated motion block
        (["0 0 0 0 0 0 0 0 0", "0 0 0 0 0 0 0 0"], None, 20, "8 values"),  # short line
        (["0 0 0 0 0 0 0 0 0 0", "0 0 0 0 0 0 0 0 0"], None, 19, "10 values"),  # long line
        (["0 0 0 0 0 0 0 0 0", "0 0 0 nan 0 0 0 0 0"], None, 20, "NaN"),
        (["0 0 0 0 0 0 0 0 0", "0 0 0 x 0 0 0 0 0"], None, 20, "non-numeric"),
    ],
)
def test_bad_motion_blocks_name_file_and_line(
    tmp_path: Path, frames: list[str], declared: int | None, line: int, message: str
) -> None:
    path = write(tmp_path, chain_bvh("Zrotation Xrotation Yrotation", frames, declared), "broken.bvh")
    with pytest.raises(MocapFormatError, match=message) as info:
        read_bvh(path)
    assert info.value.line == line
    assert f"broken.bvh:{line}:" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_hierarchy(tmp_path: Path) -> None:
    text = chain_bvh("Zrotation Xrotation Yrotation", ["0 0 0 0 0 0 0 0 0"]).replace("OFFSET 0 10 0", "OFFSET 0 ten 0")
    with pytest.raises(MocapFormatError, match="expected a number") as info:
        read_bvh(write(tmp_path, text))
    assert info.value.line == 8
    with pytest.raises(MocapFormatError, match="no MOTION"):
        read_bvh(write(tmp_path, "HIERARCHY\nROOT a\n{\n}\n"))


def test_write_read_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    joints = [
        BvhJoint("hips", -1, (0.0, 90.0, 0.0), tuple(CMU_ROOT.split())),
        BvhJoint("leg", 0, (10.0, -5.0, 0.25), ("Zrotation", "Xrotation", "Yrotation")),
        BvhJoint("leg_end", 1, (0.0, -40.0, 0.0), ()),
        BvhJoint("spine", 0, (0.0, 12.5, -1.0), ("Xrotation",)),
    ]
    original = BvhFile(tmp_path / "a.bvh", joints, rng.normal(size=(4, 10)), 1 / 30)
    copy = read_bvh(write_bvh(tmp_path / "b.bvh", original))
    assert copy.joints == joints
    np.testing.assert_array_equal(copy.motion, original.motion)
    assert copy.frame_time == original.frame_time
    np.testing.assert_allclose(copy.to_clip().positions, original.to_clip().positions)


# --- regressions: short takes, encodings, header values, nesting, overflow ---------------------------------------
ZXY = "Zrotation Xrotation Yrotation"


def test_zero_frames_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, chain_bvh(ZXY, [], 0), "empty.bvh")
    with pytest.raises(MocapFormatError, match="no motion frames") as info:
        read_bvh(path)
    assert info.value.path == path and info.value.line == 17
    assert str(info.value).startswith(f"{path}:17: ")


def test_one_frame_reads(tmp_path: Path) -> None:
    clip = load_bvh(write(tmp_path, chain_bvh(ZXY, ["1 2 3 0 0 0 0 0 0"])))
    assert clip.positions.shape == (1, 3, 3)
    np.testing.assert_allclose(clip.positions[0, 2], [1, 17, 3])


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.bvh"
    path.write_bytes(chain_bvh(ZXY, ["0 0 0 0 0 0 0 0 0"]).replace("JOINT a", "JOINT caf\u00e9").encode("latin-1"))
    with pytest.raises(MocapFormatError, match="not UTF-8") as info:
        read_bvh(path)
    assert info.value.line == 6 and str(info.value).startswith(f"{path}:6: ")


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("Frames: 1", "Frames: nan", 17, "bad Frames: value 'nan'"),
        ("Frames: 1", "Frames: 1e999", 17, "bad Frames: value '1e999'"),
        ("Frames: 1", "Frames: -1", 17, "bad Frames: value '-1'"),
        ("Frame Time: 0.0083333", "Frame Time: 4.9e-324", 18, "bad Frame Time"),
        ("CHANNELS 3", "CHANNELS \u00b2", 9, "bad channel count"),
        ("OFFSET 0 5 0", "OFFSET 0 inf 0", 12, "non-finite number 'inf'"),
        ("OFFSET 0 10 0", "OFFSET nan 10 0", 8, "non-finite number 'nan'"),
    ],
)
def test_bad_header_values_name_file_and_line(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    text = chain_bvh(ZXY, ["0 0 0 0 0 0 0 0 0"])
    assert old in text
    path = write(tmp_path, text.replace(old, new), "header.bvh")
    with pytest.raises(MocapFormatError, match=message) as info:
        read_bvh(path)
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}: ")


def test_deep_nesting_is_a_format_error(tmp_path: Path) -> None:
    depth = 3000
    text = "HIERARCHY\nROOT r\n{\nOFFSET 0 0 0\nCHANNELS 1 Xrotation\n"
    text += "JOINT j\n{\nOFFSET 0 1 0\n" * depth + "}\n" * depth + "}\nMOTION\nFrames: 1\nFrame Time: 0.01\n0\n"
    with pytest.raises(MocapFormatError, match="nested more than"):
        read_bvh(write(tmp_path, text, "deep.bvh"))


def test_overflowing_positions_are_a_format_error(tmp_path: Path) -> None:
    text = chain_bvh(ZXY, ["1e308 0 0 0 0 0 0 0 0"]).replace("OFFSET 0 10 0", "OFFSET 1e308 10 0")
    path = write(tmp_path, text, "huge.bvh")
    with pytest.raises(MocapFormatError, match="not finite") as info:
        load_bvh(path)
    assert info.value.path == path
