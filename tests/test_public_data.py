"""The public verbs for your own mocap: read_mocap (one loose BVH / ASF+AMC file) and render_poses (a store
rendered as the test split), on tiny files written here (no shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import structpose.data
from structpose.data import PoseImageDataset, read_mocap, render_poses
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.mapping import CMU_UNIT_MM, RIGS
from structpose.data.poselib import load_pose_library
from structpose.data.store import list_shards, open_store
from structpose.data.synth import SynthConfig, _frames, render_split_sample, synthesize
from structpose.errors import FormatError, InputError
from structpose.render import sample_camera
from structpose.skeleton import H36M

ROOT_CHANNELS = "Xposition Yposition Zposition Zrotation Yrotation Xrotation"

# A Bandai-Namco-named rig (cm, Y up, facing +Z, the figure's left at +X): name, parent, offset.
BANDAI_TREE = [
    ("Hips", "", (0, 0, 0)),
    ("Spine", "Hips", (0, 10, 0)),
    ("Chest", "Spine", (0, 15, 0)),
    ("Neck", "Chest", (0, 25, 0)),
    ("Head", "Neck", (0, 10, 0)),
    ("UpperArm_L", "Chest", (15, 20, 0)),
    ("LowerArm_L", "UpperArm_L", (28, 0, 0)),
    ("Hand_L", "LowerArm_L", (24, 0, 0)),
    ("UpperArm_R", "Chest", (-15, 20, 0)),
    ("LowerArm_R", "UpperArm_R", (-28, 0, 0)),
    ("Hand_R", "LowerArm_R", (-24, 0, 0)),
    ("UpperLeg_L", "Hips", (10, -5, 0)),
    ("LowerLeg_L", "UpperLeg_L", (0, -40, 0)),
    ("Foot_L", "LowerLeg_L", (0, -42, 0)),
    ("Toes_L", "Foot_L", (0, -3, 10)),
    ("UpperLeg_R", "Hips", (-10, -5, 0)),
    ("LowerLeg_R", "UpperLeg_R", (0, -40, 0)),
    ("Foot_R", "LowerLeg_R", (0, -42, 0)),
    ("Toes_R", "Foot_R", (0, -3, 10)),
]
HIP_CM = 94.0  # the toe joints 4 cm above y = 0: on the floor for the Bandai rig (contact_mm = 40)
STEP_CM = 2.0  # walking towards +Z by 2 cm a frame
FRAMES = 9


def bvh_text(tree: list[tuple[str, str, tuple]], frames: int = FRAMES) -> str:
    """BVH of ``tree``: root with 6 CMU channels (walking ``STEP_CM`` a frame at hip height ``HIP_CM``),
    every other joint 3 zero rotations; End Sites at the leaves; 120 Hz."""
    children: dict[str, list[str]] = {}
    for name, parent, _ in tree:
        children.setdefault(parent, []).append(name)
    offsets = {name: offset for name, _, offset in tree}
    lines: list[str] = ["HIERARCHY"]

    def emit(name: str, depth: int) -> None:
        pad = "  " * depth
        head = f"ROOT {name}" if depth == 0 else f"JOINT {name}"
        channels = f"CHANNELS 6 {ROOT_CHANNELS}" if depth == 0 else "CHANNELS 3 Zrotation Yrotation Xrotation"
        offset = " ".join(map(str, offsets[name]))
        lines.extend([pad + head, pad + "{", f"{pad}  OFFSET {offset}", f"{pad}  {channels}"])
        for child in children.get(name, []):
            emit(child, depth + 1)
        if name not in children:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 0 5", f"{pad}  }}"])
        lines.append(pad + "}")

    emit(tree[0][0], 0)
    zeros = " ".join(["0"] * 3 * (len(tree) - 1))
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0083333"]
    lines += [f"0 {HIP_CM} {STEP_CM * k} 0 0 0 {zeros}" for k in range(frames)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def bandai_bvh(tmp_path: Path) -> Path:
    path = tmp_path / "walk.bvh"
    path.write_text(bvh_text(BANDAI_TREE))
    return path


def _at(name: str) -> int:
    return H36M.index(name)


def test_a_bvh_file_reads_into_h36m_poses_in_mm_z_up(bandai_bvh: Path) -> None:
    raw = read_mocap(bandai_bvh, place=False)  # rig detected from the joint names
    assert raw.rig == "bandai" and raw.joints == tuple(H36M.names) and raw.path == bandai_bvh
    assert raw.poses.shape == (FRAMES, 17, 3) and raw.poses.dtype == np.float32 and len(raw) == FRAMES
    assert raw.fps == raw.source_fps == 120.0  # the header's 1 / 0.0083333 Hz, to 0.01 Hz
    assert "Toes_L" in raw.source_joints and "Hand_R_end" in raw.source_joints
    # source (x, y, z) cm, Y up -> world (x, -z, y) mm, Z up: the root walks along -y, 20 mm a frame
    k = np.arange(FRAMES)
    expected = {"Hip": (0, 890), "LHip": (100, 890), "RKnee": (-100, 490), "LFoot": (100, 70), "Thorax": (0, 1440),
                "LShoulder": (150, 1390), "RWrist": (-670, 1390)}  # fmt: skip
    for name, (x, z) in expected.items():
        want = np.stack([np.full(FRAMES, x), -STEP_CM * 10 * k, np.full(FRAMES, z)], axis=-1)
        np.testing.assert_allclose(raw.poses[:, _at(name)], want, atol=1e-3, err_msg=name)
    lengths = H36M.bone_lengths(raw.poses)
    for (a, b), mm in {("LHip", "LKnee"): 400, ("RKnee", "RFoot"): 420, ("LShoulder", "LElbow"): 280,
                       ("RElbow", "RWrist"): 240}.items():  # fmt: skip
        np.testing.assert_allclose(lengths[:, H36M.limbs.index((_at(a), _at(b)))], mm, rtol=1e-6)
    # placed as the pose library places a take: toes on the floor (already), mean Hip x, y at the origin
    placed = read_mocap(bandai_bvh)
    np.testing.assert_allclose(placed.poses, raw.poses - [0, -STEP_CM * 10 * k.mean(), 0], atol=1e-3)
    np.testing.assert_allclose(placed.poses[:, _at("Hip"), :2].mean(axis=0), 0, atol=1e-3)
    assert np.all(placed.poses[:, _at("Head"), 2] > placed.poses[:, _at("Thorax"), 2])
    np.testing.assert_array_equal(read_mocap(bandai_bvh, rig="bandai").poses, placed.poses)


def test_resampling_to_half_the_rate_keeps_every_other_frame(bandai_bvh: Path) -> None:
    full = read_mocap(bandai_bvh)
    half = read_mocap(bandai_bvh, fps=60)
    assert len(half) == (FRAMES - 1) // 2 + 1 and half.fps == 60.0 and half.source_fps == 120.0
    np.testing.assert_allclose(half.poses, full.poses[::2], atol=1e-3)  # linear: exact on the input frames
    assert len(read_mocap(bandai_bvh, fps=240)) == 2 * (FRAMES - 1) + 1
    slow = read_mocap(bandai_bvh, fps=60, source_fps=60)  # a wrong header corrected: every frame kept
    assert len(slow) == FRAMES and slow.source_fps == 60.0


def test_rigs_unknown_wrong_or_undetectable_are_refused(bandai_bvh: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown rig 'vicon'") as info:
        read_mocap(bandai_bvh, rig="vicon")
    for name in ("cmu", *RIGS):
        assert name in str(info.value)
    assert set(structpose.data.RIG_CHOICES) == {"cmu", *RIGS}
    with pytest.raises(MocapFormatError, match=r"rig 'cmu_daz' needs joints missing") as info:
        read_mocap(bandai_bvh, rig="cmu_daz")
    assert info.value.path == bandai_bvh
    with pytest.raises(InputError, match="no rig among 'cmu'"):
        read_mocap(bandai_bvh, rig="cmu")
    renamed = [(n.replace("Upper", "Top"), p.replace("Upper", "Top"), o) for n, p, o in BANDAI_TREE]
    odd = tmp_path / "odd.bvh"
    odd.write_text(bvh_text(renamed))
    with pytest.raises(InputError, match="no rig among the known rigs fits") as info:
        read_mocap(odd)
    assert str(odd) in str(info.value) and "bandai" in str(info.value) and "UpperArm_L" in str(info.value)
    with pytest.raises(InputError, match="positive"):
        read_mocap(bandai_bvh, fps=0)


@pytest.mark.parametrize("keep", [0.3, 0.9, -3])  # in the hierarchy, mid motion line, 3 motion lines short
def test_a_truncated_file_is_a_format_error_naming_it(bandai_bvh: Path, keep: float) -> None:
    text = bandai_bvh.read_text()
    if keep < 0:
        text = "\n".join(text.splitlines()[: int(keep)]) + "\n"
    else:
        text = text[: int(len(text) * keep)]
    bandai_bvh.write_text(text)
    with pytest.raises(FormatError) as info:
        read_mocap(bandai_bvh)
    assert info.value.path == bandai_bvh and str(bandai_bvh) in str(info.value)


# A CMU-like ASF (units of 1/0.45 inch, Y up): bone, parent, direction, length; no dof (a still body).
ASF_BONES = [
    ("lhipjoint", "root", (1, 0, 0), 1.5), ("lfemur", "lhipjoint", (0, -1, 0), 7), ("ltibia", "lfemur", (0, -1, 0), 7),
    ("lfoot", "ltibia", (0, 0, 1), 2), ("ltoes", "lfoot", (0, 0, 1), 1),
    ("rhipjoint", "root", (-1, 0, 0), 1.5), ("rfemur", "rhipjoint", (0, -1, 0), 7),
    ("rtibia", "rfemur", (0, -1, 0), 7), ("rfoot", "rtibia", (0, 0, 1), 2), ("rtoes", "rfoot", (0, 0, 1), 1),
    ("lowerback", "root", (0, 1, 0), 2), ("upperback", "lowerback", (0, 1, 0), 2),
    ("thorax", "upperback", (0, 1, 0), 2), ("lowerneck", "thorax", (0, 1, 0), 1.5),
    ("upperneck", "lowerneck", (0, 1, 0), 1.5), ("head", "upperneck", (0, 1, 0), 1.5),
    ("lclavicle", "thorax", (1, 0, 0), 3), ("lhumerus", "lclavicle", (1, 0, 0), 5),
    ("lradius", "lhumerus", (1, 0, 0), 4), ("lwrist", "lradius", (1, 0, 0), 1),
    ("rclavicle", "thorax", (-1, 0, 0), 3), ("rhumerus", "rclavicle", (-1, 0, 0), 5),
    ("rradius", "rhumerus", (-1, 0, 0), 4), ("rwrist", "rradius", (-1, 0, 0), 1),
]  # fmt: skip


def write_asf_amc(tmp_path: Path, frames: int = 4) -> tuple[Path, Path]:
    """A CMU-like skeleton and a motion moving its root 1 unit along X per frame, 17 units up."""
    bones = [f"  begin\n    id {i}\n    name {n}\n    direction {' '.join(map(str, d))}\n    length {length}\n"
             f"    axis 0 0 0 XYZ\n  end" for i, (n, _, d, length) in enumerate(ASF_BONES, start=1)]  # fmt: skip
    kids: dict[str, list[str]] = {}
    for name, parent, _, _ in ASF_BONES:
        kids.setdefault(parent, []).append(name)
    asf = tmp_path / "01.asf"
    asf.write_text("\n".join([":version 1.10", ":name T", ":units", "  length 0.45", "  angle deg", ":root",
                              "  order TX TY TZ RX RY RZ", "  axis XYZ", "  position 0 0 0", "  orientation 0 0 0",
                              ":bonedata", *bones, ":hierarchy", "  begin",
                              *(f"    {p} {' '.join(c)}" for p, c in kids.items()), "  end"]) + "\n")  # fmt: skip
    amc = tmp_path / "01_01.amc"
    amc.write_text(":FULLY-SPECIFIED\n:DEGREES\n" + "".join(f"{k + 1}\nroot {k} 17 0 0 0 0\n" for k in range(frames)))
    return asf, amc


def test_an_asf_with_its_amc_reads_with_the_cmu_rig(tmp_path: Path) -> None:
    asf, amc = write_asf_amc(tmp_path)
    poses = read_mocap(asf, amc=amc, place=False)
    assert poses.rig == "cmu_asf" and poses.source_fps == 120.0 and poses.path == amc
    assert poses.poses.shape == (4, 17, 3)
    assert read_mocap(asf, rig="cmu", amc=amc).rig == "cmu_asf"  # the family name finds the CMU layout
    unit = CMU_UNIT_MM
    np.testing.assert_allclose(poses.poses[:, _at("Hip")], [[k * unit, 0, 17 * unit] for k in range(4)], rtol=1e-6)
    np.testing.assert_allclose(poses.poses[:, _at("LKnee"), 2] - poses.poses[:, _at("LHip"), 2], -7 * unit, rtol=1e-6)
    np.testing.assert_allclose(poses.poses[:, _at("Thorax"), 2], (17 + 6.75) * unit, rtol=1e-6)  # mid-neck
    assert np.all(poses.poses[:, _at("LShoulder"), 0] > poses.poses[:, _at("RShoulder"), 0])  # left stays left
    with pytest.raises(InputError, match="pass its motion too"):
        read_mocap(asf)
    with pytest.raises(InputError, match="needs its skeleton"):
        read_mocap(amc)
    amc.write_text(amc.read_text()[:-15])  # the last frame cut short
    with pytest.raises(FormatError) as info:
        read_mocap(asf, amc=amc)
    assert info.value.path == amc


def test_render_poses_writes_a_store_of_camera_frame_root_relative_poses(bandai_bvh: Path, tmp_path: Path) -> None:
    take = read_mocap(bandai_bvh, fps=40)
    # capsule people: their label is the mocap pose itself (mesh people carry it onto a body: test_mesh.py)
    path = render_poses(take.poses, tmp_path / "own", size=32, subject="me", action="walking",
                        sequence=["walk"] * len(take), progress=False, renderer="capsule")  # fmt: skip
    assert path == tmp_path / "own" / "test.h5"
    test = PoseImageDataset(tmp_path / "own", "test")
    assert len(test) == len(take) == 3 and test.image_size == 32
    assert set(test.subject) == {"me"} and set(test.action) == {"walking"} and list(test.frame) == [0, 1, 2]
    for i, pose in enumerate(take.poses.astype(np.float64)):
        cam = sample_camera(np.random.default_rng([0, 1, i]), pose).world_to_camera(pose)  # test split: stream 1
        np.testing.assert_allclose(test.poses3d[i], cam - cam[0], atol=1e-2)
        np.testing.assert_allclose(test.root_cam[i], cam[0], rtol=1e-6)
    np.testing.assert_allclose(H36M.bone_lengths(test.poses3d), H36M.bone_lengths(take.poses), rtol=1e-4)
    item = test[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].float().std() > 5  # not a blank image
    assert np.all((test.joints2d >= 0) & (test.joints2d <= 32))
    attrs = test.shard_attrs[0]
    assert attrs["created_by"] == "structpose.data.render_poses" and attrs["split"] == "test"
    assert attrs["num_split_samples"] == 3 and '"seed": 0' in attrs["config"]
    sample = render_split_sample(take.poses[1], "test", 1, 0, 32, 0.2, "capsule")
    np.testing.assert_array_equal(test.images([1])[0], sample.image)
    again = render_poses(take.poses, tmp_path / "again", size=32, subject="me", action="walking",
                         sequence="walk", chunk=2, workers=2, progress=False, renderer="capsule")  # fmt: skip
    assert again.read_bytes() == path.read_bytes()  # processes and chunks change nothing


def test_render_poses_renders_exactly_as_synthesize_renders_the_test_split(tmp_path: Path) -> None:
    cfg = SynthConfig(size=32, train_images=1, test_images=3, unseen_images=0, chunk=2)
    synthesize(tmp_path / "synth", cfg, progress=False)
    lib = load_pose_library()
    frames = _frames(lib, "test", cfg.test_images, cfg.seed, cfg.protocol)
    render_poses(lib.poses[frames], tmp_path / "own", size=32, chunk=2, progress=False)
    with open_store(list_shards(tmp_path / "synth", "test")[0]) as a, open_store(tmp_path / "own" / "test.h5") as b:
        np.testing.assert_array_equal(a.images(slice(None)), b.images(slice(None)))
        for name in ("poses3d", "joints2d", "intrinsics", "boxes", "root_cam", "camera_id"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_render_poses_refuses_what_it_cannot_render(bandai_bvh: Path, tmp_path: Path) -> None:
    poses = read_mocap(bandai_bvh).poses[:2]
    with pytest.raises(InputError, match=r"shape \(N >= 1, 17, 3\)"):
        render_poses(poses[:, :16], tmp_path, progress=False)
    with pytest.raises(InputError, match="non-finite"):
        render_poses(np.where(np.arange(17)[:, None] == 3, np.nan, poses), tmp_path, progress=False)
    with pytest.raises(InputError, match="split 'val'"):
        render_poses(poses, tmp_path, split="val", progress=False)
    with pytest.raises(InputError, match="2 strings"):
        render_poses(poses, tmp_path, subject=["a", "b", "c"], progress=False)
    far = poses.copy()
    far[1, _at("Head")] += [0, 0, 50_000]  # a head 50 m up: outside any sampled camera's view
    with pytest.raises(InputError, match="cannot render sample 1 of split 'test'"):
        render_poses(far, tmp_path / "far", progress=False)
    assert not (tmp_path / "far" / "test.h5").exists() and not list((tmp_path / "far").glob("*.tmp"))
    (tmp_path / "sharded").mkdir()
    (tmp_path / "sharded" / "test-00000-of-00002.h5").write_bytes(b"")
    with pytest.raises(InputError, match="holds shards"):
        render_poses(poses, tmp_path / "sharded", progress=False)


def test_data_own_renders_a_users_file_from_the_command_line(bandai_bvh: Path, tmp_path: Path, capsys) -> None:
    from structpose.cli import main

    out = tmp_path / "own"
    assert main(["data", "own", str(bandai_bvh), "--out", str(out), "--size", "32", "--workers", "1"]) == 0
    test = PoseImageDataset(out, "test")
    assert len(test) == len(read_mocap(bandai_bvh, fps=20.0)) and set(test.action.astype(str)) == {"own"}
    assert "rig bandai" in capsys.readouterr().out
    assert main(["data", "own", str(tmp_path / "missing.bvh"), "--out", str(out)]) == 1  # one line, no traceback
    assert "missing.bvh" in capsys.readouterr().err
