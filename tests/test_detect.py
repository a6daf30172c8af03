"""The offline BlazePose detector (MediaPipe 0.10.21 in its own venv) on scikit-image's astronaut (public domain).

The tests that run the detector skip when no detector Python is found, and fail instead where
$STRUCTPOSE_REQUIRE_DETECTOR=1 (CI, which runs `make detector`). Locally:
STRUCTPOSE_DETECTOR_PYTHON=/path/to/venv/bin/python (with mediapipe==0.10.21 and scikit-image).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from structpose import detect as detect_module
from structpose.detect import WORKER, DetectorError, detect, find_detector_python, interpreter
from structpose.errors import InputError
from structpose.images import read_image
from structpose.keypoints import read_keypoints_json, write_blazepose_json
from structpose.skeleton import H36M_JOINTS

J = {name: i for i, name in enumerate(H36M_JOINTS)}
WAIST_DOWN = ["Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine"]


@pytest.fixture(scope="module")
def detections(detector: str, astronaut: Path) -> list:
    """One worker call: the PNG, an unreadable file, and the same picture as an array (no file)."""
    bad = astronaut.with_name("broken.png")
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but nothing after the signature")
    return detect([astronaut, bad, read_image(astronaut)], python=detector)


def test_the_astronaut_is_found(detections: list) -> None:
    first = detections[0]
    assert first.error is None and first.size == (512, 512) and first.frame is None
    assert first.landmarks.shape == (33, 4) and first.keypoints is not None
    assert first.keypoints.source == "blazepose33" and first.keypoints.image_size == (512, 512)


def test_visible_joints_are_inside_the_image_and_left_right_consistent(detections: list) -> None:
    kp = detections[0].keypoints
    gated = [J[n] for n in ("LShoulder", "RShoulder", "LElbow", "RElbow", "Neck/Nose") if kp.score[J[n]] >= 0.5]
    assert {J["LShoulder"], J["RShoulder"], J["Neck/Nose"]} <= set(gated)  # a frontal portrait: these are seen
    assert kp.visible[gated].all()
    width, height = kp.image_size
    xy = kp.xy[gated]
    assert ((xy >= 0) & (xy < [width, height])).all()
    # she faces the camera: her left is on the image's right (larger x)
    assert kp.xy[J["LShoulder"], 0] > kp.xy[J["Neck/Nose"], 0] > kp.xy[J["RShoulder"], 0]
    if kp.visible[J["LElbow"]] and kp.visible[J["RElbow"]]:
        assert kp.xy[J["LElbow"], 0] > kp.xy[J["RElbow"], 0]
    assert kp.visible[J["Thorax"]] and kp.xy[J["Head"], 1] < kp.xy[J["Neck/Nose"], 1] < kp.xy[J["Thorax"], 1]


def test_the_joints_below_the_picture_are_not_visible(detections: list) -> None:
    kp = detections[0].keypoints
    assert not kp.visible[[J[n] for n in WAIST_DOWN]].any()


def test_an_unreadable_file_gives_an_error_entry_and_the_others_go_through(detections: list) -> None:
    assert len(detections) == 3
    bad = detections[1]
    assert bad.image.endswith("broken.png") and "decode" in bad.error
    assert bad.landmarks is None and bad.keypoints is None and bad.size is None
    assert detections[0].keypoints is not None and detections[2].keypoints is not None


def test_an_array_detects_as_its_file_does(detections: list) -> None:
    array = detections[2]
    assert (array.image, array.frame, array.size, array.error) == ("<array>", 2, (512, 512), None)
    np.testing.assert_allclose(array.landmarks, detections[0].landmarks, rtol=0, atol=1e-3)


def test_detections_round_trip_through_the_keypoint_file(detections: list, tmp_path: Path) -> None:
    path = write_blazepose_json(tmp_path / "kp.json", detections)
    people = read_keypoints_json(path)
    assert len(people) == 2  # the unreadable file has no person
    np.testing.assert_array_equal(people[0].keypoints.xy, detections[0].keypoints.xy)
    np.testing.assert_array_equal(people[1].keypoints.visible, detections[2].keypoints.visible)


def test_video_mode_tracks_a_stack_of_frames(detector: str, astronaut: Path) -> None:
    frame = read_image(astronaut)
    tracked = detect([frame, frame[:, ::-1].copy(), frame], python=detector, video_mode=True)
    assert [d.frame for d in tracked] == [0, 1, 2] and all(d.keypoints is not None for d in tracked)
    first, mirrored = tracked[0].keypoints, tracked[1].keypoints
    # mirrored, she still faces the camera: her (new) left shoulder is the mirror image of the right one
    assert mirrored.xy[J["LShoulder"], 0] > mirrored.xy[J["RShoulder"], 0]
    assert abs(mirrored.xy[J["LShoulder"], 0] - (512 - first.xy[J["RShoulder"], 0])) < 20
    np.testing.assert_allclose(tracked[2].keypoints.xy[J["LShoulder"]], first.xy[J["LShoulder"]], atol=20)


def test_model_complexity_other_than_1_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model_complexity=2 is refused"):
        detect([tmp_path / "x.png"], model_complexity=2)
    # the worker refuses it too, before it loads mediapipe (so any Python with numpy shows it)
    out = tmp_path / "out.json"
    run = [sys.executable, str(WORKER), "--out", str(out), "--model-complexity", "0", "x.png"]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "offline" in proc.stderr and not out.exists()


def test_a_failing_worker_is_an_error_with_its_stderr(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Traceback: the detector broke here' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(DetectorError, match=r"exit status 3(.|\n)*the detector broke here"):
        detect([tmp_path / "x.png"], python=fake)


def test_the_detector_python_is_looked_up_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / "venv" / "bin" / "python"
    venv.parent.mkdir(parents=True)
    venv.write_text("#!/bin/sh\n")
    venv.chmod(0o755)
    monkeypatch.setattr(interpreter, "venv_candidates", lambda: [venv])
    monkeypatch.setattr(interpreter, "mediapipe_here", lambda: True)
    monkeypatch.setenv(interpreter.ENV_PYTHON, sys.executable)
    assert find_detector_python(venv) == str(venv)  # the argument first
    assert find_detector_python() == sys.executable  # then the variable
    monkeypatch.delenv(interpreter.ENV_PYTHON)
    assert find_detector_python() == str(venv)  # then .venv-detect
    monkeypatch.setattr(interpreter, "venv_candidates", lambda: [tmp_path / "none" / "python"])
    assert find_detector_python() == sys.executable  # then this interpreter, when it has mediapipe
    monkeypatch.setattr(interpreter, "mediapipe_here", lambda: False)
    with pytest.raises(InputError, match="make detector"):
        find_detector_python()
    with pytest.raises(InputError, match="not an executable"):
        find_detector_python(tmp_path / "missing" / "python")
    assert detect_module.detect([]) == []  # nothing to do: no detector needed
