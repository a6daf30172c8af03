"""2D keypoints of a person detector, mapped onto the Human3.6M 17 joints that the 2D-to-3D lifter takes.

Two detector layouts are read: MediaPipe's BlazePose (:data:`BLAZEPOSE33`, 33 landmarks) and COCO
(:data:`COCO17`, 17 keypoints). Both use the person's own left and right, as Human3.6M does (a person
facing the camera has the left shoulder at the larger image x). The mapping (``xy`` in pixels)::

    H36M joint    from (BlazePose and COCO alike)
    0  Hip        midpoint of left_hip and right_hip                       (synthesise)
    1  RHip       right_hip
    2  RKnee      right_knee
    3  RFoot      right_ankle
    4  LHip       left_hip
    5  LKnee      left_knee
    6  LFoot      left_ankle
    7  Spine      Hip + SPINE_FRACTION * (Thorax - Hip)                    (synthesise)
    8  Thorax     midpoint of left_shoulder and right_shoulder             (synthesise)
    9  Neck/Nose  nose
    10 Head       eye midpoint + HEAD_K * (eye midpoint - nose)            (head_from_face)
    11 LShoulder  left_shoulder      12 LElbow  left_elbow     13 LWrist  left_wrist
    14 RShoulder  right_shoulder     15 RElbow  right_elbow    16 RWrist  right_wrist

A direct joint is visible when its detector score reaches the threshold; a synthesised one when all the
joints it is built from are (its score is their minimum). The lifter is trained on :func:`detector_view`
of projected mocap: Hip, Spine and Thorax rebuilt by the same :func:`synthesise`, so training and detector
input follow one rule. Head is an approximation: the top of the head is not a landmark of either detector
(it is placed above the eyes along the nose-to-eyes direction, which a face in profile or bent forward
foreshortens); mocap's own Head and Neck/Nose are kept in training, having no face landmarks.

Files (:func:`read_keypoints_json`): the structpose-keypoints JSON that :mod:`structpose.detect` writes
(:func:`write_blazepose_json`, version :data:`FORMAT_VERSION`), COCO-style keypoint annotations or results,
and BlazePose landmark lists of other tools (normalised coordinates plus the image's width and height).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from structpose.errors import FormatError, InputError
from structpose.files import write_text

logger = logging.getLogger(__name__)

BLAZEPOSE33: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
COCO17: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip
SOURCES = ("blazepose33", "coco17", "h36m17")

#: Spine's place on the Hip -> Thorax segment. Measured on the shipped pose library (load_pose_library(),
#: 37,817 mocap frames, CMU + Bandai): the projection t of Spine onto the segment from the hip midpoint to
#: the shoulder midpoint (the synthesised Hip and Thorax), t = (Spine-Hip).(Thorax-Hip) / |Thorax-Hip|^2, has
#: mean 0.547 (median 0.562, std 0.036; mean of the 316 sequences' means 0.549). Against the mocap's own Hip
#: and Thorax (its Thorax sits ~36 mm above the shoulder midpoint) the mean would be 0.503.
SPINE_FRACTION = 0.547
#: Head = eye midpoint + HEAD_K * (eye midpoint - nose). Chosen so that |Head - nose| matches the pose
#: library's mean |Head - Neck/Nose| of 117.8 mm: MediaPipe's landmarks on scikit-image's astronaut (a frontal
#: face) put the eye midpoint 20.5 px from the nose at an eye separation of 45.1 px, i.e. 28.7 mm at an adult
#: mean interpupillary distance of 63 mm; 117.8 / 28.7 - 1 = 3.1, rounded to 3. An approximation from one face.
HEAD_K = 3.0

#: the joints :func:`synthesise` fills (Human3.6M index -> the joints it is built from)
SYNTHESISED: dict[int, tuple[int, ...]] = {0: (1, 4), 8: (11, 14), 7: (1, 4, 11, 14)}
#: the joints taken as they are (Human3.6M index -> landmark name, the same in both layouts)
DIRECT: dict[int, str] = {
    1: "right_hip", 2: "right_knee", 3: "right_ankle", 4: "left_hip", 5: "left_knee", 6: "left_ankle", 9: "nose",
    11: "left_shoulder", 12: "left_elbow", 13: "left_wrist", 14: "right_shoulder", 15: "right_elbow",
    16: "right_wrist",
}  # fmt: skip
HEAD = 10
_FACE = ("nose", "left_eye", "right_eye")  # what Head is built from

FORMAT = "structpose-keypoints"
FORMAT_VERSION = 1
DETECTOR = "mediapipe 0.10.21 pose (BlazePose, model_complexity=1)"
_LANDMARK_KEYS = ("landmarks", "pose_landmarks", "landmark")  # how other tools name a BlazePose landmark list


@dataclass(frozen=True)
class Keypoints2D:
    """One person's 17 Human3.6M joints in an image.

    Attributes:
        xy: (17, 2) float64 pixels in the image, x right, y down (read-only).
        visible: (17,) bool, whether each joint is usable (its score reached the threshold).
        score: (17,) float64 in [0, 1], the detector's confidence (a synthesised joint: its sources' minimum).
        source: the detector layout it came from, one of :data:`SOURCES`.
        image_size: (width, height) pixels of the image, or None when unknown.
    """

    xy: np.ndarray
    visible: np.ndarray
    score: np.ndarray
    source: str
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        xy = _finite(self.xy, (17, 2), "xy")
        score = _finite(self.score, (17,), "score")
        if ((score < 0) | (score > 1)).any():
            raise InputError(f"score must lie in [0, 1]; got {score.min():g} to {score.max():g}")
        visible = np.array(self.visible)
        if visible.shape != (17,) or visible.dtype != bool:
            raise InputError(f"visible must be a (17,) bool array; got {visible.dtype} of shape {visible.shape}")
        if self.source not in SOURCES:
            raise InputError(f"source must be one of {', '.join(SOURCES)}; got {self.source!r}")
        for name, value in (("xy", xy), ("visible", visible), ("score", score)):
            value.flags.writeable = False
            object.__setattr__(self, name, value)
        object.__setattr__(self, "image_size", _size(self.image_size))


@dataclass(frozen=True)
class ImageLandmarks:
    """One image (or one frame of a stack) of a structpose-keypoints file: BlazePose's 33 raw landmarks.

    Attributes:
        image: the image's name (as given to the detector).
        frame: the frame index in a stack of frames (.npy), or None for an image file.
        size: (width, height) pixels, or None where the image could not be read.
        landmarks: (33, 4) float64 ``[x px, y px, z, visibility]`` in :data:`BLAZEPOSE33` order (z as MediaPipe
            gives it: depth from the hips, in units of about the image width); None when no person was found.
        error: why the image could not be read, or None.
    """

    image: str
    frame: int | None
    size: tuple[int, int] | None
    landmarks: np.ndarray | None
    error: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.image, str):
            raise InputError(f"image must be a name (str); got {type(self.image).__name__}")
        if self.frame is not None and (not _is_int(self.frame) or self.frame < 0):
            raise InputError(f"frame must be None or an int >= 0; got {self.frame!r}")
        if self.error is not None and not isinstance(self.error, str):
            raise InputError(f"error must be None or a str; got {type(self.error).__name__}")
        object.__setattr__(self, "size", _size(self.size))
        if self.landmarks is not None:
            if self.size is None:
                raise InputError("landmarks need the image size")
            lm = _finite(self.landmarks, (33, 4), "landmarks")
            if ((lm[:, 3] < 0) | (lm[:, 3] > 1)).any():
                raise InputError("landmark visibility must lie in [0, 1]")
            lm.flags.writeable = False
            object.__setattr__(self, "landmarks", lm)

    def keypoints(self, threshold: float = 0.5) -> Keypoints2D | None:
        """The 17 Human3.6M joints (:func:`from_blazepose`), or None when no person was found."""
        if self.landmarks is None:
            return None
        return from_blazepose(self.landmarks[:, :2], self.landmarks[:, 3], threshold, image_size=self.size)


@dataclass(frozen=True)
class PersonKeypoints:
    """One person in a keypoint file: ``image`` name ("" when the file names none), ``frame`` index or None."""

    image: str
    frame: int | None
    keypoints: Keypoints2D


def synthesise(xy17: np.ndarray, visible17: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill Hip, Thorax and Spine from the other joints: the one rule for detector and training input.

    Hip = midpoint of RHip and LHip; Thorax = midpoint of LShoulder and RShoulder;
    Spine = Hip + :data:`SPINE_FRACTION` * (Thorax - Hip). Each is visible only when all of RHip, LHip (Hip),
    LShoulder, RShoulder (Thorax), all four (Spine) are.

    Args:
        xy17: (..., 17, 2) pixels (or any unit); its Hip, Spine, Thorax are ignored.
        visible17: (..., 17) bool.

    Returns:
        New (..., 17, 2) float64 and (..., 17) bool arrays with joints 0, 7, 8 filled.
    """
    xy = _joints(xy17)
    visible = np.array(visible17)
    if visible.dtype != bool or visible.shape != xy.shape[:-1]:
        raise InputError(
            f"visible17 must be a bool array of shape {xy.shape[:-1]}; got {visible.dtype} {visible.shape}"
        )
    hip = 0.5 * (xy[..., 1, :] + xy[..., 4, :])
    thorax = 0.5 * (xy[..., 11, :] + xy[..., 14, :])
    xy[..., 0, :], xy[..., 8, :] = hip, thorax
    xy[..., 7, :] = hip + SPINE_FRACTION * (thorax - hip)
    for joint, sources in SYNTHESISED.items():
        visible[..., joint] = visible[..., list(sources)].all(axis=-1)
    return xy, visible


