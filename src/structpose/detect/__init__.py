"""Offline 2D pose detection: MediaPipe's BlazePose (the legacy ``mp.solutions.pose``, model_complexity=1).

``mediapipe==0.10.21`` is the last release whose legacy pose solution runs from model files inside its wheel;
only ``model_complexity=1`` does (0 and 2 are downloaded at run time, which structpose never does: they are
refused). It needs numpy < 2 and protobuf < 5, so it runs in an environment of its own, as a subprocess
(:mod:`structpose.detect.mediapipe_worker`); :func:`~structpose.detect.interpreter.find_detector_python` says
which Python that is (``make detector`` makes ``.venv-detect``). The ``detect`` extra
(``pip install 'structpose[detect]'``) installs mediapipe into the current environment instead, for those who
want it there; structpose's own tests use the separate environment.

Image files are decoded by OpenCV inside the worker (EXIF orientation applied as :func:`structpose.images.
read_image` does; unlike it, 16-bit images are reduced to 8 bits by truncation and alpha is dropped, not
composited on black). Arrays go through :func:`structpose.images.as_rgb8` and a temporary ``.npy``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from structpose.detect.interpreter import ENV_PYTHON, VENV_DIR, find_detector_python
from structpose.errors import InputError, StructposeError
from structpose.images import as_rgb8
from structpose.keypoints import ImageLandmarks, Keypoints2D, read_blazepose_json

__all__ = ["ENV_PYTHON", "VENV_DIR", "WORKER", "Detection", "DetectorError", "detect", "find_detector_python"]

#: the worker script, run by the detector's Python
WORKER = Path(__file__).with_name("mediapipe_worker.py")
#: from this many images on, a progress bar is shown
PROGRESS_FROM = 16
ARRAY = "<array>"


class DetectorError(StructposeError, RuntimeError):
    """The detector's subprocess failed (the message ends with the tail of its stderr)."""


@dataclass(frozen=True)
class Detection(ImageLandmarks):
    """One image's (or frame's) detection: :class:`~structpose.keypoints.ImageLandmarks` plus ``keypoints``,
    the 17 Human3.6M joints (:func:`~structpose.keypoints.from_blazepose`), None when no person was found or
    the image could not be read (then ``error`` says why). An array input is named ``"<array>"`` and its
    ``frame`` is its index in the ``images`` given to :func:`detect`.
    """

    keypoints: Keypoints2D | None = None


def detect(
    images: Sequence[str | os.PathLike | np.ndarray],
    python: str | os.PathLike | None = None,
    video_mode: bool = False,
    model_complexity: int = 1,
    threshold: float = 0.5,
) -> list[Detection]:
    """Detect one person per image with BlazePose, offline.

    Args:
        images: image files, ``.npy`` stacks (N, H, W, 3) uint8 RGB, or (H, W, 3) uint8 RGB arrays.
        python: the detector's Python; default :func:`~structpose.detect.interpreter.find_detector_python`.
        video_mode: track across frames (MediaPipe's ``static_image_mode=False``): over the frames of each
            ``.npy`` and of each run of consecutive arrays of one shape; the tracker restarts at every input.
        model_complexity: only 1 (the others would be downloaded).
        threshold: landmark visibility from which a joint counts as visible.

    Returns:
        One :class:`Detection` per image file, array and frame of a stack, in input order.

    Raises:
        InputError: model_complexity other than 1, an unusable array, or no detector Python found.
        DetectorError: the worker failed (its stderr's tail in the message).
    """
    if model_complexity != 1:
        raise InputError(f"model_complexity={model_complexity} is refused: MediaPipe downloads that model at run "
                         "time; only model_complexity=1 runs offline (its model is inside the wheel)")  # fmt: skip
    images = list(images)
    if not images:
        return []
    exe = find_detector_python(python)
    with tempfile.TemporaryDirectory(prefix="structpose-detect-") as tmp:
        inputs, origins = _inputs(images, Path(tmp))
        out = Path(tmp) / "landmarks.json"
        _run_worker(exe, inputs, out, video_mode)
        entries = read_blazepose_json(out)
    return [_detection(e, origins, threshold) for e in entries]


def _inputs(images: list, tmp: Path) -> tuple[list[str], dict[str, list[int]]]:
    """Worker inputs (paths as given; each run of consecutive same-shape arrays as one temporary stack), and
    each stack's origins (the index in ``images`` of each of its frames)."""
    inputs: list[str] = []
    origins: dict[str, list[int]] = {}
    run: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        if run:
            stack = str(tmp / f"stack{len(origins)}.npy")
            np.save(stack, np.stack([a for _, a in run]), allow_pickle=False)
            inputs.append(stack)
            origins[stack] = [i for i, _ in run]
            run.clear()

    for i, item in enumerate(images):
        if isinstance(item, np.ndarray):
            rgb = _rgb(item, i)
            if run and rgb.shape != run[-1][1].shape:
                flush()
            run.append((i, rgb))
        elif isinstance(item, (str, os.PathLike)):
            flush()
            inputs.append(os.fspath(item))
        else:
            raise InputError(f"images[{i}]: expected a path or an (H, W, 3) uint8 array, got {type(item).__name__}")
    flush()
    return inputs, origins


def _rgb(array: np.ndarray, i: int) -> np.ndarray:
    try:
        return as_rgb8(array)
    except InputError as err:
        raise InputError(f"images[{i}]: {err}") from None


def _run_worker(exe: str, inputs: list[str], out: Path, video_mode: bool) -> None:
    """Run the worker (a progress bar from its stdout lines; its stderr kept for the error message)."""
    cmd = [exe, str(WORKER), "--out", str(out), *(["--video-mode"] if video_mode else []), "--", *inputs]
    env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        except OSError as e:
            raise DetectorError(f"cannot start the detector python: {e}", exe) from e
        with proc:
            _follow(proc.stdout)
        if proc.returncode != 0 or not out.is_file():
            err.seek(0)
            tail = err.read().decode("utf-8", "replace").strip()[-2000:]
            raise DetectorError(f"the detector worker failed (exit status {proc.returncode}); its stderr ends:\n{tail}")


def _follow(lines) -> None:
    """Show the worker's progress lines ({"total": N}, then {"done": k}) as a bar, from PROGRESS_FROM images."""
    bar = None
    for line in lines:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(msg, dict) and isinstance(msg.get("total"), int) and msg["total"] >= PROGRESS_FROM:
            bar = tqdm(total=msg["total"], desc="detecting poses", unit="image")
        elif bar is not None and isinstance(msg, dict) and isinstance(msg.get("done"), int):
            bar.update(msg["done"] - bar.n)
    if bar is not None:
        bar.close()


def _detection(entry: ImageLandmarks, origins: dict[str, list[int]], threshold: float) -> Detection:
    image, frame = entry.image, entry.frame
    if image in origins:
        image, frame = ARRAY, origins[image][frame if frame is not None else 0]
    keypoints = entry.keypoints(threshold)
    return Detection(image, frame, entry.size, entry.landmarks, entry.error, keypoints=keypoints)
