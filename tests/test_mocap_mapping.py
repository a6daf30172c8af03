"""Mapping of a synthetic Daz-style CMU rig to H36M-17: units, axes, left/right, floor, T-pose, resampling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from structpose.data.mocap.bvh import BvhFile, BvhJoint
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.kinematics import MocapClip
from structpose.data.mocap.mapping import CMU_DAZ, CMU_UNIT_MM, RIGS, Rig, map_clip, place_on_floor
from structpose.data.mocap.resample import resample
from structpose.data.mocap.rotations import euler_to_matrix
from structpose.errors import InputError
from structpose.skeleton import H36M

ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Yrotation", "Xrotation")
ZXY = ("Zrotation", "Xrotation", "Yrotation")

# name, parent, offset (cm; Y up, the figure faces +Z, its left is +X as in CMU files)
DAZ_TREE = [
    ("hip", "", (0, 0, 0)),
    ("abdomen", "hip", (0, 20, 0)),
    ("chest", "abdomen", (0, 12, 0)),
    ("neck", "chest", (0, 22, 0)),
    ("head", "neck", (0, 7, 0)),
    ("lCollar", "chest", (3, 19, 0)),
    ("lShldr", "lCollar", (9, 0, 0)),
    ("lForeArm", "lShldr", (28, 0, 0)),
    ("lHand", "lForeArm", (24, 0, 0)),
    ("rCollar", "chest", (-3, 19, 0)),
    ("rShldr", "rCollar", (-9, 0, 0)),
    ("rForeArm", "rShldr", (-28, 0, 0)),
    ("rHand", "rForeArm", (-24, 0, 0)),
    ("lThigh", "hip", (9, -2, 0)),
    ("lShin", "lThigh", (0, -40, 0)),
    ("lFoot", "lShin", (0, -42, 0)),
    ("lFoot_end", "lFoot", (0, -4, 12)),
    ("rThigh", "hip", (-9, -2, 0)),
    ("rShin", "rThigh", (0, -40, 0)),
    ("rFoot", "rShin", (0, -42, 0)),
    ("rFoot_end", "rFoot", (0, -4, 12)),
]
HIP_HEIGHT_CM = 88.0  # puts the toe End Sites exactly on y = 0


def daz_clip(num_frames: int = 13, step_cm: float = 0.5) -> MocapClip:
    """A Daz-friendly-style take: frame 0 an added T-pose (1 m too high, to see it dropped), then a walk
    towards +Z of ``step_cm`` per frame with still limbs and a slowly turning head (rotation about X)."""
    names = [n for n, _, _ in DAZ_TREE]
    joints = [
        BvhJoint(n, names.index(p) if p else -1, tuple(map(float, o)), () if n.endswith("_end") else ZXY)
        for n, p, o in DAZ_TREE
    ]
    joints[0] = BvhJoint("hip", -1, (0.0, 0.0, 0.0), ROOT_CHANNELS)
    motion = np.zeros((num_frames, sum(len(j.channels) for j in joints)))
    motion[:, 1] = HIP_HEIGHT_CM
    motion[:, 2] = step_cm * np.arange(num_frames)
    motion[0, 1] += 100.0
    head = 6 + 3 * (names.index("head") - 1)
    motion[:, head + 1] = np.linspace(0, 10, num_frames)  # head X rotation
    return BvhFile(Path("synthetic.bvh"), joints, motion, 1 / 120).to_clip()


def test_units_and_bone_lengths() -> None:
    poses, _ = map_clip(daz_clip(), CMU_DAZ)
    lengths = H36M.bone_lengths(poses)
    limbs = H36M.limbs
    np.testing.assert_allclose(lengths[:, limbs.index((1, 2))], 400.0)  # thigh 40 cm
    np.testing.assert_allclose(lengths[:, limbs.index((5, 6))], 420.0)  # shin 42 cm
    np.testing.assert_allclose(lengths[:, limbs.index((12, 13))], 240.0)  # forearm
    np.testing.assert_allclose(lengths[:, limbs.index((0, 4))], 90.0)  # Hip = mid-point of the thigh roots
    assert CMU_UNIT_MM == pytest.approx(56.444, abs=1e-3)


def test_first_frame_dropped_and_z_up() -> None:
    clip = daz_clip()
    poses, contacts = map_clip(clip, CMU_DAZ)
    assert poses.shape == (clip.num_frames - 1, 17, 3)
    assert contacts.shape == (clip.num_frames - 1, 2, 3)
    # Y-up source -> Z-up world: the hip is at 86 cm (thigh roots) and the T-pose's +1 m is gone
    np.testing.assert_allclose(poses[:, H36M.index("Hip"), 2], 860.0)
    assert np.all(poses[:, H36M.index("Head"), 2] > poses[:, H36M.index("Thorax"), 2])


def test_left_is_left() -> None:
    poses, _ = map_clip(daz_clip(), CMU_DAZ)
    velocity = np.diff(poses[:, H36M.root], axis=0).mean(axis=0)
    left = poses[:, H36M.index("LHip")] - poses[:, H36M.index("RHip")]
    forward = np.cross(left, [0.0, 0.0, 1.0])  # the subject's left x up = facing direction
    assert np.all(forward @ velocity > 0)
    for lj, rj in zip(H36M.left, H36M.right, strict=True):  # every left joint is on the left side
        assert np.all((poses[:, lj] - poses[:, rj]) @ np.cross([0.0, 0.0, 1.0], velocity) > 0)


def test_floor_and_centre() -> None:
    poses = place_on_floor(*map_clip(daz_clip(), CMU_DAZ))
    # toes touch the floor; the rig's toe End Site sits 20 mm above it, the ankle 40 mm higher
    np.testing.assert_allclose(poses[:, H36M.index("LFoot"), 2], 60.0)
    np.testing.assert_allclose(poses[:, H36M.root, :2].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.diff(poses[:, H36M.root], axis=0), [[0.0, -5.0, 0.0]] * 11, atol=1e-9)


def test_new_rig_is_one_dict_away() -> None:
    joints = dict.fromkeys(H36M.names, "hip") | {"Head": {"head": 2.0, "neck": -1.0}, "Spine": "brow"}
    rig = Rig("toy", joints, mm_per_unit=10.0, contacts=("lFoot_end",), sites={"brow": ("head", (0, 5, 10))})
    clip = daz_clip()
    poses, _ = map_clip(clip, rig)
    head, neck = clip.positions[:, clip.index("head")], clip.positions[:, clip.index("neck")]
    expected = (2 * head - neck) @ rig.to_world.T * 10.0
    np.testing.assert_allclose(poses[:, H36M.index("Head")], expected, atol=1e-9)
    brow = clip.site("head", (0, 5, 10)) @ rig.to_world.T * 10.0
    np.testing.assert_allclose(poses[:, H36M.index("Spine")], brow, atol=1e-9)
    relative = clip.site("head", (0, 5, 10)) - head
    assert not np.allclose(relative[0], relative[-1])  # the site turns with the head
    with pytest.raises(InputError, match="sum to 1"):
        Rig("bad", joints | {"Hip": {"lThigh": 0.5, "rThigh": 0.6}}, 10.0, ())
    with pytest.raises(InputError, match="all 17"):
        Rig("bad", {"Hip": "hip"}, 10.0, ())


def test_restore_moves_the_subtree() -> None:
    clip = daz_clip()
    rig = dataclasses.replace(CMU_DAZ, name="restored", restore=(("chest", (0, 5, 0)),))
    before, _ = map_clip(clip, CMU_DAZ)
    after, _ = map_clip(clip, rig)
    shift = after - before
    for name in ("Thorax", "Head", "LShoulder", "RWrist"):
        np.testing.assert_allclose(shift[:, H36M.index(name)], [[0, 0, 50.0]] * len(shift), atol=1e-9)
    for name in ("Hip", "LKnee", "RFoot"):
        np.testing.assert_allclose(shift[:, H36M.index(name)], 0.0, atol=1e-9)


def test_wrong_rig_names_missing_joints() -> None:
    with pytest.raises(MocapFormatError, match=r"rig 'bandai' needs joints missing from the file: \['Chest', "):
        map_clip(daz_clip(), RIGS["bandai"])


def test_every_rig_maps_all_joints() -> None:
    assert {"cmu_daz", "cmu_max", "cmu_asf", "cmu_amc2bvh", "bandai"} <= set(RIGS)
    for rig in RIGS.values():
        np.testing.assert_allclose(rig.to_world @ [0, 1, 0], [0, 0, 1])  # source up -> world Z
        assert np.linalg.det(rig.to_world) == pytest.approx(1.0)  # proper rotation: no mirroring


def test_resample() -> None:
    t = np.arange(121, dtype=np.float64) / 120.0
    ramp = np.stack([t, 2 * t, -t], axis=-1)[:, None, :]  # (121, 1, 3), linear in time
    out = resample(ramp, 120.0, 20.0)
    assert out.shape == (21, 1, 3)
    np.testing.assert_allclose(out[:, 0, 0], np.arange(21) / 20.0, atol=1e-12)
    np.testing.assert_allclose(resample(ramp, 120.0, 120.0), ramp)
    up = resample(ramp[:3], 120.0, 240.0)  # interpolates between frames
    np.testing.assert_allclose(up[:, 0, 1], 2 * np.arange(5) / 240.0, atol=1e-12)
    assert resample(ramp, 60.0, 20.0).shape[0] == 41


def test_one_frame_take_with_an_added_t_pose_names_the_file() -> None:
    """A Daz-style rig drops the added T-pose frame 0: a 1-frame take has no motion left (was an IndexError)."""
    with pytest.raises(MocapFormatError, match="only the added T-pose") as info:
        map_clip(daz_clip(num_frames=1), CMU_DAZ)
    assert info.value.path == Path("synthetic.bvh")
    poses, contacts = map_clip(daz_clip(num_frames=2), CMU_DAZ)
    assert poses.shape == (1, 17, 3) and np.isfinite(place_on_floor(poses, contacts)).all()


def test_place_on_floor_without_frames() -> None:
    with pytest.raises(InputError, match="no frames"):
        place_on_floor(np.zeros((0, 17, 3)), np.zeros((0, 2, 3)))


def test_resample_one_and_zero_frames() -> None:
    one = np.ones((1, 17, 3))
    np.testing.assert_array_equal(resample(one, 120.0, 20.0), one)
    with pytest.raises(InputError, match="no frames"):
        resample(np.zeros((0, 17, 3)), 120.0, 20.0)


def test_euler_angle_count_must_match_order() -> None:
    with pytest.raises(InputError, match="3 angles expected for order 'ZYX'"):
        euler_to_matrix(np.zeros((4, 2)), "ZYX")
    with pytest.raises(InputError, match="order 'ZYW'"):
        euler_to_matrix(np.zeros(3), "ZYW")