def head_from_face(nose: np.ndarray, left_eye: np.ndarray, right_eye: np.ndarray) -> np.ndarray:
    """Approximate top of the head: eye midpoint + :data:`HEAD_K` * (eye midpoint - nose). All (..., 2) px."""
    eyes = 0.5 * (np.asarray(left_eye, dtype=np.float64) + np.asarray(right_eye, dtype=np.float64))
    return eyes + HEAD_K * (eyes - np.asarray(nose, dtype=np.float64))


def detector_view(xy17: np.ndarray) -> np.ndarray:
    """What the lifter is trained on: projected mocap joints with Hip, Spine and Thorax rebuilt by
    :func:`synthesise` (the other 14, Neck/Nose and Head included, kept).

    Args:
        xy17: (..., 17, 2) projected joints, pixels (or any unit).

    Returns:
        (..., 17, 2) float64, a new array.
    """
    xy = _joints(xy17)
    return synthesise(xy, np.ones(xy.shape[:-1], dtype=bool))[0]


def from_blazepose(
    xy33: np.ndarray, visibility33: np.ndarray, threshold: float = 0.5, image_size: tuple[int, int] | None = None
) -> Keypoints2D:
    """Map BlazePose's 33 landmarks to the 17 Human3.6M joints (table in the module docstring).

    Args:
        xy33: (33, 2) pixels, :data:`BLAZEPOSE33` order.
        visibility33: (33,) MediaPipe visibility in [0, 1].
        threshold: the visibility from which a landmark counts as visible.
        image_size: (width, height) pixels, or None.
    """
    return _from_layout(xy33, visibility33, BLAZEPOSE33, threshold, "blazepose33", image_size)


