"""``structpose predict PHOTO_OR_VIDEO --model LIFTER``: detect the person's 2D keypoints, lift them to 3D.

Per image ``NAME.json`` (joint names, the 2D keypoints in px and their visibility, the 3D pose in mm, units,
frame, the detector and the model) and ``NAME.png`` (the photo with the 2D skeleton beside the 3D skeleton
seen from the camera and from the side), and ``poses.npz`` of all images; per video ``NAME.json`` and
``NAME.npz`` (per frame) and ``NAME.mp4`` (or ``.gif``: the frames with their 2D skeleton beside the 3D one).
A keypoint file (``.json``: COCO-17, BlazePose-33 or structpose's own, :func:`structpose.keypoints.read_keypoints_json`)
is lifted as it is, without the detector. An image where no person is found, or too few joints are visible,
is reported by path; the others go through. The detector runs in its own Python
(:func:`structpose.detect.detect`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from structpose.detect import Detection, detect
from structpose.errors import FormatError, InputError, StructposeError
from structpose.files import atomic_path, write_text
from structpose.keypoints import DETECTOR, Keypoints2D, read_keypoints_json
from structpose.lift.inputs import DIRECT_JOINTS
from structpose.lift.release import Lifter
from structpose.predict import PredictOutputs, _Names, classify, pose_figure, skeleton_view, video_writer
from structpose.release import FRAME, UNITS
from structpose.skeleton import H36M

#: the fewest detected joints (of the 14 a detector gives) a person needs to be lifted
MIN_VISIBLE = 4
#: frames per detector call of a video (the tracker restarts at each call)
VIDEO_CHUNK = 64


def predict_lifted(lifter: Lifter, inputs: list[Path], out: Path, python: str | None = None,
                   video_format: str = "mp4", progress: bool = True) -> PredictOutputs:  # fmt: skip
    """Detect and lift the person in each image, video frame and keypoint file of ``inputs`` into ``out``.

    Args:
        lifter: a released lifter (:func:`structpose.load` of a folder whose input is ``keypoints2d``).
        inputs: image, video or keypoint JSON files.
        out: the output folder (module docstring).
        python: the detector's Python (default: :func:`structpose.detect.interpreter.find_detector_python`).
        video_format: "mp4" or "gif".
        progress: show progress bars.

    Returns:
        The files written and one line per input (or person) that could not be lifted.
    """
    out = Path(out)
    done, names = PredictOutputs(), _Names()
    images: list[tuple[Path, np.ndarray]] = []
    for path in map(Path, inputs):
        if path.suffix.lower() == ".json":
            _keypoint_file(lifter, path, out, names, done)
            continue
        kind, rgb, problem = classify(path)
        if kind == "image":
            images.append((path, rgb))
        elif kind == "video":
            _video(lifter, path, out, names.take(path), python, video_format, progress, done)
        else:
            done.problems.append(problem)
    if images:
        dets = detect([rgb for _, rgb in images], python=python)
        _images(lifter, images, dets, out, names, done)
    return done


def usable(kp: Keypoints2D | None) -> str | None:
    """Why ``kp`` cannot be lifted (no person; too few joints visible), or None."""
    if kp is None:
        return "no person found"
    seen = int(kp.visible[list(DIRECT_JOINTS)].sum())
    return None if seen >= MIN_VISIBLE else f"only {seen} joints visible (at least {MIN_VISIBLE} are needed)"


def _images(lifter: Lifter, images: list[tuple[Path, np.ndarray]], dets: list[Detection], out: Path,
            names: _Names, done: PredictOutputs) -> None:  # fmt: skip
    rows: list[tuple[str, Keypoints2D, np.ndarray]] = []
    for (path, rgb), det in zip(images, dets, strict=True):
        why = det.error or usable(det.keypoints)
        if why:
            done.problems.append(f"{path}: {why}")
            continue
        kp = det.keypoints
        pose = lifter.lift(kp.xy, kp.visible).poses[0]
        name = names.take(path)
        doc = person_json(lifter, kp, pose, image=str(path), detector=DETECTOR,
                          landmarks33=np.round(det.landmarks, 3).tolist())  # fmt: skip
        done.written.append(write_text(out / f"{name}.json", json.dumps(doc, indent=1) + "\n"))
        done.written.append(lift_figure(rgb, kp, pose, f"{path.name} ({lifter.id})", out / f"{name}.png"))
        rows.append((name, kp, pose))
    if rows:
        done.written.append(_write_npz(out / "poses.npz", rows, lifter))


def _keypoint_file(lifter: Lifter, path: Path, out: Path, names: _Names, done: PredictOutputs) -> None:
    """Lift every person of a keypoint JSON file into ``NAME.json`` (a list, one entry per person)."""
    try:
        people = read_keypoints_json(path)
    except (FormatError, InputError, OSError) as err:
        done.problems.append(str(err) if str(path) in str(err) else f"{path}: {err}")
        return
    docs = []
    for k, person in enumerate(people):
        why = usable(person.keypoints)
        if why:
            done.problems.append(f"{path}: person {k} ({person.image or 'unnamed'}): {why}")
            continue
        pose = lifter.lift(person.keypoints.xy, person.keypoints.visible).poses[0]
        docs.append(person_json(lifter, person.keypoints, pose, image=person.image, frame=person.frame))
    if docs:
        done.written.append(write_text(out / f"{names.take(path)}.json", json.dumps(docs, indent=1) + "\n"))


def person_json(lifter: Lifter, kp: Keypoints2D, pose: np.ndarray, **extra: Any) -> dict:
    """The JSON document of one lifted person: joint names, 2D (px) and visibility, 3D (mm), units, model."""
    return {"joint_names": list(H36M.names), "keypoints2d_px": np.round(kp.xy, 3).tolist(),
            "visible": kp.visible.tolist(), "keypoints_source": kp.source,
            "poses_mm": np.round(pose.astype(np.float64), 3).tolist(), "units": UNITS, "frame": FRAME,
            "model": lifter.id, **extra}  # fmt: skip


def _write_npz(path: Path, rows: list[tuple[str, Keypoints2D, np.ndarray]], lifter: Lifter) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fp:
        np.savez(fp, names=np.array([r[0] for r in rows]), poses=np.stack([r[2] for r in rows]).astype(np.float32),
                 keypoints2d=np.stack([r[1].xy for r in rows]), visible=np.stack([r[1].visible for r in rows]),
                 joint_names=np.array(H36M.names), units=UNITS, frame=FRAME, model=lifter.id)  # fmt: skip
    return path


def draw_keypoints(rgb: np.ndarray, kp: Keypoints2D) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with the 2D skeleton of ``kp`` drawn on it (limbs whose two joints are visible)."""
    from structpose.viz import limb_colour

    image = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(rgb.shape[:2]) / 150))
    for a, b in H36M.limbs:
        if kp.visible[a] and kp.visible[b]:
            draw.line([tuple(kp.xy[a]), tuple(kp.xy[b])], fill=limb_colour((a, b)), width=width)
    for j in np.flatnonzero(kp.visible):
        x, y = kp.xy[j]
        draw.ellipse((x - width, y - width, x + width, y + width), fill=(255, 255, 255))
    return np.asarray(image)


