"""Detector keypoints -> Human3.6M joints: the mapping joint by joint, visibility, detector_view, JSON files."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from structpose.errors import FormatError, InputError
from structpose.keypoints import (
    BLAZEPOSE33,
    COCO17,
    HEAD_K,
    SPINE_FRACTION,
    ImageLandmarks,
    Keypoints2D,
    detector_view,
    from_blazepose,
    from_coco,
    read_blazepose_json,
    read_keypoints_json,
    synthesise,
    write_blazepose_json,
)
from structpose.skeleton import H36M_JOINTS

# written out here, not taken from the module: Human3.6M joint -> landmark (the person's own left/right)
EXPECTED_DIRECT = {
    "RHip": "right_hip", "RKnee": "right_knee", "RFoot": "right_ankle", "LHip": "left_hip", "LKnee": "left_knee",
    "LFoot": "left_ankle", "Neck/Nose": "nose", "LShoulder": "left_shoulder", "LElbow": "left_elbow",
    "LWrist": "left_wrist", "RShoulder": "right_shoulder", "RElbow": "right_elbow", "RWrist": "right_wrist",
}  # fmt: skip
J = {name: i for i, name in enumerate(H36M_JOINTS)}
BODY = [j for j in range(17) if j not in (0, 7, 8)]  # the 14 joints detector_view keeps


def landmarks(names: tuple[str, ...], seed: int = 0) -> np.ndarray:
    """Distinct, known coordinates for every landmark of a layout: (len(names), 2) px."""
    rng = np.random.default_rng(seed)
    return rng.permutation(len(names) * 2).reshape(-1, 2) * 7.0 + rng.uniform(0, 1, (len(names), 2))


def expected_joints(xy: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The 17 joints by the documented formulas, from a layout's landmarks."""
    at = {n: xy[i] for i, n in enumerate(names)}
    out = np.zeros((17, 2))
    for joint, name in EXPECTED_DIRECT.items():
        out[J[joint]] = at[name]
    hip = (at["left_hip"] + at["right_hip"]) / 2
    thorax = (at["left_shoulder"] + at["right_shoulder"]) / 2
    eyes = (at["left_eye"] + at["right_eye"]) / 2
    out[J["Hip"]], out[J["Thorax"]] = hip, thorax
    out[J["Spine"]] = hip + SPINE_FRACTION * (thorax - hip)
    out[J["Head"]] = eyes + HEAD_K * (eyes - at["nose"])
    return out


def test_the_layouts_follow_mediapipe_and_coco_order() -> None:
    assert len(BLAZEPOSE33) == len(set(BLAZEPOSE33)) == 33 and len(COCO17) == len(set(COCO17)) == 17
    fixed = {"nose": 0, "left_eye": 2, "right_eye": 5, "left_shoulder": 11, "right_shoulder": 12, "left_wrist": 15,
             "left_hip": 23, "right_hip": 24, "left_ankle": 27, "right_ankle": 28, "right_foot_index": 32}  # fmt: skip
    assert {n: BLAZEPOSE33.index(n) for n in fixed} == fixed
    coco = {"nose": 0, "left_eye": 1, "right_ear": 4, "left_shoulder": 5, "right_wrist": 10, "left_hip": 11,
            "right_ankle": 16}  # fmt: skip
    assert {n: COCO17.index(n) for n in coco} == coco


@pytest.mark.parametrize("layout", ["blazepose33", "coco17"])
def test_every_joint_comes_from_its_landmarks(layout: str) -> None:
    names, convert = (BLAZEPOSE33, from_blazepose) if layout == "blazepose33" else (COCO17, from_coco)
    xy = landmarks(names)
    score = np.linspace(0.6, 0.99, len(names))
    kp = convert(xy, score, image_size=(640, 480))
    np.testing.assert_allclose(kp.xy, expected_joints(xy, names), rtol=0, atol=1e-12)
    assert kp.source == layout and kp.image_size == (640, 480) and kp.visible.all()
    # left/right explicitly: the person's left shoulder is the left_shoulder landmark, whatever its image side
    np.testing.assert_array_equal(kp.xy[J["LShoulder"]], xy[names.index("left_shoulder")])
    np.testing.assert_array_equal(kp.xy[J["RFoot"]], xy[names.index("right_ankle")])
    for joint, name in EXPECTED_DIRECT.items():
        assert kp.score[J[joint]] == score[names.index(name)], joint
    s = {n: score[i] for i, n in enumerate(names)}
    assert kp.score[J["Spine"]] == min(s["left_hip"], s["right_hip"], s["left_shoulder"], s["right_shoulder"])
    assert kp.score[J["Head"]] == min(s["nose"], s["left_eye"], s["right_eye"])


