"""Released models: a trained method as a folder of its own, and the Python API that predicts with it.

A **released model** is a folder (``RUN/models/METHOD/`` when ``structpose reproduce`` writes it)::

    model.safetensors   the weights (a network's parameters and buffers, or LinKDE's arrays)
    model.json          what the weights are (see :func:`export_model` and the README for the schema)
    model.onnx          optional: the network with its centre crop and normalisation, for onnxruntime

Nothing on any load path is unpickled: the weights are safetensors, the description JSON, the configuration
YAML read with ``yaml.safe_load``, the ONNX file a protobuf; a ``.ckpt`` (a pickle) is never opened.

:func:`load` gives a :class:`PoseModel` of a released folder or of a run/seed folder (``method=``);
:meth:`PoseModel.predict` takes whole images (arrays or files) and optional person boxes, cuts the crop
the training crops were cut by (the box enlarged by the training margin, made square, black outside the
image; :func:`crop_person`, the one place that resizes), and returns a :class:`Prediction`: poses (N, 17, 3)
in mm, root-relative, camera frame (x right, y down, z forward), Human3.6M joint order.

This module imports neither torch nor anything that does: the ONNX backend (``backend="onnx"``) runs with
numpy, Pillow and onnxruntime alone. The PyTorch backend and :func:`export_model` import torch when used.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from structpose.errors import FormatError, InputError
from structpose.files import atomic_path, write_text
from structpose.images import MAX_PIXELS, as_rgb8, read_image
from structpose.skeleton import H36M, H36M_JOINTS, NUM_JOINTS

if TYPE_CHECKING:
    from structpose.data.dataset import PoseImageDataset
    from structpose.train.config import ExperimentConfig

#: ``model.json``'s ``format``, and the version this code writes and reads.
FORMAT = "structpose-model"
FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"

UNITS = "mm"
FRAME = "root-relative, camera frame: x right, y down, z forward"
#: the relative margin of the person box the embedded default's crops were cut with (SynthConfig.margin)
DEFAULT_MARGIN = 0.2

OUT_OF_DOMAIN = (
    "A network trained on rendered people is out of its domain on real photos: expect large errors on "
    "photographs of real people (for those, lift the 2D keypoints a detector finds: `structpose predict PHOTO` "
    "with the lifter shipped in the package); on crops rendered like its training data it is within the errors "
    "of its metrics."
)
_BANDAI_LICENCE = (
    "CC BY-NC 4.0: NON-COMMERCIAL use only, inherited from the Bandai-Namco-Research-Motiondataset "
    "(CC BY-NC 4.0) whose poses the training images were rendered from (the CMU poses are free for any use; "
    "the code is MIT)"
)
_CMU_LICENCE = (
    "free for any use: trained on images rendered from CMU Graphics Lab Motion Capture Database poses "
    "(free for any use; mocap.cs.cmu.edu); the code is MIT"
)
_UNKNOWN_LICENCE = (
    "unknown: the training data records no licence; the model inherits the terms of the data it was trained on"
)
#: the configuration sections each network method is built from (its "architecture")
_ARCHITECTURE = {"ours": ("cnn", "ae"), "ours_noft": ("cnn", "ae"), "cnn": ("cnn",),
                 "structnet_max": ("cnn", "structnet"), "structnet_avg": ("cnn", "structnet")}  # fmt: skip
_BACKENDS = ("torch", "onnx")


# ------------------------------------------------------------------------------------------- crops


def crop_box(height: int, width: int, box: Sequence[float] | None, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The square region of an image that becomes the network's crop.

    Args:
        height: the image's height, px.
        width: the image's width, px.
        box: the person's box ``(x, y, w, h)`` px (top-left corner and size, continuous coordinates: pixel
            ``i`` covers ``[i, i + 1)``), or None: the image is already a person-centred crop (as the
            training crops are: their box plus the margin) and is only padded to a square around its centre.
        margin: relative margin: the square's side is ``max(w, h) * (1 + 2 * margin)``, centred on the box
            (as :func:`structpose.crop.person_box` cuts the training crops).

    Returns:
        ``(x0, y0, side, side)`` float64 px; it may reach outside the image (that part is black).

    Raises:
        InputError: a box that is not 4 finite numbers with w, h > 0, lies wholly outside the image, or asks
            for a crop of more than :data:`structpose.images.MAX_PIXELS` pixels.
    """
    if box is None:
        side = max(height, width)
        return np.array([-((side - width) // 2), -((side - height) // 2), side, side], dtype=np.float64)
    try:
        x, y, w, h = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(-1))
    except (TypeError, ValueError) as err:
        raise InputError(f"a box is (x, y, w, h): 4 numbers in px; got {box!r}") from err
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        raise InputError(f"a box (x, y, w, h) needs finite numbers and w, h > 0; got {box!r}")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"the box {box!r} lies outside the {width} x {height} image")
    side = max(w, h) * (1 + 2 * margin)
    if side * side > MAX_PIXELS:
        raise InputError(f"the box {box!r} asks for a {side:.0f} px square crop, more than MAX_PIXELS allows")
    return np.array([x + w / 2 - side / 2, y + h / 2 - side / 2, side, side], dtype=np.float64)


def crop_person(
    rgb: np.ndarray, box: Sequence[float] | None, size: int, margin: float = DEFAULT_MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """Cut the network's input out of an image: the one place an input image is resized.

    The square of :func:`crop_box` is cut out (black where it leaves the image) and resized to
    ``size`` x ``size`` with Pillow's bilinear filter (antialiased when shrinking), at sub-pixel precision.

    Args:
        rgb: (H, W, 3) uint8 image.
        box: the person's box ``(x, y, w, h)`` px, or None (see :func:`crop_box`).
        size: the crop's side S, px.
        margin: the relative margin of the person box.

    Returns:
        The crop (S, S, 3) uint8 and its region ``(x0, y0, side, side)`` px in the image.
    """
    if not (isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        raise InputError(f"expected an (H, W, 3) uint8 image, got {getattr(rgb, 'shape', type(rgb).__name__)}")
    region = crop_box(rgb.shape[0], rgb.shape[1], box, margin)
    x0, y0, side = float(region[0]), float(region[1]), float(region[2])
    left, top = math.floor(x0), math.floor(y0)
    right, bottom = math.ceil(x0 + side), math.ceil(y0 + side)
    square = Image.fromarray(rgb).crop((left, top, right, bottom))  # outside the image: black
    inside = (x0 - left, y0 - top, x0 - left + side, y0 - top + side)
    out = square.resize((size, size), Image.Resampling.BILINEAR, box=inside)
    return np.asarray(out, dtype=np.uint8), region


def as_image(image: Any, index: int = 0) -> np.ndarray:
    """One input image as (H, W, 3) uint8: a file (str or Path, read by :func:`structpose.images.read_image`)
    or an array converted by :func:`structpose.images.as_rgb8` (greyscale, grey + alpha, RGB, RGBA; uint8,
    uint16 or floats in [0, 1]; alpha composited on black).

    Raises:
        InputError: (a ``ValueError``) an array of another shape or dtype; the message names image ``index``.
        FormatError: a file that cannot be decoded (the message names it).
        OSError: a file that cannot be opened.
    """
    if isinstance(image, (str, Path)):
        return read_image(image)
    try:
        return as_rgb8(np.asarray(image) if isinstance(image, (list, tuple)) else image)
    except InputError as err:
        raise InputError(f"image {index}: {err}") from None


def _image_list(images: Any) -> list:
    """The inputs of :meth:`PoseModel.predict` as a list: one path or one (H, W[, C]) array is one image,
    a 4-D array (N, H, W, C) is N images, any other sequence holds one image per item."""
    if isinstance(images, (str, Path)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, Iterable):
        return list(images)
    raise InputError(f"expected images: a list of (H, W, 3) uint8 arrays or image files, got {type(images).__name__}")


def _box_list(boxes: Any, n: int) -> list:
    """``boxes`` as one entry (None or 4 numbers) per image."""
    if boxes is None:
        return [None] * n
    items = list(boxes)
    if len(items) == 4 and n == 1 and all(isinstance(v, (int, float, np.number)) for v in items):
        items = [items]  # one box for one image
    if len(items) != n:
        raise InputError(f"{len(items)} boxes for {n} images: give one box (x, y, w, h) or None per image")
    return items


# --------------------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class Crops:
    """Network inputs cut out of images (:meth:`PoseModel.crop`).

    Attributes:
        images: (N, S, S, 3) uint8 crops.
        boxes: (N, 4) float64 ``(x, y, w, h)`` px: each image's person box (the whole image when none was
            given).
        crop_boxes: (N, 4) float64 ``(x0, y0, side, side)`` px: the square each crop was cut from.
    """

    images: np.ndarray
    boxes: np.ndarray
    crop_boxes: np.ndarray


@dataclass(frozen=True)
class Prediction:
    """3D poses predicted by a :class:`PoseModel`.

    Attributes:
        poses: (N, 17, 3) float32, mm, root-relative, camera frame (x right, y down, z forward).
        joint_names: the 17 joint names, in the order of ``poses`` (Human3.6M).
        boxes: (N, 4) float64 ``(x, y, w, h)`` px: the person box of each image (the whole image when none
            was given; the whole crop for :meth:`PoseModel.predict_crops`).
        crop_boxes: (N, 4) float64 ``(x0, y0, side, side)`` px: the square cut out and resized to S.
        model_id: the model's id (``METHOD-DIGEST``: its method and a digest of its weights).
        units: "mm".
        frame: the coordinate frame, in words.
    """

    poses: np.ndarray
    joint_names: tuple[str, ...]
    boxes: np.ndarray
    crop_boxes: np.ndarray
    model_id: str
    units: str = UNITS
    frame: str = FRAME

    def __len__(self) -> int:
        return len(self.poses)

    def to_json(self, i: int, **extra: Any) -> dict:
        """The JSON document of sample ``i`` (``structpose predict`` writes it; ``structpose view`` reads it):
        ``joint_names``, ``poses_mm`` (17, 3) rounded to 1 micrometre, ``units``, ``frame``, ``box``,
        ``crop_box``, ``model``, then ``extra``."""
        pose = np.round(self.poses[i].astype(np.float64), 3).tolist()
        return {"joint_names": list(self.joint_names), "poses_mm": pose,
                "units": self.units, "frame": self.frame, "box": [round(float(v), 3) for v in self.boxes[i]],
                "crop_box": [round(float(v), 3) for v in self.crop_boxes[i]], "model": self.model_id,
                **extra}  # fmt: skip


class Backend(Protocol):
    """What runs a model: uint8 crops (N, S, S, 3) -> poses (N, 17, 3) float32 mm."""

    name: str

    def predict(self, crops: np.ndarray, batch_size: int, device: str | None) -> np.ndarray: ...


@dataclass
class PoseModel:
    """A trained method ready to predict (see :func:`load`).

    Attributes:
        card: the model's description (the contents of ``model.json``; for a run folder, the part of it that
            can be known without the training data).
        backend: what runs it (``backend.name``: "torch" or "onnx").
        path: the folder it was loaded from.
        device: the default device of :meth:`predict` (None: CUDA when available, else the CPU).
    """

    card: dict
    backend: Backend
    path: Path
    device: str | None = None
    _joint_names: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(self.card["skeleton"]["joint_names"])
        if names != H36M_JOINTS:
            raise FormatError(f"joint_names {list(names)} are not the 17 Human3.6M joints in order", self.path)
        self._joint_names = names

    @property
    def id(self) -> str:
        """``METHOD-DIGEST``: the method and the first 12 hex digits of a digest of the weights' values."""
        return str(self.card["id"])

    @property
    def method(self) -> str:
        return str(self.card["method"]["key"])

    @property
    def image_size(self) -> int:
        """S: the side (px) of the square crops the model takes."""
        return int(self.card["input"]["image_size"])

    @property
    def margin(self) -> float:
        """The relative margin a person box is enlarged by (that of the training crops)."""
        return float(self.card["input"]["person_box_margin"])

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._joint_names

    def crop(self, images: Any, boxes: Any = None) -> Crops:
        """Cut the network's crops out of ``images`` (see :meth:`predict` for the arguments)."""
        items = _image_list(images)
        box_items = _box_list(boxes, len(items))
        crops, used, regions = [], [], []
        for i, (item, box) in enumerate(zip(items, box_items, strict=True)):
            rgb = as_image(item, i)
            crop, region = crop_person(rgb, box, self.image_size, self.margin)
            crops.append(crop)
            regions.append(region)
            used.append([0.0, 0.0, rgb.shape[1], rgb.shape[0]] if box is None else np.asarray(box, np.float64))
        size = self.image_size
        empty = np.zeros((0, size, size, 3), np.uint8)
        return Crops(np.stack(crops) if crops else empty, np.asarray(used, np.float64).reshape(-1, 4),
                     np.asarray(regions, np.float64).reshape(-1, 4))  # fmt: skip

    def predict(self, images: Any, boxes: Any = None, batch_size: int = 64, device: str | None = None) -> Prediction:
        """3D poses of the people in ``images``.

        Args:
            images: images as (H, W, 3) uint8 RGB arrays (greyscale (H, W), RGBA (H, W, 4), uint16 and [0, 1]
                float arrays are converted, see :func:`as_image`) or image files; a list, an (N, H, W, C)
                array, or one image.
            boxes: one person box ``(x, y, w, h)`` px per image (or None for an image that already is a
                person-centred crop); None: every image is one. A box is enlarged by the training margin,
                made square and cut out, black where it leaves the image (:func:`crop_person`).
            batch_size: crops per forward pass.
            device: "cpu", "cuda", "cuda:1", ...; default: the model's, else CUDA when available.

        Returns:
            The :class:`Prediction` (poses (N, 17, 3) float32 mm).

        Raises:
            InputError: (a ``ValueError``) an image of another shape or dtype, or a bad box; the message
                says what was expected.
            FormatError: an image file that cannot be decoded.
        """
        crops = self.crop(images, boxes)
        poses = self._run(crops.images, batch_size, device)
        return Prediction(poses, self.joint_names, crops.boxes, crops.crop_boxes, self.id)

    def predict_crops(self, crops: np.ndarray, batch_size: int = 64, device: str | None = None) -> Prediction:
        """3D poses of already-cut crops (as the training crops: uint8 (N, S, S, 3) RGB, S = :attr:`image_size`).

        Raises:
            InputError: another shape, side or dtype.
        """
        crops = np.asarray(crops)
        size = self.image_size
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise InputError(f"expected crops (N, {size}, {size}, 3) for this model, got shape {crops.shape}; "
                             "use predict() for images of other sizes")  # fmt: skip
        if crops.dtype != np.uint8:
            raise InputError(f"expected uint8 crops, got {crops.dtype}; predict() converts other dtypes")
        whole = np.tile(np.array([0.0, 0.0, size, size]), (len(crops), 1))
        return Prediction(self._run(crops, batch_size, device), self.joint_names, whole, whole.copy(), self.id)

    def predict_dataset(
        self, dataset: PoseImageDataset, batch_size: int = 64, device: str | None = None, chunk: int = 1024
    ) -> Prediction:
        """:meth:`predict_crops` of every crop of a :class:`~structpose.data.dataset.PoseImageDataset`, in its
        order, read ``chunk`` at a time."""
        if dataset.image_size != self.image_size:
            raise InputError(f"the dataset's crops are {dataset.image_size} px, the model takes {self.image_size}")
        parts = [self.predict_crops(dataset.images(np.arange(lo, min(lo + chunk, len(dataset)))), batch_size, device)
                 for lo in range(0, len(dataset), chunk)]  # fmt: skip
        if not parts:
            return self.predict_crops(np.zeros((0, self.image_size, self.image_size, 3), np.uint8))
        return Prediction(np.concatenate([p.poses for p in parts]), self.joint_names,
                          np.concatenate([p.boxes for p in parts]), np.concatenate([p.crop_boxes for p in parts]),
                          self.id)  # fmt: skip

    def _run(self, crops: np.ndarray, batch_size: int, device: str | None) -> np.ndarray:
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if len(crops) == 0:
            return np.zeros((0, NUM_JOINTS, 3), np.float32)
        poses = self.backend.predict(np.ascontiguousarray(crops), batch_size, device or self.device)
        return np.asarray(poses, dtype=np.float32).reshape(len(crops), NUM_JOINTS, 3)


# ------------------------------------------------------------------------------------------ loading


def load(path: str | Path, method: str = "ours", backend: str = "torch", device: str | None = None) -> PoseModel:
    """A trained model, ready to predict.

    Args:
        path: a released-model folder (with ``model.json``; or that file), or a ``structpose reproduce`` run
            folder or one of its ``seedN/`` folders.
        method: for a run or seed folder, which method (a key of
            :data:`~structpose.train.methods.METHODS`: "ours", "cnn", "ours_noft", "linkde_knn", ...);
            a released folder holds one method and ignores it.
        backend: "torch" (PyTorch) or "onnx" (onnxruntime, torch not needed; a released folder exported
            with ``--onnx``).
        device: the default device of :meth:`PoseModel.predict`.

    Returns:
        The :class:`PoseModel`.

    Raises:
        InputError: an unknown backend or method, or a folder that is neither a released model nor a run.
        FormatError: a ``model.json`` or weights file that is not what the format says.
        FileNotFoundError: the method's files are missing.
    """
    path = Path(path)
    if backend not in _BACKENDS:
        raise InputError(f"unknown backend {backend!r}; known: {', '.join(_BACKENDS)}")
    folder = path.parent if path.name == MODEL_JSON else path
    if (folder / MODEL_JSON).is_file():
        card = read_card(folder)
        if card["input"].get("kind") == "keypoints2d":  # a lifter (structpose.lift.release): 2D keypoints in
            from structpose.lift.release import load_lifter

            return load_lifter(folder, card)
        chosen = _onnx_backend(folder, card) if backend == "onnx" else _torch_released(folder, card)
        return PoseModel(card, chosen, folder, device)
    if not folder.exists():
        raise InputError("no such folder; give a released model folder (model.json) or a reproduce run folder", path)
    if backend == "onnx":
        raise InputError(f"a run folder has no ONNX model: `structpose export {path} --model {method} --onnx` "
                         "writes one, then load that folder", path)  # fmt: skip
    if not (folder / "config.yaml").is_file() and not any(folder.glob("seed*/config.yaml")):
        raise InputError(f"neither a released model ({MODEL_JSON}) nor a run or seed folder (config.yaml)", path)
    card, chosen = _from_run(folder, method)
    return PoseModel(card, chosen, folder, device)


def read_card(folder: str | Path) -> dict:
    """The ``model.json`` of a released folder, checked for the fields every loader needs.

    Raises:
        FormatError: not JSON, another format or a newer format version, or a missing field.
    """
    path = Path(folder) / MODEL_JSON
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(f"not valid JSON ({err})", path) from err
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise FormatError(f"not a structpose model description (its 'format' is not {FORMAT!r})", path)
    if not isinstance(card.get("format_version"), int) or card["format_version"] > FORMAT_VERSION:
        raise FormatError(f"format_version {card.get('format_version')!r}; this structpose reads up to "
                          f"{FORMAT_VERSION}: upgrade structpose", path)  # fmt: skip
    for key in ("id", "method", "skeleton", "input", "files"):
        if key not in card:
            raise FormatError(f"has no {key!r}", path)
    return card


def _check_file(folder: Path, card: dict, kind: str) -> Path:
    """The released file ``kind`` ("weights" or "onnx"), present and with the SHA-256 ``model.json`` names."""
    name = card["files"].get(kind)
    if not name:
        hint = " (export it with --onnx)" if kind == "onnx" else ""
        raise FormatError(f"names no {kind} file{hint}", folder / MODEL_JSON)
    path = folder / Path(str(name)).name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (named by {folder / MODEL_JSON})")
    want = card["files"].get(f"{kind}_sha256")
    if want and file_sha256(path) != want:
        raise FormatError(f"does not match the SHA-256 in {MODEL_JSON}: a damaged or replaced file", path)
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_digest(arrays: Mapping[str, Any]) -> str:
    """SHA-256 of named arrays' names, dtypes, shapes and values (numpy arrays or torch tensors), sorted by
    name: the same for a network's state dict however its file was written."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = arrays[name]
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu().contiguous().numpy()
        value = np.ascontiguousarray(value)
        digest.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ backends


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"the ONNX backend needs onnxruntime ({err}): pip install 'structpose[onnx]'") from err
    return onnxruntime


class OnnxBackend:
    """onnxruntime on ``model.onnx``: input ``images`` uint8 (B, 3, S, S), output ``poses_mm`` (B, 17, 3).
    ``threads``: onnxruntime's intra-op threads (None: its default, one per core), read when a session starts."""

    name = "onnx"

    def __init__(self, path: Path, threads: int | None = None):
        self.path = Path(path)
        self.threads = threads
        self._sessions: dict[str, Any] = {}

    def _session(self, device: str | None) -> Any:
        ort = _onnxruntime()
        available = ort.get_available_providers()
        cuda = "CUDAExecutionProvider" in available
        if device is not None and str(device).startswith("cuda") and not cuda:
            raise InputError(f"device {device!r}: this onnxruntime has no CUDA provider (it has "
                             f"{', '.join(available)}); install onnxruntime-gpu or use device='cpu'")  # fmt: skip
        use_cuda = cuda and (device is None or str(device).startswith("cuda"))
        key = "cuda" if use_cuda else "cpu"
        if key not in self._sessions:
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
            options = ort.SessionOptions()
            if self.threads is not None:
                options.intra_op_num_threads = self.threads
            try:
                self._sessions[key] = ort.InferenceSession(str(self.path), options, providers=providers)
            except Exception as err:  # onnxruntime raises its own exception types for a damaged file
                raise FormatError(f"onnxruntime cannot load it ({type(err).__name__}: {err})", self.path) from err
        return self._sessions[key]

    def predict(self, crops: np.ndarray, batch_size: int, device: str | None) -> np.ndarray:
        session = self._session(device)
        nchw = np.ascontiguousarray(crops.transpose(0, 3, 1, 2))
        parts = [session.run(["poses_mm"], {"images": nchw[lo : lo + batch_size]})[0]
                 for lo in range(0, len(nchw), batch_size)]  # fmt: skip
        return np.concatenate(parts).astype(np.float32)


class TorchNetBackend:
    """A pose network under ``torch.inference_mode``, with its evaluation preprocessing
    (:class:`~structpose.train.export.PosePredictor`: centre crop, normalisation)."""

    name = "torch"

    def __init__(self, net: Any):
        self.net = net.eval()

    def predict(self, crops: np.ndarray, batch_size: int, device: str | None) -> np.ndarray:
        import torch

        from structpose.train.export import PosePredictor

        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        predictor = PosePredictor(self.net.to(dev)).eval()
        out = []
        with torch.inference_mode():
            for lo in range(0, len(crops), batch_size):
                batch = torch.from_numpy(crops[lo : lo + batch_size]).permute(0, 3, 1, 2).contiguous()
                out.append(predictor(batch.to(dev)).float().cpu())
        return torch.cat(out).numpy()


class HogBackend:
    """A regressor on HOG descriptors of the whole crop (LinKDE), on the CPU."""

    name = "torch"

    def __init__(self, method: Any):
        self.method = method

    def predict(self, crops: np.ndarray, batch_size: int, device: str | None) -> np.ndarray:
        if device is not None and not str(device).startswith("cpu"):
            raise InputError(f"device {device!r}: LinKDE runs on the CPU only")
        chunk = max(batch_size, 256)
        return np.concatenate([self.method.predict(crops[lo : lo + chunk]) for lo in range(0, len(crops), chunk)])


def _onnx_backend(folder: Path, card: dict) -> OnnxBackend:
    if card["method"].get("kind") != "net":
        raise InputError(f"{card['method']['key']} is not a network: it has no ONNX form; use backend='torch'",
                         folder)  # fmt: skip
    return OnnxBackend(_check_file(folder, card, "onnx"))


def _torch_released(folder: Path, card: dict) -> Backend:
    """The PyTorch backend of a released folder: the architecture rebuilt from its configuration, the weights
    loaded from safetensors (strict), their digest checked against the model's id."""
    weights = _check_file(folder, card, "weights")
    key = str(card["method"]["key"])
    if card["method"].get("kind") == "hog":
        return HogBackend(_released_linkde(weights, card))
    from safetensors.torch import load_model

    from structpose.train.methods import build_net

    cfg = config_from_yaml(str(card.get("config", "")), folder / MODEL_JSON)
    net = build_net(key, cfg)
    try:
        load_model(net, str(weights), strict=True)
    except Exception as err:  # safetensors' own error type, or a state-dict mismatch (RuntimeError)
        raise FormatError(f"not the weights of a {key!r} network as {MODEL_JSON} describes it "
                          f"({type(err).__name__}: {err})", weights) from err  # fmt: skip
    _check_digest(key, net.state_dict(), card, weights)
    return TorchNetBackend(net.eval())


def _released_linkde(weights: Path, card: dict) -> Any:
    from safetensors.numpy import load_file

    from structpose.models.linkde import LinKDE, LinKDEConfig
    from structpose.train.methods import HogMethod

    try:
        arrays = load_file(str(weights))
    except Exception as err:  # safetensors' own error type
        raise FormatError(f"not a safetensors file ({type(err).__name__}: {err})", weights) from err
    _check_digest(str(card["method"]["key"]), arrays, card, weights)
    return HogMethod(LinKDE(LinKDEConfig(**card["architecture"]["linkde"])).load_state_dict(arrays))


def _check_digest(key: str, arrays: Mapping[str, Any], card: dict, weights: Path) -> None:
    if f"{key}-{weights_digest(arrays)[:12]}" != card["id"]:
        raise FormatError(f"its values do not match the model id {card['id']!r} of {MODEL_JSON}", weights)


def config_from_yaml(text: str, where: str | Path = "config") -> ExperimentConfig:
    """An :class:`~structpose.train.config.ExperimentConfig` of resolved YAML text (validated as
    :func:`~structpose.train.config.load_config` validates a file)."""
    from structpose.errors import ConfigError
    from structpose.train.config import load_config

    if not text.strip():
        raise FormatError("has no 'config' (the resolved configuration the network was built from)", where)
    with tempfile.TemporaryDirectory(prefix="structpose-config-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            return load_config(path)
        except ConfigError as err:
            raise FormatError(f"its configuration cannot be used ({err})", where) from err


# --------------------------------------------------------------------------- run folders and export


def _from_run(path: Path, key: str) -> tuple[dict, Backend]:
    """The card (without the training data's provenance) and the PyTorch backend of method ``key`` of a run
    or seed folder, rebuilt by :func:`~structpose.train.methods.load_method`."""
    from structpose.train.config import load_config
    from structpose.train.layout import pipeline_folder
    from structpose.train.methods import METHODS, NetMethod, load_method

    if key not in METHODS:
        raise InputError(f"unknown method {key!r}; known: {', '.join(METHODS)}")
    folder = pipeline_folder(path, METHODS[key].stage)
    method = load_method(folder.root, key)
    cfg = load_config(folder.config)
    card = _card(key, cfg, method, folder.root)
    backend = TorchNetBackend(method.net) if isinstance(method, NetMethod) else HogBackend(method)
    return card, backend


def _state(method: Any) -> dict[str, Any]:
    """The arrays a method's weights file holds: a network's state dict, or LinKDE's arrays."""
    from structpose.train.methods import NetMethod

    return method.net.state_dict() if isinstance(method, NetMethod) else method.model.state_dict()


def _card(key: str, cfg: ExperimentConfig, method: Any, folder: Path) -> dict:
    """What can be said of method ``key`` of pipeline folder ``folder`` without its training data beyond the
    store's attributes: format, id, method, architecture, configuration, skeleton, output and input."""
    from structpose.train.methods import METHODS

    spec = METHODS[key]
    attrs = _store_attrs(cfg.data.root)
    card: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                            "id": f"{key}-{weights_digest(_state(method))[:12]}",
                            "method": {"key": key, "label": spec.label, "kind": spec.kind, "stage": spec.stage,
                                       "description": spec.description},
                            "architecture": _architecture(key, cfg, method, folder), "config": cfg.to_yaml(),
                            "skeleton": {"name": "Human3.6M, 17 joints", "joint_names": list(H36M.names),
                                         "parents": list(H36M.parents), "left": list(H36M.left),
                                         "right": list(H36M.right), "root": H36M.names[H36M.root]},
                            "output": {"units": UNITS, "frame": FRAME, "shape": [NUM_JOINTS, 3]},
                            "input": _input_section(cfg, spec.kind, _margin(attrs))}  # fmt: skip
    return card


def _architecture(key: str, cfg: ExperimentConfig, method: Any, folder: Path) -> dict:
    tree = cfg.to_dict()
    if key in _ARCHITECTURE:
        return {section: tree.get(section) for section in _ARCHITECTURE[key]}
    if hasattr(method, "model"):  # a HOG regressor: its chosen configuration, from selection.json
        from structpose.train.layout import SeedLayout
        from structpose.train.methods import METHODS

        chosen = json.loads(SeedLayout(folder).selection(METHODS[key].stage).read_text())["chosen"]
        return {"features": "HOG of the whole crop (structpose.models.features.hog, default cells, 9 bins)",
                "linkde": chosen}  # fmt: skip
    return {section: tree.get(section) for section in ("cnn",)}


def _input_section(cfg: ExperimentConfig, kind: str, margin: float) -> dict:
    section: dict[str, Any] = {"image_size": cfg.cnn.in_size, "channels": "RGB", "dtype": "uint8",
                               "layout": "crops (N, S, S, 3) to predict_crops; the ONNX input 'images' is "
                                         "(B, 3, S, S) uint8",
                               "person_box_margin": margin,
                               "crop": "the person box (x, y, w, h) enlarged to a square of side "
                                       "max(w, h) * (1 + 2 * margin) around its centre, black outside the "
                                       "image; no box: the image itself is a person-centred crop, padded to "
                                       "a square",
                               "resize": "bilinear (Pillow), once, to S x S"}  # fmt: skip
    if kind == "net":
        from structpose.models.cnn import IMAGENET_MEAN, IMAGENET_STD

        section["center_crop"] = cfg.cnn.crop
        section["normalisation"] = {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                                    "formula": "(pixel / 255 - mean) / std per channel, after the crop"}  # fmt: skip
    else:
        section["features"] = "HOG of the whole S x S crop; no centre crop, no normalisation"
    return section


def _store_attrs(root: str | Path) -> dict:
    """The provenance attributes of the first training shard of a dataset directory ({} when unreadable)."""
    from structpose.data.store import list_shards, open_store
    from structpose.errors import StoreError

    try:
        shards = list_shards(root, "train")
        if not shards:
            return {}
        with open_store(shards[0]) as store:
            return dict(store.attrs)
    except (StoreError, OSError, ValueError, KeyError):
        return {}


def _margin(attrs: dict) -> float:
    """The person-box margin a store's crops were cut with: a rendered store's config, an import's, else 0.2."""
    for key in ("config", "import_config"):
        value = attrs.get(key)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                continue
        if isinstance(value, dict) and isinstance(value.get("margin"), (int, float)):
            return float(value["margin"])
    return DEFAULT_MARGIN


def _licence(attrs: dict) -> str:
    sources = [s.strip() for s in str(attrs.get("sources", "")).split(",")]
    if "bandai" in sources:
        return _BANDAI_LICENCE
    if attrs.get("created_by") == "structpose data synth":
        return _CMU_LICENCE
    if attrs.get("license"):
        return f"inherits the terms of its training data: {attrs['license']}"
    return _UNKNOWN_LICENCE


def _training_data(cfg: ExperimentConfig, attrs: dict) -> dict:
    keep = ("created_by", "preset", "source", "sources", "license", "protocol", "renderer", "renderer_version",
            "body_bank_sha256", "pose_library", "pose_library_sha256")  # fmt: skip
    return {"root": str(cfg.data.root), "split": "train", "found": bool(attrs), "license": "not recorded by the store",
            **{k: attrs[k] for k in keep if k in attrs}}  # fmt: skip


def _benchmark(cfg: ExperimentConfig, attrs: dict, results: dict | None) -> dict:
    from structpose.metrics import METRIC_CONVENTIONS

    version = (results or {}).get("benchmark")
    if version is None:
        version = _benchmark_version(cfg)
    return {"version": version, "protocol": attrs.get("protocol", cfg.data.protocol),
            "renderer": attrs.get("renderer", "capsule" if attrs.get("renderer_version") else None),
            "renderer_version": attrs.get("renderer_version"), "metric_conventions": METRIC_CONVENTIONS}  # fmt: skip


def _benchmark_version(cfg: ExperimentConfig) -> str | None:
    """:func:`structpose.reproduce.benchmark_version` of the run's test split, None when it cannot be read."""
    from structpose.data.dataset import PoseImageDataset
    from structpose.errors import StoreError
    from structpose.reproduce import benchmark_version

    try:
        return benchmark_version(PoseImageDataset(cfg.data.root, "test"), cfg)
    except (StoreError, OSError, ValueError, IndexError, KeyError):
        return None


def _run_root(folder: Path) -> Path:
    """The run folder of a pipeline folder (its parent when it is a ``seedN/``)."""
    return folder.parent if folder.name.startswith("seed") and (folder.parent / "config.yaml").is_file() else folder


def _metrics(run_root: Path, folder: Path, key: str) -> tuple[dict | None, dict | None]:
    """``results.json`` of the run and the test metrics of ``key`` of this seed in it (None when absent)."""
    path = run_root / "results.json"
    if not path.is_file():
        return None, None
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, None
    seeds = sorted((p for p in run_root.glob("seed*") if p.name[4:].isdigit()), key=lambda p: int(p.name[4:]))
    seed = next((i for i, p in enumerate(seeds) if p.resolve() == folder.resolve()), 0)
    sets = {}
    for name, section in results.items():
        runs = section.get("methods", {}).get(key) if isinstance(section, dict) else None
        if runs and seed < len(runs):
            sets[name] = {"mean_over_actions": runs[seed].get("mean"),
                          "mean_mpjpe_over_seeds": float(np.mean([r["mean"]["mpjpe"] for r in runs])),
                          "seeds": len(runs)}  # fmt: skip
    metrics = {"source": str(path), "seed": seed, "units": "mm (limb ratios unitless)", "sets": sets}
    return results, (metrics if sets else None)


def export_model(run_dir: str | Path, method: str = "ours", out: str | Path | None = None, onnx: bool = False) -> Path:
    """Write method ``method`` of a run (or seed) folder as a released model folder.

    Writes ``model.safetensors`` (the weights), optionally ``model.onnx`` (networks only) and, last,
    ``model.json``, each atomically. ``model.json``: ``format``, ``format_version``, ``id``, ``method`` (key,
    label, kind, stage, description), ``architecture`` (the configuration sections the network is built
    from, or LinKDE's chosen configuration), ``config`` (the whole resolved YAML), ``skeleton`` (joint names,
    parents, left, right, root), ``output`` (units, frame), ``input`` (image size S, centre crop,
    normalisation, person-box margin, crop and resize rules), ``training_data`` (data root and the store's
    provenance: created_by, sources, licence, ...), ``license`` (what the model inherits from its data: CC BY-NC
    4.0 for the default pose library's Bandai-Namco poses), ``benchmark`` (version, protocol, renderer,
    metric conventions), ``metrics`` (this seed's test metrics from the run's ``results.json``, or null),
    ``model_card`` (intended use and the out-of-domain warning), ``files`` (names and SHA-256) and ``source``.

    Args:
        run_dir: a ``structpose reproduce`` run folder, or one of its ``seedN/`` folders (the first seed that
            has the method is taken from a run folder).
        method: a key of :data:`~structpose.train.methods.METHODS` ("ours", "cnn", "ours_noft",
            "linkde_knn", ...).
        out: the folder to write (default ``RUN/models/METHOD``).
        onnx: also write ``model.onnx`` (uint8 (B, 3, S, S) -> (B, 17, 3) mm, dynamic batch).

    Returns:
        ``out``.

    Raises:
        InputError: unknown method, or ``onnx`` for a method that is not a network (LinKDE's pre-image is a
            search over its training poses: it has no ONNX form).
        FileNotFoundError: the method did not finish in that folder.
    """
    from structpose.train.config import load_config
    from structpose.train.layout import RunLayout, pipeline_folder
    from structpose.train.methods import METHODS, load_method

    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if onnx and METHODS[method].kind != "net":
        raise InputError(f"{method!r} ({METHODS[method].label}) is not a network: it has no ONNX form (its "
                         "pre-image searches its training poses); export it without --onnx")  # fmt: skip
    run_dir = Path(run_dir)
    folder = pipeline_folder(run_dir, METHODS[method].stage).root
    out = Path(out) if out is not None else RunLayout(_run_root(folder)).model(method)
    loaded = load_method(folder, method)
    cfg = load_config(folder / "config.yaml")
    card = _card(method, cfg, loaded, folder)
    attrs = _store_attrs(cfg.data.root)
    results, metrics = _metrics(_run_root(folder), folder, method)
    card |= {"training_data": _training_data(cfg, attrs), "license": _licence(attrs),
             "benchmark": _benchmark(cfg, attrs, results), "metrics": metrics,
             "model_card": _model_card(card), "source": _source(folder, results)}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    _write_weights(loaded, out / WEIGHTS)
    files = {"weights": WEIGHTS, "weights_sha256": file_sha256(out / WEIGHTS), "onnx": None, "onnx_sha256": None}
    if onnx:
        from structpose.train.export import export_onnx

        meta = {"structpose_model_id": card["id"], "units": UNITS, "frame": FRAME,
                "joint_names": ",".join(H36M_JOINTS)}  # fmt: skip
        try:
            export_onnx(loaded.net, out / ONNX, cfg.cnn.in_size, metadata=meta)
        except (RuntimeError, ValueError, TypeError) as err:  # what the exporter raises on an unsupported graph
            raise InputError(f"{method!r}: the network could not be exported to ONNX ({type(err).__name__}: "
                             f"{err}); export it without --onnx") from err  # fmt: skip
        files |= {"onnx": ONNX, "onnx_sha256": file_sha256(out / ONNX)}
    else:
        (out / ONNX).unlink(missing_ok=True)  # a stale one of an earlier export would not match
    card["files"] = files
    write_text(out / MODEL_JSON, json.dumps(card, indent=1) + "\n")
    return out


def _write_weights(method: Any, path: Path) -> None:
    from structpose.train.methods import NetMethod

    if isinstance(method, NetMethod):
        from safetensors.torch import save_model

        with atomic_path(path) as tmp:
            save_model(method.net, str(tmp))
        return
    from safetensors.numpy import save_file

    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in method.model.state_dict().items()}, str(tmp))


def _model_card(card: dict) -> dict:
    return {"summary": f"{card['method']['label']}: {card['method']['description']}; predicts the 3D pose "
                       f"(17 Human3.6M joints, {UNITS}, {FRAME}) of the person in an RGB crop",
            "intended_use": "research on 3D human pose from images; crops rendered like the training data "
                            "(or a person box on an image, see 'input')",
            "out_of_domain": OUT_OF_DOMAIN}  # fmt: skip


def _source(folder: Path, results: dict | None) -> dict:
    from structpose import __version__

    results = results or {}
    return {"pipeline_folder": str(folder), "structpose_version": __version__,
            "git_commit": results.get("git_commit", ""), "preset": results.get("preset", "")}  # fmt: skip