def lift_figure(rgb: np.ndarray, kp: Keypoints2D, pose: np.ndarray, title: str, path: Path) -> Path:
    """A PNG: the photo with the 2D skeleton beside ``pose`` (17, 3) mm in 3D from the camera and the side."""
    return pose_figure(draw_keypoints(rgb, kp), pose, title, path, "photo, detected 2D keypoints", (9.0, 3.2))


def _video(lifter: Lifter, path: Path, out: Path, name: str, python: str | None, video_format: str,
           progress: bool, done: PredictOutputs) -> None:  # fmt: skip
    from structpose.predict import _av, _fps, decode_frames

    try:
        av = _av()
        container = av.open(str(path))
    except ImportError as err:
        done.problems.append(f"{path}: {err}")
        return
    except Exception as err:  # PyAV's FFmpegError (its module may be missing above)
        done.problems.append(f"{path}: not a readable image or video ({err})")
        return
    frames: list[dict] = []
    movie = out / f"{name}.{video_format}"
    try:
        with container:
            fps = _fps(container, path)
            with video_writer(movie, fps, video_format) as write:
                chunk: list[np.ndarray] = []
                for rgb in decode_frames(container, container.streams.video[0], path, progress):
                    chunk.append(rgb)
                    if len(chunk) == VIDEO_CHUNK:
                        frames += _video_chunk(lifter, chunk, python, write)
                        chunk = []
                if chunk:
                    frames += _video_chunk(lifter, chunk, python, write)
                if not frames:
                    raise FormatError("holds no video frame", path)
    except StructposeError as err:
        done.problems.append(str(err) if str(path) in str(err) else f"{path}: {err}")
        return
    lifted = [f for f in frames if f["poses_mm"] is not None]
    if not lifted:
        done.problems.append(f"{path}: no person found in any of its {len(frames)} frames")
    doc = {"video": str(path), "frames": len(frames), "fps": fps, "joint_names": list(H36M.names), "units": UNITS,
           "frame": FRAME, "model": lifter.id, "detector": DETECTOR, "per_frame": frames}  # fmt: skip
    done.written += [movie, write_text(out / f"{name}.json", json.dumps(doc) + "\n"), _video_npz(out, name, frames)]