@pytest.mark.parametrize("layout", ["blazepose33", "coco17"])
def test_a_hidden_landmark_hides_the_joints_built_from_it(layout: str) -> None:
    names, convert, thr = (BLAZEPOSE33, from_blazepose, 0.5) if layout == "blazepose33" else (COCO17, from_coco, 0.3)
    score = np.full(len(names), 0.9)
    score[names.index("right_hip")] = thr - 0.01
    score[names.index("left_eye")] = thr - 0.01
    score[names.index("left_wrist")] = thr  # exactly the threshold: visible
    kp = convert(landmarks(names), score)
    hidden = {J["RHip"], J["Hip"], J["Spine"], J["Head"]}
    assert {j for j in range(17) if not kp.visible[j]} == hidden
    assert kp.visible[J["Thorax"]] and kp.visible[J["Neck/Nose"]] and kp.visible[J["LWrist"]]
    assert kp.visible.tolist() == (kp.score >= thr).tolist()


def test_synthesise_is_vectorised_and_visible_only_from_visible_sources() -> None:
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(4, 3, 17, 2))
    vis = rng.uniform(size=(4, 3, 17)) > 0.3
    out, out_vis = synthesise(xy, vis)
    for idx in np.ndindex(4, 3):
        hip = (xy[idx][1] + xy[idx][4]) / 2
        thorax = (xy[idx][11] + xy[idx][14]) / 2
        np.testing.assert_allclose(out[idx][[0, 8, 7]], [hip, thorax, hip + SPINE_FRACTION * (thorax - hip)])
        v = vis[idx]
        assert out_vis[idx][0] == (v[1] and v[4]) and out_vis[idx][8] == (v[11] and v[14])
        assert out_vis[idx][7] == (v[1] and v[4] and v[11] and v[14])
    np.testing.assert_array_equal(out[..., BODY, :], xy[..., BODY, :])
    np.testing.assert_array_equal(out_vis[..., BODY], vis[..., BODY])
    with pytest.raises(InputError, match="bool"):
        synthesise(xy, vis.astype(float))


def test_detector_view_keeps_the_body_joints_and_matches_the_detector_mapping() -> None:
    rng = np.random.default_rng(2)
    mocap = rng.normal(500, 100, size=(5, 2, 17, 2))
    view = detector_view(mocap)
    np.testing.assert_array_equal(view[..., BODY, :], mocap[..., BODY, :])
    np.testing.assert_array_equal(view, synthesise(mocap, np.ones((5, 2, 17), bool))[0])
    assert not np.allclose(view[..., [0, 7, 8], :], mocap[..., [0, 7, 8], :])
    # a detector that saw exactly the mocap's joints gives exactly detector_view (eyes placed to give its Head)
    pose = mocap[0, 0]
    xy33 = np.zeros((33, 2))
    for joint, name in EXPECTED_DIRECT.items():
        xy33[BLAZEPOSE33.index(name)] = pose[J[joint]]
    eyes = (pose[J["Head"]] + HEAD_K * pose[J["Neck/Nose"]]) / (1 + HEAD_K)
    xy33[BLAZEPOSE33.index("left_eye")], xy33[BLAZEPOSE33.index("right_eye")] = eyes + [9, 1], eyes - [9, 1]
    np.testing.assert_allclose(from_blazepose(xy33, np.ones(33)).xy, view[0, 0], rtol=0, atol=1e-9)


def test_spine_fraction_is_the_pose_librarys_mean() -> None:
    from structpose.data.poselib import load_pose_library

    poses = load_pose_library().poses.astype(np.float64)
    for axes in ([0, 2], [1, 2]):  # two orthographic views: a ratio along a segment survives projection
        xy = poses[..., axes]
        view = detector_view(xy)
        seg = view[:, 8] - view[:, 0]
        t = ((xy[:, 7] - view[:, 0]) * seg).sum(-1) / (seg * seg).sum(-1)
        assert abs(np.median(t) - SPINE_FRACTION) < 0.03  # the 2D projections are near the 3D ratio
    hip, thorax = (poses[:, 1] + poses[:, 4]) / 2, (poses[:, 11] + poses[:, 14]) / 2
    t3 = ((poses[:, 7] - hip) * (thorax - hip)).sum(-1) / ((thorax - hip) ** 2).sum(-1)
    assert abs(t3.mean() - SPINE_FRACTION) < 0.001


