"""Photos and videos of real people: detect -> lift -> JSON and pictures, and the lifter shipped in the package."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import structpose
from structpose.cli import main
from structpose.data.poselib import load_pose_library
from structpose.keypoints import BLAZEPOSE33, write_blazepose_json
from structpose.lift.release import export_lifter
from structpose.lift.run import reproduce_lift
from structpose.skeleton import H36M

SHIPPED = Path(str(resources.files("structpose.assets") / "lifter"))


@pytest.fixture(scope="module")
def tiny_lifter(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("lift") / "run"
    reproduce_lift("tiny", run, ["data.train_views=1500"], seeds=1)
    return export_lifter(run, "lift_ours", run / "released")


def _bone_range() -> tuple[np.ndarray, np.ndarray]:
    lengths = H36M.bone_lengths(load_pose_library().poses)
    return lengths.min(0), lengths.max(0)


def test_the_shipped_lifter_is_small_described_and_loads() -> None:
    card = json.loads((SHIPPED / "model.json").read_text())
    assert card["input"]["kind"] == "keypoints2d" and card["dtype"] == "float16"
    assert (SHIPPED / "model.safetensors").stat().st_size < 10 * 2**20
    assert "CC BY-NC" in card["license"] and card["metrics"]["exact"]["mpjpe"]
    lifter = structpose.load(SHIPPED)
    assert lifter.id == card["id"]


def test_the_shipped_lifter_lifts_held_out_mocap_far_better_than_the_mean_pose() -> None:
    from structpose.lift.config import LiftConfig
    from structpose.lift.data import lift_splits
    from structpose.lift.pipeline import evaluation_inputs, lift_poses
    from structpose.metrics import mpjpe

    lifter = structpose.load(SHIPPED)
    cfg = LiftConfig()
    split = lift_splits(load_pose_library(), "v2", 0, 0, {"train": 2000, "test": 600}, 0.1)
    test = split["test"]
    pred = lift_poses(lifter.net, evaluation_inputs(test, cfg, "noise10"))
    mean_pose = np.broadcast_to(split["train"].poses3d.mean(0), test.poses3d.shape)
    assert mpjpe(pred, test.poses3d) < 0.7 * mpjpe(mean_pose, test.poses3d)


def test_a_photo_becomes_a_plausible_3d_skeleton(astronaut: Path, detector: str, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["predict", str(astronaut), "--out", str(out), "--detector-python", detector]) == 0
    doc = json.loads((out / "astronaut.json").read_text())
    pose, xy, vis = (np.asarray(doc[k]) for k in ("poses_mm", "keypoints2d_px", "visible"))
    assert doc["joint_names"] == list(H36M.names) and doc["units"] == "mm" and len(doc["landmarks33"]) == 33
    lo, hi = _bone_range()
    bones = H36M.bone_lengths(pose)
    seen = np.array([vis[a] and vis[b] for a, b in H36M.limbs])  # waist-up: only the bones the photo shows
    assert seen.sum() >= 4, seen
    assert ((bones > 0.7 * lo) & (bones < 1.3 * hi))[seen].all(), (bones, lo, hi)
    assert vis[H36M.index("LShoulder")] and vis[H36M.index("RShoulder")]
    for left, right in (("LShoulder", "RShoulder"), ("LElbow", "RElbow"), ("LWrist", "RWrist")):
        a, b = H36M.index(left), H36M.index(right)
        if vis[a] and vis[b]:  # camera x is image right: the 3D left/right order is the photo's
            assert np.sign(pose[a, 0] - pose[b, 0]) == np.sign(xy[a, 0] - xy[b, 0]), (left, right)
    assert Image.open(out / "astronaut.png").size[0] > 600


def test_people_not_found_are_reported_and_the_rest_go_through(astronaut: Path, detector: str, tiny_lifter: Path,
                                                               tmp_path, capsys) -> None:  # fmt: skip
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "out"
    code = main(["predict", str(blank), str(astronaut), str(broken), "--model", str(tiny_lifter), "--out", str(out),
                 "--detector-python", detector])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "wall.png: no person found" in err and "broken.jpg" in err
    assert (out / "astronaut.json").is_file() and not (out / "wall.json").exists()
    with np.load(out / "poses.npz") as npz:
        assert list(npz["names"]) == ["astronaut"] and npz["poses"].shape == (1, 17, 3)


def test_a_video_gets_per_frame_poses_and_an_animation(astronaut: Path, detector: str, tiny_lifter: Path,
                                                       tmp_path) -> None:  # fmt: skip
    import av

    rgb = np.asarray(Image.open(astronaut).convert("RGB"))[:, :, :]
    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
        for k in range(4):
            frame = np.roll(rgb, 4 * k, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out"
    assert main(["predict", str(clip), "--model", str(tiny_lifter), "--out", str(out),
                 "--detector-python", detector]) == 0  # fmt: skip
    doc = json.loads((out / "clip.json").read_text())
    assert doc["frames"] == 4 and all(f["poses_mm"] is not None for f in doc["per_frame"])
    with np.load(out / "clip.npz") as npz:
        assert npz["poses"].shape == (4, 17, 3) and npz["found"].all()
    with av.open(str(out / "clip.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 4


def test_keypoint_files_are_lifted_without_the_detector(tiny_lifter: Path, tmp_path, monkeypatch) -> None:
    from structpose.keypoints import ImageLandmarks

    monkeypatch.setenv("STRUCTPOSE_DETECTOR_PYTHON", "/nonexistent/python")  # the detector must not be needed
    lm = np.zeros((33, 4))
    rng = np.random.default_rng(0)
    lm[:, :2] = rng.uniform(100, 400, (33, 2))
    lm[:, 3] = 0.99
    lm[BLAZEPOSE33.index("left_hip"), 3] = 0.1
    path = write_blazepose_json(
        tmp_path / "people.json",
        [ImageLandmarks("a.jpg", None, (500, 500), lm), ImageLandmarks("b.jpg", None, (500, 500), None)],
    )
    out = tmp_path / "out"
    assert main(["predict", str(path), "--model", str(tiny_lifter), "--out", str(out)]) == 0
    docs = json.loads((out / "people.json").read_text())
    assert len(docs) == 1 and docs[0]["image"] == "a.jpg" and not docs[0]["visible"][H36M.index("LHip")]
    assert np.asarray(docs[0]["poses_mm"]).shape == (17, 3)