def from_coco(
    xy17: np.ndarray, scores17: np.ndarray, threshold: float = 0.3, image_size: tuple[int, int] | None = None
) -> Keypoints2D:
    """Map COCO's 17 keypoints to the 17 Human3.6M joints (table in the module docstring).

    Args:
        xy17: (17, 2) pixels, :data:`COCO17` order.
        scores17: (17,) keypoint scores in [0, 1].
        threshold: the score from which a keypoint counts as visible.
        image_size: (width, height) pixels, or None.
    """
    return _from_layout(xy17, scores17, COCO17, threshold, "coco17", image_size)


def _from_layout(xy, score, names, threshold, source, image_size) -> Keypoints2D:
    xy = _finite(xy, (len(names), 2), f"{source} xy")
    score = _finite(score, (len(names),), f"{source} scores")
    if not 0 <= threshold <= 1:
        raise InputError(f"threshold must lie in [0, 1]; got {threshold}")
    if ((score < 0) | (score > 1)).any():
        raise InputError(f"{source} scores must lie in [0, 1]; got {score.min():g} to {score.max():g}")
    out, out_score = np.zeros((17, 2)), np.zeros(17)
    for joint, name in DIRECT.items():
        out[joint], out_score[joint] = xy[names.index(name)], score[names.index(name)]
    face = [names.index(n) for n in _FACE]
    out[HEAD], out_score[HEAD] = head_from_face(*xy[face]), score[face].min()
    for joint, sources in SYNTHESISED.items():
        out_score[joint] = out_score[list(sources)].min()
    out, visible = synthesise(out, out_score >= threshold)  # Head: visible when nose and both eyes are
    return Keypoints2D(out, visible, out_score, source, image_size)


