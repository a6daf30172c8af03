"""Pose library: deterministic build on a small fixture tree, splits, loader round trip, the shipped file."""

from __future__ import annotations

import importlib.resources
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from structpose.data.mocap.actions import h36m_action
from structpose.data.mocap.bvh import BvhFile, BvhJoint, write_bvh
from structpose.data.mocap.catalog import Take, discover, true_rate
from structpose.data.mocap.convert import take_to_h36m
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.npz import write_npz
from structpose.data.poselib import (
    DEFAULT_POSELIB_VERSION,
    POSELIB_ASSET,
    PoseLibrary,
    build_pose_library,
    load_pose_library,
    split_description,
    summary,
)
from structpose.errors import FormatError, InputError
from structpose.skeleton import H36M

# --- a CMU-like ASF/AMC pair -------------------------------------------------------------------------------
# name, parent, direction (unnormalised), length (CMU units), dof; mirrored for the right side.
LEFT_BONES = [
    ("lhipjoint", "root", (0.6, -0.75, 0.2), 2.5, ""),
    ("lfemur", "lhipjoint", (0.34, -0.94, 0.0), 7.4, "rx ry rz"),
    ("ltibia", "lfemur", (0.34, -0.94, 0.0), 7.9, "rx"),
    ("lfoot", "ltibia", (0.0, -0.2, 0.98), 2.3, "rx rz"),
    ("ltoes", "lfoot", (0.0, 0.0, 1.0), 1.1, "rx"),
    ("lclavicle", "thorax", (1.0, 0.2, 0.0), 3.5, "ry rz"),
    ("lhumerus", "lclavicle", (1.0, 0.0, 0.0), 5.0, "rx ry rz"),
    ("lradius", "lhumerus", (1.0, 0.0, 0.0), 3.7, "rx"),
    ("lwrist", "lradius", (1.0, 0.0, 0.0), 1.0, "ry"),
]
SPINE_BONES = [
    (name, parent, (0.0, 1.0, 0.0), 2.0 if "back" in name or name == "thorax" else 1.7, "rx ry rz")
    for name, parent in [
        ("lowerback", "root"), ("upperback", "lowerback"), ("thorax", "upperback"),
        ("lowerneck", "thorax"), ("upperneck", "lowerneck"), ("head", "upperneck"),
    ]
]  # fmt: skip
BONES = (
    LEFT_BONES[:5]
    + [
        ("r" + n[1:], "root" if p == "root" else "r" + p[1:], (-d[0], d[1], d[2]), ln, f)
        for n, p, d, ln, f in LEFT_BONES[:5]
    ]
    + SPINE_BONES
    + LEFT_BONES[5:]
    + [
        ("r" + n[1:], p if p == "thorax" else "r" + p[1:], (-d[0], d[1], d[2]), ln, f)
        for n, p, d, ln, f in LEFT_BONES[5:]
    ]
)


def asf_text() -> str:
    lines = [":version 1.10", ":name VICON", ":units", "  mass 1.0", "  length 0.45", "  angle deg", ":root"]
    lines += ["   order TX TY TZ RX RY RZ", "   axis XYZ", "   position 0 0 0", "   orientation 0 0 0", ":bonedata"]
    for k, (name, _, direction, length, dof) in enumerate(BONES, start=1):
        unit = np.asarray(direction) / np.linalg.norm(direction)
        lines += ["  begin", f"     id {k}", f"     name {name}", f"     direction {' '.join(map(str, unit))}"]
        lines += [f"     length {length}", "     axis 0 0 0 XYZ"] + ([f"    dof {dof}"] if dof else []) + ["  end"]
    children: dict[str, list[str]] = {}
    for name, parent, *_ in BONES:
        children.setdefault(parent, []).append(name)
    lines += [":hierarchy", "  begin"] + [f"    {p} {' '.join(c)}" for p, c in children.items()] + ["  end"]
    return "\n".join(lines) + "\n"


