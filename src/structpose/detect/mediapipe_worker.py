"""MediaPipe BlazePose on image files and frame stacks, offline: the worker behind ``structpose.detect``.

A standalone script (the standard library, numpy and mediapipe only: it runs in the detector's own
environment, which has no structpose)::

    DETECTOR_PYTHON mediapipe_worker.py --out OUT.json [--video-mode] INPUT...

An INPUT is an image file (decoded by OpenCV, as MediaPipe's own examples do: EXIF orientation applied, 16
bits reduced to 8, alpha dropped; BGR converted to RGB) or a ``.npy`` stack (N, H, W, 3) uint8 RGB of frames.
It writes a structpose-keypoints file (version 1, see ``structpose.keypoints.write_blazepose_json``) to OUT
atomically (a temporary file beside it, then ``os.replace``): one entry per image file and per frame, in
input order. An input that cannot be read gets one entry with ``"landmarks": null`` and an ``"error"``; the
others go through. Progress goes to stdout as JSON lines (``{"total": N}``, then ``{"done": k}``).

Only ``model_complexity=1`` runs from the model files inside the mediapipe 0.10.21 wheel; 0 and 2 would be
downloaded at run time, so they are refused. ``--video-mode`` sets ``static_image_mode=False``: landmarks
are tracked across the frames of each ``.npy`` stack (the tracker restarts at every input).

Exit status: 0 written (per-image errors included), 2 a refused argument, 3 mediapipe missing or failing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

FORMAT = "structpose-keypoints"
VERSION = 1
OFFLINE_COMPLEXITY = 1


def main(argv: list[str] | None = None) -> int:
    """Run the worker; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.model_complexity != OFFLINE_COMPLEXITY:
        why = "MediaPipe downloads that model at run time"
        print(f"mediapipe_worker: model_complexity={args.model_complexity} is refused: {why}; "
              f"only model_complexity={OFFLINE_COMPLEXITY} runs offline", file=sys.stderr)  # fmt: skip
        return 2
    try:
        import cv2
        import mediapipe as mp

        solution = mp.solutions.pose
    except (ImportError, AttributeError) as err:
        print(f"mediapipe_worker: cannot load mediapipe's legacy pose solution ({err}); "
              "install mediapipe==0.10.21 in this interpreter", file=sys.stderr)  # fmt: skip
        return 3
    total = sum(_count(path) for path in args.inputs)
    print(json.dumps({"total": total}), flush=True)
    entries = _detect_all(args.inputs, solution, cv2, not args.video_mode)
    detector = f"mediapipe {mp.__version__} pose (BlazePose, model_complexity={OFFLINE_COMPLEXITY})"
    _write(args.out, detector, entries)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mediapipe_worker.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the JSON file to write")
    p.add_argument("--video-mode", action="store_true", help="track across the frames of each .npy stack")
    p.add_argument("--model-complexity", type=int, default=OFFLINE_COMPLEXITY, help="only 1 (offline)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or .npy stacks (N, H, W, 3) uint8 RGB")
    return p


def _detect_all(inputs: list[str], solution, cv2, static: bool) -> list[dict]:
    """Every input's entries, in order; one Pose for all in static mode, a fresh one per input otherwise."""
    entries: list[dict] = []
    pose = _pose(solution, static) if static else None
    try:
        for path in inputs:
            tracker = pose or _pose(solution, static)
            try:
                for name, frame, image, error in _frames(path, cv2):
                    entries.append(_entry(tracker, name, frame, image, error))
                    print(json.dumps({"done": len(entries)}), flush=True)
            finally:
                if tracker is not pose:
                    tracker.close()
    finally:
        if pose is not None:
            pose.close()
    return entries


def _pose(solution, static: bool):
    return solution.Pose(static_image_mode=static, model_complexity=OFFLINE_COMPLEXITY, enable_segmentation=False)


def _frames(path: str, cv2):
    """Yield (name, frame or None, (H, W, 3) uint8 RGB or None, error or None) for one input."""
    if path.lower().endswith(".npy"):
        stack, error = _load_stack(path)
        if stack is None:
            yield path, None, None, error
            return
        for k in range(stack.shape[0]):
            yield path, k, np.ascontiguousarray(stack[k]), None
        return
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        yield path, None, None, f"cannot read the file: {err.strerror or err}"
        return
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        yield path, None, None, "cannot decode it as an image (empty, corrupt or of an unsupported format)"
        return
    yield path, None, np.ascontiguousarray(bgr[:, :, ::-1]), None


def _load_stack(path: str):
    """(stack, None) for a valid (N, H, W, 3) uint8 .npy (memory-mapped), else (None, why)."""
    try:
        stack = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        return None, f"cannot read it as a .npy array ({err})"
    if stack.ndim != 4 or stack.shape[-1] != 3 or stack.dtype != np.uint8 or 0 in stack.shape:
        return None, f"expected an (N, H, W, 3) uint8 RGB stack, got {stack.dtype} of shape {stack.shape}"
    return stack, None


def _count(path: str) -> int:
    if path.lower().endswith(".npy"):
        stack, _ = _load_stack(path)
        return 1 if stack is None else stack.shape[0]
    return 1


def _entry(pose, name: str, frame: int | None, image: np.ndarray | None, error: str | None) -> dict:
    if image is None:
        return {"image": name, "frame": frame, "width": None, "height": None, "landmarks": None, "error": error}
    height, width = image.shape[:2]
    result = pose.process(image)
    landmarks = None
    if result.pose_landmarks is not None:
        landmarks = [[float(p.x) * width, float(p.y) * height, float(p.z), _unit(p.visibility)]
                     for p in result.pose_landmarks.landmark]  # fmt: skip
    return {"image": name, "frame": frame, "width": width, "height": height, "landmarks": landmarks}


def _unit(v: float) -> float:
    return min(max(float(v), 0.0), 1.0)


def _write(out: str, detector: str, entries: list[dict]) -> None:
    """The structpose-keypoints JSON, atomically: a temporary file beside ``out``, then os.replace."""
    doc = {"format": FORMAT, "version": VERSION, "detector": detector, "layout": "blazepose33"}
    text = json.dumps(doc)[:-1] + ', "images": [\n' + ",\n".join(json.dumps(e) for e in entries) + "\n]}\n"
    folder = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(out) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fp:
            fp.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0o600
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


if __name__ == "__main__":
    sys.exit(main())