# ---------------------------------------------------------------------------------------------- files


def write_blazepose_json(path: str | Path, entries: Iterable[ImageLandmarks], detector: str = DETECTOR) -> Path:
    """Write ``entries`` as a structpose-keypoints file (atomically), one image per line.

    Format (version 1): ``{"format": "structpose-keypoints", "version": 1, "detector": ..., "layout":
    "blazepose33", "images": [{"image", "frame", "width", "height", "landmarks": null or 33 x [x_px, y_px, z,
    visibility]}, ...]}``; an image that could not be read has ``"error"`` and null width, height, landmarks.
    """
    lines = []
    for e in entries:
        if not isinstance(e, ImageLandmarks):
            raise InputError(f"entries must be ImageLandmarks; got {type(e).__name__}")
        width, height = e.size if e.size is not None else (None, None)
        item = {"image": e.image, "frame": e.frame, "width": width, "height": height}
        item["landmarks"] = None if e.landmarks is None else e.landmarks.tolist()
        if e.error is not None:
            item["error"] = e.error
        lines.append(json.dumps(item, allow_nan=False))
    head = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "detector": detector, "layout": "blazepose33"})
    return write_text(path, head[:-1] + ', "images": [\n' + ",\n".join(lines) + "\n]}\n")


def read_blazepose_json(path: str | Path) -> list[ImageLandmarks]:
    """Read a structpose-keypoints file (every image, those without a person included).

    Raises:
        FormatError: not JSON, not this format or version, or any malformed image entry (named by index).
    """
    doc = _load_json(path)
    if not (isinstance(doc, dict) and doc.get("format") == FORMAT):
        raise FormatError(f'not a structpose-keypoints file (no "format": "{FORMAT}")', path)
    out = []
    for where, item in _structpose_items(doc, path):
        try:
            out.append(_image_landmarks(item))
        except _Bad as err:
            raise FormatError(f"{where}: {err}", path) from None
    return out