def test_keypoints2d_refuses_bad_arrays() -> None:
    ok = dict(xy=np.zeros((17, 2)), visible=np.ones(17, bool), score=np.ones(17), source="h36m17")
    Keypoints2D(**ok)
    for bad, match in (({"xy": np.zeros((16, 2))}, "shape"), ({"xy": np.full((17, 2), np.nan)}, "non-finite"),
                       ({"score": np.full(17, 1.5)}, r"\[0, 1\]"), ({"visible": np.ones(17)}, "bool"),
                       ({"source": "openpose"}, "source"), ({"image_size": (0, 10)}, "size")):  # fmt: skip
        with pytest.raises(InputError, match=match):
            Keypoints2D(**{**ok, **bad})
    with pytest.raises(InputError, match="shape"):
        from_blazepose(np.zeros((17, 2)), np.ones(17))
    with pytest.raises(InputError, match="non-finite"):
        from_coco(np.full((17, 2), np.inf), np.ones(17))
    kp = Keypoints2D(**ok)
    with pytest.raises(ValueError):
        kp.xy[0, 0] = 1.0  # read-only


def entries() -> list[ImageLandmarks]:
    lm = np.c_[landmarks(BLAZEPOSE33, seed=3), np.linspace(-0.5, 0.5, 33), np.linspace(0, 1, 33)]
    return [
        ImageLandmarks("a.jpg", None, (640, 480), lm),
        ImageLandmarks("clip.npy", 3, (320, 240), None),  # no person found
        ImageLandmarks("broken.png", None, None, None, error="cannot decode it"),
    ]


def test_the_blazepose_json_round_trips(tmp_path: Path) -> None:
    path = write_blazepose_json(tmp_path / "kp.json", entries())
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["version"], doc["layout"]) == ("structpose-keypoints", 1, "blazepose33")
    got = read_blazepose_json(path)
    for a, b in zip(got, entries(), strict=True):
        assert (a.image, a.frame, a.size, a.error) == (b.image, b.frame, b.size, b.error)
        assert (a.landmarks is None) == (b.landmarks is None)
    np.testing.assert_array_equal(got[0].landmarks, entries()[0].landmarks)
    people = read_keypoints_json(path)
    assert [(p.image, p.frame) for p in people] == [("a.jpg", None)]  # images without a person give no entry
    want = from_blazepose(entries()[0].landmarks[:, :2], entries()[0].landmarks[:, 3], image_size=(640, 480))
    np.testing.assert_array_equal(people[0].keypoints.xy, want.xy)
    np.testing.assert_array_equal(people[0].keypoints.visible, want.visible)
    assert people[0].keypoints.image_size == (640, 480)
    assert not read_keypoints_json(path, threshold=1.0)[0].keypoints.visible[J["LShoulder"]]


def test_write_refuses_non_finite_landmarks(tmp_path: Path) -> None:
    lm = entries()[0].landmarks.copy()
    lm[4, 1] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        write_blazepose_json(tmp_path / "kp.json", [ImageLandmarks("a.jpg", None, (640, 480), lm)])
    assert not (tmp_path / "kp.json").exists()


def rewrite(path: Path, change) -> Path:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["images"][0]["landmarks"].pop(), "expected 33 landmarks"),
        (lambda d: d["images"][0]["landmarks"][5].__setitem__(0, float("nan")), r"landmarks\[5\].*non-finite"),
        (lambda d: d["images"][0]["landmarks"][2].append(1.0), r"landmarks\[2\]: expected 4 numbers"),
        (lambda d: d["images"][0]["landmarks"][0].__setitem__(3, 1.5), r"visibility.*\[0, 1\]"),
        (lambda d: d["images"][0].pop("width"), "missing width"),
        (lambda d: d.__setitem__("version", 2), "version 2"),
        (lambda d: d.__setitem__("format", "other"), "unknown format"),
    ],
)
def test_a_malformed_file_is_a_format_error_naming_it(tmp_path: Path, change, match: str) -> None:
    path = rewrite(write_blazepose_json(tmp_path / "bad_kp.json", entries()), change)
    with pytest.raises(FormatError, match=match) as info:
        read_keypoints_json(path)
    assert info.value.path == path and "bad_kp.json" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe\x00garbage", b'{"hello": 1}', b"[1, 2, 3]"])
def test_a_file_that_is_no_keypoint_json_is_a_format_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notkp.json"
    path.write_bytes(content)
    with pytest.raises(FormatError, match="notkp.json"):
        read_keypoints_json(path)