def amc_text(num_frames: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = [":FULLY-SPECIFIED", ":DEGREES"]
    for f in range(num_frames):
        lines += [str(f + 1), f"root 0 17 {0.05 * f:.4f} {' '.join(f'{v:.3f}' for v in rng.uniform(-3, 3, 3))}"]
        for name, _, _, _, dof in BONES:
            if dof:
                lines.append(f"{name} {' '.join(f'{v:.3f}' for v in rng.uniform(-10, 10, len(dof.split())))}")
    return "\n".join(lines) + "\n"


# --- Bandai-Namco-like BVH (every joint 6 channels, Z X Y) -----------------------------------------------------
SIX = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
BANDAI_LEFT = [
    ("Shoulder_L", "Chest", (5, 13, 0)), ("UpperArm_L", "Shoulder_L", (5, 0, 0)),
    ("LowerArm_L", "UpperArm_L", (24, 0, 0)), ("Hand_L", "LowerArm_L", (22, 0, 0)),
    ("UpperLeg_L", "Hips", (7, -4, 0)), ("LowerLeg_L", "UpperLeg_L", (0, -40, 0)),
    ("Foot_L", "LowerLeg_L", (0, -41, 0)), ("Toes_L", "Foot_L", (0, -4, 10)),
]  # fmt: skip
BANDAI_TREE = (
    [("joint_Root", "", (0, 0, 0)), ("Hips", "joint_Root", (0, 90, 0)), ("Spine", "Hips", (0, 15, 0))]
    + [("Chest", "Spine", (0, 9, 0)), ("Neck", "Chest", (0, 16, 0)), ("Head", "Neck", (0, 6.5, 0))]
    + BANDAI_LEFT
    + [(n[:-1] + "R", p[:-1] + "R" if p.endswith("_L") else p, (-o[0], o[1], o[2])) for n, p, o in BANDAI_LEFT]
)


def bandai_bvh(path: Path, num_frames: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = [n for n, _, _ in BANDAI_TREE]
    joints = [BvhJoint(n, names.index(p) if p else -1, tuple(map(float, o)), SIX) for n, p, o in BANDAI_TREE]
    offsets = np.array([j.offset for j in joints])
    motion = np.zeros((num_frames, len(joints), 6))
    motion[..., :3] = offsets
    motion[..., 3:] = rng.uniform(-5, 5, size=(num_frames, len(joints), 3))
    motion[:, 1, 2] = np.linspace(0, 60, num_frames)  # Hips walk along +Z
    write_bvh(path, BvhFile(path, joints, motion.reshape(num_frames, 6 * len(joints)), 1 / 30))


def make_tree(root: Path) -> Path:
    """A miniature copy of the shared data layout: CMU subjects 35 (train) and 49 (test), Bandai takes."""
    manifest = ["path\tframes\tfps_in_header\tfps_true\tjoints_in_header\tsource_subject_trial\tlabel"]
    for subject, trials in (("35", ("35_01",)), ("49", ("49_18", "49_19"))):
        folder = root / "cmu_asf_amc_gpmat" / subject
        folder.mkdir(parents=True)
        (folder / f"{subject}.asf").write_text(asf_text())
        for k, trial in enumerate(trials):
            (folder / f"{trial}.amc").write_text(amc_text(61, seed=int(subject) + k))
            label = "walk" if subject == "35" else "balance on one leg"
            manifest.append(f"cmu_asf_amc_gpmat/{subject}/{trial}.amc\t61\t\t120.0\t\tCMU {trial}\t{label}")
    (root / "MANIFEST.tsv").write_text("\n".join(manifest) + "\n")
    d1 = root / "bandai_namco_motion" / "dataset-1"
    (d1 / "data").mkdir(parents=True)
    (d1 / "cfg").mkdir()
    (d1 / "cfg" / "content_label.txt").write_text("dataset-1_walk\ndataset-1_bow\n")
    (d1 / "cfg" / "style_label.txt").write_text("dataset-1_normal\ndataset-1_old\ndataset-1_sad\n")
    for k, (content, style) in enumerate([(0, 0), (0, 1), (1, 2), (1, 0)]):
        stem = f"dataset-1_{['walk', 'bow'][content]}_{['normal', 'old', 'sad'][style]}_001"
        bandai_bvh(d1 / "data" / f"{stem}.bvh", 31, seed=k)
        (d1 / "data" / f"{stem}.json").write_text(json.dumps({"content": content, "style": style}))
    d2 = root / "bandai_namco_motion" / "dataset-2" / "data"
    d2.mkdir(parents=True)
    for k, stem in enumerate(["dataset-2_run_elderly_001", "dataset-2_wave-left-hand_normal_001"]):
        bandai_bvh(d2 / f"{stem}.bvh", 16, seed=10 + k)  # no JSON: labels from the file name
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("data"))


def test_catalog(tree: Path) -> None:
    takes = {t.name: t for t in discover(tree)}
    assert len(takes) == 9
    assert takes["cmu:49_18"].subject == "cmu:49" and takes["cmu:49_18"].rig == "cmu_asf"
    assert takes["bandai:dataset-1_bow_sad_001"].label == "bow (style: sad)"
    assert takes["bandai:dataset-2_run_elderly_001"].label == "run (style: elderly)"
    assert takes["bandai:dataset-2_run_elderly_001"].subject == "bandai:dataset-2"
    assert [t.source for t in discover(tree, ("cmu",))] == ["cmu"] * 3
    assert true_rate("cmu_bvh_przestr/16/16_01.bvh") == 120.0
    assert true_rate("cmu_bvh_acrnn/salsa/16.bvh") == 60.0
    assert true_rate("cmu_bvh_przestr/02/02_01.bvh") is None


def test_actions() -> None:
    assert h36m_action("walk (style: old)") == "Walking"
    assert h36m_action("walk-turn-left (style: normal)") == "Walking"
    assert h36m_action("Michael Jackson styled: start walk stop") == "Walking"
    assert h36m_action("bow (style: sad)") == "Greeting"
    assert h36m_action("wave-left-hand (style: normal)") == "Greeting"
    assert h36m_action("guide (style: proud)") == "Directions"
    assert h36m_action("directing traffic") == "Directions"
    assert h36m_action("run (style: elderly)") == "run"
    assert h36m_action("salsa dance") == "salsa dance"


def test_build_is_deterministic(tree: Path, tmp_path: Path) -> None:
    build = build_pose_library(tree, tmp_path / "a" / "lib.npz", progress=False)
    assert build.left_out == () and build.path == tmp_path / "a" / "lib.npz" and build.sequences == 9
    first, second = build.path, build_pose_library(tree, tmp_path / "b" / "lib.npz", progress=False).path
    assert first.read_bytes() == second.read_bytes()
    assert first.with_suffix(".txt").read_text() == second.with_suffix(".txt").read_text()
    assert "NSF EIA-0196217" in first.with_suffix(".txt").read_text()


def test_round_trip_and_splits(tree: Path, tmp_path: Path) -> None:
    path = build_pose_library(tree, tmp_path / "lib.npz", fps=20.0, progress=False).path
    library = load_pose_library(path)
    names = [s["name"] for s in library.sequences]
    assert len(names) == 9 and library.fps == 20.0
    assert library.poses.dtype == np.float32 and library.poses.shape == (len(library), 17, 3)
    # 61 frames at 120 Hz -> 11 at 20 Hz; 31 at 30 Hz -> 21; 16 at 30 Hz -> 11
    expected = {"cmu": 11, "dataset-1": 21, "dataset-2": 11}
    for i, seq in enumerate(library.sequences):
        frames = library.frame[library.sequence == i]
        key = seq["source"] if seq["source"] == "cmu" else seq["subject"].split(":")[1]
        np.testing.assert_array_equal(frames, np.arange(expected[key]))
        assert {"name", "source", "subject", "action", "label", "split", "license", "path"} <= set(seq)
    take = next(t for t in discover(tree) if t.name == "cmu:35_01")
    poses, rate = take_to_h36m(tree, take, 20.0)
    assert rate == 120.0
    np.testing.assert_array_equal(library.poses[library.sequence == names.index("cmu:35_01")], np.round(poses))
    split, subject = library.column("split"), library.column("subject")
    cmu = library.column("source") == "cmu"
    assert set(subject[cmu & (split == "test")]) == {"cmu:49"}
    assert not set(subject[cmu & (split == "test")]) & set(subject[cmu & (split == "train")])
    styles = {s["name"]: (s["style"], s["split"]) for s in library.sequences if s["source"] == "bandai"}
    assert {st for st, sp in styles.values() if sp == "test"} == {"old", "sad", "elderly"}
    assert library.column("action")[library.sequence == names.index("bandai:dataset-1_bow_sad_001")][0] == "Greeting"
    assert "cmu:49" in split_description() and "sad" in split_description()
    assert "frames at 20 Hz" in summary(library)


def test_select_and_source_filter(tree: Path, tmp_path: Path) -> None:
    path = build_pose_library(tree, tmp_path / "lib.npz", progress=False).path
    library = load_pose_library(path)
    cmu = load_pose_library(path, sources=("cmu",))
    assert len(cmu) == int((library.column("source") == "cmu").sum())
    assert {s["source"] for s in cmu.sequences} == {"cmu"} and len(cmu.sequences) == 3
    assert cmu.sequence.max() == 2
    test = library.select(library.column("split") == "test")
    assert set(test.column("split")) == {"test"}
    np.testing.assert_array_equal(test.poses, library.poses[library.column("split") == "test"])
    assert [s["name"] for s in test.sequences] == sorted({s["name"] for s in library.sequences if s["split"] == "test"})


# --- short takes, where the library goes, takes that cannot be read ---------------------------------------------
def bandai_take(path: str) -> Take:
    return Take(
        name=f"bandai:{Path(path).stem}", path=path, reader="bvh", rig="bandai", source="bandai",
        folder="bandai_namco_motion", subject="bandai:dataset-2", label="run", style="", fps=None,
    )  # fmt: skip


def test_zero_and_one_frame_takes(tmp_path: Path) -> None:
    """0 frames: a format error naming the file (was a bare IndexError in np.percentile); 1 frame: one pose."""
    bandai_bvh(tmp_path / "zero.bvh", 0, seed=0)
    with pytest.raises(MocapFormatError, match="no motion frames") as info:
        take_to_h36m(tmp_path, bandai_take("zero.bvh"), 20.0)
    assert info.value.path == tmp_path / "zero.bvh"
    bandai_bvh(tmp_path / "one.bvh", 1, seed=0)
    poses, rate = take_to_h36m(tmp_path, bandai_take("one.bvh"), 20.0)
    assert poses.shape == (1, 17, 3) and np.isfinite(poses).all() and rate == 30.0


def package_assets() -> Path:
    """The installed package's ``assets`` folder (where the shipped library lives)."""
    return Path(str(importlib.resources.files("structpose.assets")))


def test_default_out_is_the_current_directory(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = package_assets() / POSELIB_ASSET
    before = shipped.read_bytes(), shipped.with_suffix(".txt").read_bytes()
    monkeypatch.chdir(tmp_path)
    build = build_pose_library(tree, None, progress=False)
    assert build.path == tmp_path / POSELIB_ASSET
    assert build.path.is_file() and build.path.with_suffix(".txt").is_file()
    assert (shipped.read_bytes(), shipped.with_suffix(".txt").read_bytes()) == before


@pytest.mark.parametrize("name", [POSELIB_ASSET, "other.npz", "sub/lib.npz"])
def test_refuses_to_write_into_the_package(tree: Path, name: str) -> None:
    assets = package_assets()
    before = sorted((p.name, p.read_bytes()) for p in assets.iterdir() if p.is_file())
    with pytest.raises(InputError, match="package's assets folder") as info:
        build_pose_library(tree, assets / name, progress=False)
    assert str(assets) in str(info.value) and "--out" in str(info.value)
    assert sorted((p.name, p.read_bytes()) for p in assets.iterdir() if p.is_file()) == before


def test_out_must_be_an_npz(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.npz"):
        build_pose_library(tree, tmp_path / "lib.txt", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unreadable_takes_are_left_out_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_tree(tmp_path / "data")
    bvh = root / "bandai_namco_motion" / "dataset-2" / "data" / "dataset-2_run_elderly_001.bvh"
    bvh.write_text("\n".join(bvh.read_text().splitlines()[:-1]) + "\n")  # one motion line short
    amc = root / "cmu_asf_amc_gpmat" / "49" / "49_19.amc"
    amc.write_bytes(amc.read_bytes().replace(b":DEGREES", b":DEGR\xc9S"))  # latin-1, not UTF-8
    with caplog.at_level(logging.WARNING, logger="structpose.data.poselib"):
        build = build_pose_library(root, tmp_path / "lib.npz", progress=False)
    assert [p.path for p in build.left_out] == [bvh, amc]  # in take (path) order
    assert "Frames: 16 but the motion block has 15 lines" in build.left_out[0].error
    assert "not UTF-8" in build.left_out[1].error
    for problem in build.left_out:
        assert str(problem).startswith(f"{problem.path}:") and str(problem.path) in caplog.text
    library = load_pose_library(build.path)
    names = {s["name"] for s in library.sequences}
    assert build.sequences == len(names) == 7 and not names & {"bandai:dataset-2_run_elderly_001", "cmu:49_19"}
    sidecar = build.path.with_suffix(".txt").read_text()
    assert "Left out (could not be read): 2 takes" in sidecar and "cmu_asf_amc_gpmat/49/49_19.amc" in sidecar


def test_nothing_readable_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data" / "bandai_namco_motion" / "dataset-2" / "data"
    data.mkdir(parents=True)
    (data / "dataset-2_run_elderly_001.bvh").write_text("HIERARCHY\n")
    with pytest.raises(FormatError, match="no take could be read") as info:
        build_pose_library(tmp_path / "data", tmp_path / "lib.npz", progress=False)
    assert "dataset-2_run_elderly_001.bvh" in str(info.value)
    assert not (tmp_path / "lib.npz").exists()


def test_no_mocap_at_all(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no mocap files of sources") as info:
        build_pose_library(tmp_path, tmp_path / "lib.npz", progress=False)
    assert str(tmp_path) in str(info.value) and "--data-root" in str(info.value)


def test_write_npz_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "lib.npz"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="pickle"):
        write_npz(target, {"ok": np.zeros(3), "bad": np.array([object()], dtype=object)})
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["lib.npz"]


# --- the shipped library ---------------------------------------------------------------------------------------
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "MANIFEST.tsv").is_file(), reason=f"no shared mocap data at {SHARED_DATA}")
def test_rebuild_is_the_shipped_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's rebuild (no --out: into the current directory) gives the shipped file byte for byte."""
    monkeypatch.chdir(tmp_path)
    build = build_pose_library(SHARED_DATA, None, progress=False)
    assert build.left_out == () and build.path == tmp_path / POSELIB_ASSET
    shipped = package_assets() / POSELIB_ASSET
    assert build.path.read_bytes() == shipped.read_bytes()
    assert build.path.with_suffix(".txt").read_bytes() == shipped.with_suffix(".txt").read_bytes()


@pytest.fixture(scope="module")
def shipped() -> PoseLibrary:
    return load_pose_library()


def test_shipped_size_and_tables(shipped: PoseLibrary) -> None:
    asset = Path(__file__).parents[1] / "src" / "structpose" / "assets" / f"poselib_v{DEFAULT_POSELIB_VERSION}.npz"
    assert asset.stat().st_size < 5 * 2**20
    assert 30_000 < len(shipped) < 60_000 and shipped.fps == 20.0
    assert np.isfinite(shipped.poses).all()
    assert {s["source"] for s in shipped.sequences} == {"cmu", "bandai"}
    for seq in shipped.sequences:
        assert seq["split"] in ("train", "test") and seq["license"] and seq["subject"] and seq["action"]
    split, subject, source = shipped.column("split"), shipped.column("subject"), shipped.column("source")
    for src in ("cmu", "bandai"):
        fraction = np.mean(split[source == src] == "test")
        assert 0.15 < fraction < 0.3, (src, fraction)
    cmu = source == "cmu"
    assert not set(subject[cmu & (split == "test")]) & set(subject[cmu & (split == "train")])
    assert len(load_pose_library(sources=("bandai",))) + len(load_pose_library(sources=("cmu",))) == len(shipped)


def test_shipped_bones_plausible(shipped: PoseLibrary) -> None:
    lengths = H36M.bone_lengths(shipped.poses)
    bounds = {(1, 2): (300, 550), (4, 5): (300, 550), (2, 3): (300, 550), (5, 6): (300, 550)}  # thighs, shins
    bounds |= {(11, 12): (200, 350), (14, 15): (200, 350), (8, 11): (80, 250), (8, 14): (80, 250)}  # arms
    for limb, (low, high) in bounds.items():
        column = lengths[:, H36M.limbs.index(limb)]
        assert low < column.min() and column.max() < high, H36M.limb_name(limb)
    head_above_hip = shipped.poses[:, H36M.index("Head"), 2] - shipped.poses[:, H36M.root, 2]
    assert np.median(head_above_hip) > 550
    feet = shipped.poses[:, [H36M.index("LFoot"), H36M.index("RFoot")], 2]
    assert 0 < np.median(feet.min(axis=1)) < 150  # ankles just above the floor at z = 0


def test_shipped_left_is_left(shipped: PoseLibrary) -> None:
    """In forward walks the subject's facing direction (left x up, from the hips) matches the travel direction."""
    agree = []
    for i, seq in enumerate(shipped.sequences):
        if seq["action"] != "Walking" or any(w in seq["label"] for w in ("back", "left", "right", "turn")):
            continue
        poses = shipped.poses[shipped.sequence == i].astype(np.float64)
        left = poses[:, H36M.index("LHip")] - poses[:, H36M.index("RHip")]
        facing = np.cross(left, [0.0, 0.0, 1.0])[1:]
        step = np.diff(poses[:, H36M.root], axis=0)
        agree.append(np.sum(facing * step) / np.sum(np.linalg.norm(facing, axis=1) * np.linalg.norm(step, axis=1)))
    assert len(agree) > 50
    assert np.median(agree) > 0.7 and min(agree) > 0.0