def read_keypoints_json(path: str | Path, threshold: float | None = None, strict: bool = True) -> list[PersonKeypoints]:
    """Read the people of a keypoint file, mapped to Human3.6M joints.

    Accepted: (a) a structpose-keypoints file (:func:`write_blazepose_json`); (b) COCO-style keypoints: a list
    of annotations or a dict with ``"annotations"`` (and optionally ``"images"``, giving file names and sizes),
    each with ``"keypoints"`` [x, y, v] * 17, where v is either COCO's visibility flag (0 not labelled -> score
    0; 1 labelled, 2 visible -> score 1; used when every v is 0, 1 or 2) or a score (>= 0, above 1 clipped to
    1); the name from ``"image"``, ``"file_name"`` or ``"image_id"``; (c) BlazePose landmarks of other tools:
    ``{"width": W, "height": H, "landmarks": [{"x", "y", "visibility"} * 33]}`` (x, y normalised to [0, 1];
    also ``"pose_landmarks"`` or ``"landmark"``; optional ``"image"``, ``"frame"``), a list of such dicts, or
    a dict holding such a list under ``"frames"`` or ``"images"``. An image without a person (landmarks null)
    gives no entry.

    Args:
        path: the JSON file.
        threshold: visibility from which a joint counts as visible; default 0.5 (BlazePose), 0.3 (COCO).
        strict: a malformed person entry makes the whole file a FormatError (the default). With False it is
            left out with a logged warning (the same message) and the others are read; a file none of whose
            entries can be read is still a FormatError.

    Raises:
        FormatError: naming the file and, for a person entry, its place in the file and what is wrong.
    """
    doc = _load_json(path)
    layout, items, convert = _dispatch(doc, path)
    thr = threshold if threshold is not None else (0.3 if layout == "coco17" else 0.5)
    people, first_error = [], None
    for where, item in items:
        try:
            person = convert(item, thr)
        except _Bad as err:
            error = FormatError(f"{where}: {err}", path)
            if strict:
                raise error from None
            first_error = first_error or error
            logger.warning("%s; entry left out", error)
            continue
        if person is not None:
            people.append(person)
    if first_error is not None and not people and len(items) > 0:
        raise first_error
    return people


class _Bad(Exception):
    """A malformed entry (the message says what is wrong; the caller adds the file and the entry's place)."""


_Convert = Callable[[Any, float], "PersonKeypoints | None"]


def _dispatch(doc: Any, path: str | Path) -> tuple[str, list[tuple[str, Any]], _Convert]:
    """Which of the accepted formats ``doc`` is: its layout, its (place, entry) pairs and their converter."""
    if isinstance(doc, dict) and "format" in doc:
        if doc["format"] != FORMAT:
            raise FormatError(f"unknown format {doc['format']!r} (expected {FORMAT!r})", path)
        return "blazepose33", _structpose_items(doc, path), _structpose_person
    if isinstance(doc, dict) and "annotations" in doc:
        if not isinstance(doc["annotations"], list):
            raise FormatError('"annotations" must be a list of COCO keypoint annotations', path)
        table = _coco_images(doc.get("images"), path)
        return "coco17", _listed(doc["annotations"], "annotations"), lambda a, t: _coco_person(a, t, table)
    if isinstance(doc, list) and all(isinstance(a, dict) and "keypoints" in a for a in doc):  # [] too: no one
        return "coco17", _listed(doc, ""), lambda a, t: _coco_person(a, t, {})
    if isinstance(doc, dict) and _has_landmarks(doc):
        return "blazepose33", [("", doc)], _other_blazepose_person
    for key in ("frames", "images"):
        if isinstance(doc, dict) and isinstance(doc.get(key), list):
            return "blazepose33", _listed(doc[key], key), _other_blazepose_person
    if isinstance(doc, list) and doc and all(isinstance(d, dict) and _has_landmarks(d) for d in doc):
        return "blazepose33", _listed(doc, ""), _other_blazepose_person
    if isinstance(doc, list) and len(doc) == 33 and all(isinstance(d, dict) and "x" in d for d in doc):
        raise FormatError('33 landmarks with normalised x, y need the image size: write them as {"width": W, '
                          '"height": H, "landmarks": [...]}', path)  # fmt: skip
    raise FormatError("not a keypoint file: expected structpose-keypoints JSON, COCO keypoint annotations or "
                      "BlazePose landmarks with the image width and height", path)  # fmt: skip


def _load_json(path: str | Path) -> Any:
    try:
        text = Path(path).read_bytes().decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError as err:
        raise FormatError(f"not a UTF-8 text file ({err.reason} at byte {err.start}); expected JSON", path) from None
    except json.JSONDecodeError as err:
        raise FormatError(f"not JSON: {err.msg} at line {err.lineno}, column {err.colno}", path) from None