def test_not_strict_leaves_a_bad_entry_out_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def break_second(doc: dict) -> None:
        doc["images"][1] = {**doc["images"][0], "landmarks": doc["images"][0]["landmarks"][:30]}

    path = rewrite(write_blazepose_json(tmp_path / "kp.json", entries()), break_second)
    with pytest.raises(FormatError, match=r"images\[1\]"):
        read_keypoints_json(path)
    with caplog.at_level(logging.WARNING):
        people = read_keypoints_json(path, strict=False)
    assert [p.image for p in people] == ["a.jpg"] and "images[1]" in caplog.text and "kp.json" in caplog.text
    rewrite(path, lambda d: d["images"].pop(0))  # now the only person entry is the bad one
    with pytest.raises(FormatError, match=r"images\[0\]"):
        read_keypoints_json(path, strict=False)


def coco_annotation(xy: np.ndarray, v: np.ndarray, **extra) -> dict:
    return {"keypoints": np.c_[xy, v].ravel().tolist(), **extra}


def test_coco_annotations_with_visibility_flags_and_an_image_table(tmp_path: Path) -> None:
    xy = landmarks(COCO17, seed=4)
    v = np.full(17, 2)
    v[COCO17.index("left_knee")] = 0  # not labelled
    v[COCO17.index("right_elbow")] = 1  # labelled, occluded: its position is known
    annotations = [coco_annotation(xy, v, image_id=7), coco_annotation(xy + 1, np.full(17, 2), image_id=8)]
    doc = {"images": [{"id": 7, "file_name": "000007.jpg", "width": 640, "height": 427}], "annotations": annotations}
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(doc))
    first, second = read_keypoints_json(path)
    assert (first.image, first.frame, first.keypoints.image_size) == ("000007.jpg", None, (640, 427))
    assert (second.image, second.keypoints.image_size) == ("8", None)
    np.testing.assert_allclose(first.keypoints.xy, expected_joints(xy, COCO17), atol=1e-12)
    assert first.keypoints.source == "coco17"
    assert {j for j in range(17) if not first.keypoints.visible[j]} == {J["LKnee"]}
    assert first.keypoints.visible[J["RElbow"]]


def test_coco_results_with_scores_and_bad_annotations(tmp_path: Path) -> None:
    xy = landmarks(COCO17, seed=5)
    scores = np.linspace(0.05, 0.95, 17)
    path = tmp_path / "results.json"
    path.write_text(json.dumps([coco_annotation(xy, scores, image="f.png", frame=12)]))
    (person,) = read_keypoints_json(path)
    assert (person.image, person.frame) == ("f.png", 12)
    np.testing.assert_array_equal(person.keypoints.visible[BODY], (person.keypoints.score >= 0.3)[BODY])
    assert person.keypoints.score[J["LShoulder"]] == scores[COCO17.index("left_shoulder")]
    path.write_text(json.dumps([{"keypoints": [1.0] * 50}]))
    with pytest.raises(FormatError, match="51 numbers"):
        read_keypoints_json(path)


def blazepose_dicts(xy_norm: np.ndarray, vis: np.ndarray) -> list[dict]:
    return [
        {"x": x, "y": y, "z": 0.0, "visibility": v} for (x, y), v in zip(xy_norm.tolist(), vis.tolist(), strict=True)
    ]


def test_other_tools_blazepose_landmarks_are_scaled_to_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    xy_norm, vis = rng.uniform(0, 1, (33, 2)), rng.uniform(0, 1, 33)
    path = tmp_path / "mp.json"
    path.write_text(json.dumps({"width": 800, "height": 600, "landmarks": blazepose_dicts(xy_norm, vis)}))
    (person,) = read_keypoints_json(path)
    want = from_blazepose(xy_norm * [800, 600], vis)
    np.testing.assert_allclose(person.keypoints.xy, want.xy, atol=1e-9)
    np.testing.assert_array_equal(person.keypoints.visible, want.visible)
    assert person.keypoints.image_size == (800, 600)
    frames = [{"image": "v.mp4", "frame": k, "image_width": 800, "image_height": 600,
               "pose_landmarks": {"landmark": blazepose_dicts(xy_norm, vis)}} for k in range(2)]  # fmt: skip
    frames.append({"image": "v.mp4", "frame": 2, "width": 800, "height": 600, "landmarks": None})  # nobody
    path.write_text(json.dumps(frames))
    assert [(p.image, p.frame) for p in read_keypoints_json(path)] == [("v.mp4", 0), ("v.mp4", 1)]
    path.write_text(json.dumps(blazepose_dicts(xy_norm, vis)))  # normalised, with no image size
    with pytest.raises(FormatError, match="width"):
        read_keypoints_json(path)
    path.write_text(json.dumps({"width": 800, "height": 600, "landmarks": blazepose_dicts(xy_norm[:32], vis[:32])}))
    with pytest.raises(FormatError, match="expected 33 landmarks"):
        read_keypoints_json(path)