def _video_chunk(lifter: Lifter, chunk: list[np.ndarray], python: str | None, write: Any) -> list[dict]:
    """Detect (tracking) and lift the frames of ``chunk``; write their panels; their per-frame entries."""
    dets = detect(chunk, python=python, video_mode=True)
    entries = []
    for rgb, det in zip(chunk, dets, strict=True):
        why = det.error or usable(det.keypoints)
        pose = None if why else lifter.lift(det.keypoints.xy, det.keypoints.visible).poses[0]
        write(_panel(rgb, det.keypoints if pose is not None else None, pose))
        entries.append({"keypoints2d_px": None if pose is None else np.round(det.keypoints.xy, 3).tolist(),
                        "visible": None if pose is None else det.keypoints.visible.tolist(),
                        "poses_mm": None if pose is None else np.round(pose.astype(np.float64), 3).tolist(),
                        "problem": why})  # fmt: skip
    return entries


def _panel(rgb: np.ndarray, kp: Keypoints2D | None, pose: np.ndarray | None, height: int = 256) -> np.ndarray:
    """A video frame with its 2D skeleton beside the 3D skeleton from the camera and the side (blank if none)."""
    drawn = draw_keypoints(rgb, kp) if kp is not None else rgb
    width = max(2, round(rgb.shape[1] * height / rgb.shape[0] / 2) * 2)
    frame = np.asarray(Image.fromarray(drawn).resize((width, height), Image.Resampling.BILINEAR))
    blank = np.full((height, height, 3), 250, np.uint8)
    views = [skeleton_view(pose, height, axis) if pose is not None else blank for axis in (0, 2)]
    return np.concatenate([frame, *views], axis=1)


def _video_npz(out: Path, name: str, frames: list[dict]) -> Path:
    nan = np.full((17, 3), np.nan)
    poses = np.stack([np.asarray(f["poses_mm"]) if f["poses_mm"] is not None else nan for f in frames])
    with atomic_path(out / f"{name}.npz") as tmp, open(tmp, "wb") as fp:
        np.savez(fp, poses=poses.astype(np.float32), found=np.array([f["poses_mm"] is not None for f in frames]),
                 joint_names=np.array(H36M.names), units=UNITS, frame=FRAME)  # fmt: skip
    return out / f"{name}.npz"