def _listed(items: list, key: str) -> list[tuple[str, Any]]:
    return [(f"{key}[{i}]", item) for i, item in enumerate(items)]


def _structpose_items(doc: dict, path: str | Path) -> list[tuple[str, Any]]:
    if doc.get("version") != FORMAT_VERSION:
        raise FormatError(f"version {doc.get('version')!r} of {FORMAT} is not supported (this is version "
                          f"{FORMAT_VERSION}); re-run the detector with this structpose", path)  # fmt: skip
    if doc.get("layout") != "blazepose33":
        raise FormatError(f"layout {doc.get('layout')!r} is not supported (expected 'blazepose33')", path)
    if not isinstance(doc.get("images"), list):
        raise FormatError('"images" must be a list of image entries', path)
    return _listed(doc["images"], "images")


def _image_landmarks(item: Any) -> ImageLandmarks:
    """A structpose-keypoints image entry -> ImageLandmarks (JSON types checked here, the rest by the class)."""
    if not isinstance(item, dict):
        raise _Bad(f"expected an object, got {type(item).__name__}")
    missing = [k for k in ("image", "frame", "width", "height", "landmarks") if k not in item]
    if missing:
        raise _Bad(f"missing {', '.join(missing)}")
    width, height, lm = item["width"], item["height"], item["landmarks"]
    size = None if width is None and height is None else (width, height)
    if lm is not None:
        lm = _number_rows(lm, 33, 4, "landmarks", "landmarks [x_px, y_px, z, visibility]")
    try:
        return ImageLandmarks(item["image"], item["frame"], size, lm, item.get("error"))
    except InputError as err:
        raise _Bad(str(err)) from None


def _structpose_person(item: Any, threshold: float) -> PersonKeypoints | None:
    entry = _image_landmarks(item)
    keypoints = _keypoints(lambda: entry.keypoints(threshold))
    return None if keypoints is None else PersonKeypoints(entry.image, entry.frame, keypoints)


def _coco_images(images: Any, path: str | Path) -> dict:
    """COCO's "images" table: image id -> (file name, (width, height) or None)."""
    if images is None:
        return {}
    if not isinstance(images, list) or not all(isinstance(im, dict) and "id" in im for im in images):
        raise FormatError('"images" must be a list of objects with an "id"', path)
    table = {}
    for im in images:
        size = (im.get("width"), im.get("height"))
        table[im["id"]] = (str(im.get("file_name", im["id"])), size if None not in size else None)
    return table


def _coco_person(item: Any, threshold: float, images: dict) -> PersonKeypoints:
    if not isinstance(item, dict) or "keypoints" not in item:
        raise _Bad('expected an annotation object with "keypoints"')
    kp = item["keypoints"]
    if not isinstance(kp, list) or len(kp) != 51 or not all(_is_number(v) for v in kp):
        n = len(kp) if isinstance(kp, list) else type(kp).__name__
        raise _Bad(f'"keypoints" must hold 51 numbers (x, y, v for each of the 17 COCO keypoints); got {n}')
    arr = np.asarray(kp, dtype=np.float64).reshape(17, 3)
    if not np.isfinite(arr).all():
        raise _Bad(f'"keypoints" holds a non-finite value (NaN or infinity) at keypoint {_first_bad(arr)}')
    v = arr[:, 2]
    if (v < 0).any():
        raise _Bad(f'"keypoints" holds a negative visibility or score ({v.min():g})')
    score = (v > 0).astype(np.float64) if np.isin(v, (0, 1, 2)).all() else np.minimum(v, 1.0)
    image_id = item.get("image_id", "")
    name, size = images.get(image_id, (image_id, None)) if isinstance(image_id, (int, str)) else (image_id, None)
    name = item.get("image", item.get("file_name", name))
    size = (item["width"], item["height"]) if "width" in item and "height" in item else size
    keypoints = _keypoints(lambda: from_coco(arr[:, :2], score, threshold, image_size=size))
    return _person(name, item.get("frame"), keypoints)


def _has_landmarks(d: dict) -> bool:
    return any(k in d for k in _LANDMARK_KEYS)


def _other_blazepose_person(item: Any, threshold: float) -> PersonKeypoints | None:
    if not isinstance(item, dict) or not _has_landmarks(item):
        raise _Bad(f'expected an object with "{_LANDMARK_KEYS[0]}"')
    lm = next(item[k] for k in _LANDMARK_KEYS if k in item)
    if isinstance(lm, dict) and "landmark" in lm:  # MediaPipe's MessageToDict of a NormalizedLandmarkList
        lm = lm["landmark"]
    if lm is None:
        return None
    width = item.get("width", item.get("image_width"))
    height = item.get("height", item.get("image_height"))
    if not (_is_number(width) and _is_number(height) and width > 0 and height > 0):
        raise _Bad(f"normalised landmarks need a positive image width and height; got {width!r}, {height!r}")
    if not isinstance(lm, list) or len(lm) != 33:
        raise _Bad(f"expected 33 landmarks (blazepose33), got {len(lm) if isinstance(lm, list) else type(lm).__name__}")
    rows = []
    for i, d in enumerate(lm):
        if not isinstance(d, dict) or not all(_is_number(d.get(k)) for k in ("x", "y", "visibility")):
            raise _Bad(f'landmark {i} ({BLAZEPOSE33[i]}) must be an object with numbers "x", "y", "visibility"')
        rows.append([d["x"] * width, d["y"] * height, d["visibility"]])
    arr = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise _Bad(f"landmark {_first_bad(arr)} holds a non-finite value (NaN or infinity)")
    size = (round(width), round(height))
    keypoints = _keypoints(lambda: from_blazepose(arr[:, :2], arr[:, 2], threshold, image_size=size))
    return _person(item.get("image", ""), item.get("frame"), keypoints)


def _person(name: Any, frame: Any, keypoints: Keypoints2D) -> PersonKeypoints:
    if frame is not None and (not _is_int(frame) or frame < 0):
        raise _Bad(f'"frame" must be null or an integer >= 0; got {frame!r}')
    return PersonKeypoints(str(name), frame, keypoints)


def _keypoints(make: Callable[[], Keypoints2D | None]) -> Keypoints2D | None:
    try:
        return make()
    except InputError as err:
        raise _Bad(str(err)) from None


def _number_rows(value: Any, rows: int, cols: int, what: str, described: str) -> np.ndarray:
    """A JSON list of ``rows`` lists of ``cols`` finite numbers -> (rows, cols) float64, or _Bad saying why."""
    if not isinstance(value, list) or len(value) != rows:
        got = len(value) if isinstance(value, list) else type(value).__name__
        raise _Bad(f"expected {rows} {described}, got {got}")
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != cols or not all(_is_number(v) for v in row):
            raise _Bad(f"{what}[{i}]: expected {cols} numbers, got {json.dumps(row)[:80]}")
    arr = np.asarray(value, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise _Bad(f"{what}[{_first_bad(arr)}]: a non-finite value (NaN or infinity)")
    return arr


def _first_bad(arr: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isfinite(arr).all(axis=-1))[0])


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _finite(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``value`` as a new float64 array of ``shape`` with finite entries, or InputError."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a numeric array of shape {shape}") from None
    if arr.shape != shape:
        raise InputError(f"{what} must have shape {shape}; got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{what} holds non-finite values (NaN or infinity)")
    return arr


def _joints(xy17: Any) -> np.ndarray:
    xy = np.array(xy17, dtype=np.float64)
    if xy.ndim < 2 or xy.shape[-2:] != (17, 2):
        raise InputError(f"expected (..., 17, 2) joints; got shape {xy.shape}")
    return xy


def _size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_int(s) and s > 0 for s in size)):
        raise InputError(f"image size must be (width, height), two ints > 0; got {size!r}")
    return int(size[0]), int(size[1])
