"""``structpose predict``: 3D poses of the people in your own images and videos, with a trained model.

Two ways in:

- ``--model PATH`` (:func:`predict_inputs`): a released model (``structpose export``) or a run folder, on
  images and videos, each with an optional person box. Outputs, per image, ``NAME.json`` (joint names,
  poses in mm, units, frame, the box, the model id: what ``structpose view`` reads) and ``NAME.png`` (the
  crop beside the 3D skeleton from two viewpoints), and ``poses.npz`` of all images; per video,
  ``NAME.json`` and ``NAME.npz`` (per-frame poses) and ``NAME.mp4`` (or ``.gif``: the frames beside the
  skeleton).
- ``--run RUN`` (:func:`predict_images`, as before): a run's network on person-centred crops, into
  ``poses.npz`` and ``poses.png``.

Images are read by the rules of :mod:`structpose.images` (EXIF orientation applied, 16-bit and float images
scaled, alpha composited on black); crops are cut by :func:`structpose.release.crop_person`. A file that
cannot be read (missing, empty, truncated, corrupt, too large) is reported by path and skipped; the others
still go through. Every output is written atomically.

``structpose data samples STORE`` (:func:`write_samples`) writes held-out inputs to try it on: test crops
as PNG files and a short clip of a held-out sequence rendered by structpose, with their ground truth.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

from structpose.errors import FormatError, InputError
from structpose.files import atomic_path, write_text
from structpose.images import read_image
from structpose.release import FRAME, UNITS, PoseModel, Prediction, crop_person

if TYPE_CHECKING:
    import torch

    from structpose.train.config import ExperimentConfig

#: file suffixes read as videos when they are not images (an animated GIF is a video too)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")
#: the height (px) of the frames and skeleton panels of an output video
PANEL = 256
#: half the side (mm) of the square a video's skeleton panels show around the root
HALF_MM = 1000.0


# ------------------------------------------------------------------------------- --model: any input


@dataclass
class PredictOutputs:
    """What :func:`predict_inputs` did: the files written and one line per input that failed (``PATH: why``)."""

    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def predict_inputs(
    model: PoseModel,
    inputs: list[Path],
    out: Path,
    boxes: list | None = None,
    batch_size: int = 64,
    device: str | None = None,
    video_format: str = "mp4",
    progress: bool = True,
) -> PredictOutputs:
    """Predict the 3D pose in each image and each video frame of ``inputs``; write the outputs into ``out``.

    Args:
        model: the model (:func:`structpose.load`).
        inputs: image or video files. A file is an image when :func:`structpose.images.read_image` reads it
            (an animated GIF excepted), else a video when its suffix is one of :data:`VIDEO_SUFFIXES`.
        out: the output folder (see the module docstring for what it receives).
        boxes: None (each image is a person-centred crop), one box ``(x, y, w, h)`` px for every input, or
            one box (or None) per input; a video's box holds for all its frames.
        batch_size: crops per forward pass.
        device: "cpu", "cuda", ...; default: CUDA when available.
        video_format: "mp4" (H.264 when PyAV has it, else MPEG-4 part 2) or "gif".

    Returns:
        The files written and the problems met (one line per input that could not be read).
    """
    if video_format not in ("mp4", "gif"):
        raise InputError(f"video_format must be 'mp4' or 'gif', got {video_format!r}")
    boxes = _input_boxes(boxes, len(inputs))
    out = Path(out)
    done = PredictOutputs()
    names = _Names()
    images = _ImageBatch(model, out, batch_size, device, done, names)
    for path, box in zip(map(Path, inputs), boxes, strict=True):
        kind, rgb, problem = classify(path)
        if kind == "image":
            images.add(path, rgb, box)
        elif kind == "video":
            try:
                done.written += predict_video(model, path, out, names.take(path), box, batch_size, device,
                                              video_format, progress)  # fmt: skip
            except (FormatError, InputError) as err:  # their messages name the file
                done.problems.append(_named(err, path))
            except OSError as err:
                done.problems.append(f"{path}: cannot read this video ({err.strerror or err})")
            except ImportError as err:  # PyAV is optional
                done.problems.append(f"{path}: {err}")
        else:
            done.problems.append(problem)
    images.finish()
    return done


def _input_boxes(boxes: list | None, n: int) -> list:
    if boxes is None or len(boxes) == 0:
        return [None] * n
    if len(boxes) == 1:
        return list(boxes) * n
    if len(boxes) != n:
        raise InputError(f"{len(boxes)} boxes for {n} inputs: give one box for all of them, or one per input")
    return list(boxes)


def _named(err: Exception, path: Path) -> str:
    text = str(err)
    return text if text.startswith(str(path)) else f"{path}: {text}"


def classify(path: Path) -> tuple[str, np.ndarray | None, str]:
    """Whether ``path`` is an image (then its pixels), a video, or unreadable (then why).

    Returns:
        ``("image", (H, W, 3) uint8, "")``, ``("video", None, "")`` or ``("bad", None, "PATH: why")``.
    """
    suffix = path.suffix.lower()
    try:
        rgb = read_image(path)
    except FormatError as err:
        if suffix in VIDEO_SUFFIXES:
            return "video", None, ""
        return "bad", None, str(err)
    except OSError as err:
        return "bad", None, f"{path}: cannot open this file ({err.strerror or err}); check the path"
    if suffix == ".gif" and _frame_count(path) > 1:
        return "video", None, ""
    return "image", rgb, ""


def _frame_count(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except (OSError, ValueError):
        return 1


class _Names:
    """Output names: each input's stem, made unique (``x``, ``x-2``, ...); ``poses`` is kept for the npz."""

    def __init__(self) -> None:
        self.used = {"poses"}

    def take(self, path: Path) -> str:
        stem = path.stem or "input"
        name, k = stem, 1
        while name in self.used:
            k += 1
            name = f"{stem}-{k}"
        self.used.add(name)
        return name


@dataclass
class _ImageBatch:
    """Images cut into crops as they come (their full pixels are not kept), predicted ``batch_size`` at a time;
    at the end, ``poses.npz`` of all of them."""

    model: PoseModel
    out: Path
    batch_size: int
    device: str | None
    done: PredictOutputs
    names: _Names
    pending: list[tuple[Path, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    results: list[tuple[str, Prediction]] = field(default_factory=list)

    def add(self, path: Path, rgb: np.ndarray, box: Any) -> None:
        try:
            crops = self.model.crop([rgb], [box])
        except InputError as err:
            self.done.problems.append(f"{path}: {err}")
            return
        self.pending.append((path, crops.images[0], crops.boxes[0], crops.crop_boxes[0]))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        paths, crops, boxes, regions = (list(v) for v in zip(*self.pending, strict=True))
        self.pending = []
        pred = self.model.predict_crops(np.stack(crops), self.batch_size, self.device)
        pred = Prediction(pred.poses, pred.joint_names, np.stack(boxes), np.stack(regions), pred.model_id)
        for i, path in enumerate(paths):
            self.done.written += write_image_outputs(self.model, pred, i, crops[i], path, self.out,
                                                     self.names.take(path))  # fmt: skip
            self.results.append((str(path), _row(pred, i)))

    def finish(self) -> None:
        self.flush()
        if self.results:
            self.done.written.append(_write_npz(self.out / "poses.npz", self.results, self.model))


def _row(pred: Prediction, i: int) -> Prediction:
    return Prediction(pred.poses[i : i + 1], pred.joint_names, pred.boxes[i : i + 1], pred.crop_boxes[i : i + 1],
                      pred.model_id)  # fmt: skip


def _write_npz(path: Path, results: list[tuple[str, Prediction]], model: PoseModel, **extra: Any) -> Path:
    """``poses`` (N, 17, 3) float32 mm, ``names``, ``boxes``, ``crop_boxes`` (N, 4) px, ``joint_names``, ``model``."""
    names = [n for n, _ in results]
    poses = np.concatenate([p.poses for _, p in results])
    with atomic_path(path) as tmp, open(tmp, "wb") as fp:  # a file object: savez adds no suffix
        np.savez(fp, poses=poses, names=np.array(names), joint_names=np.array(model.joint_names),
                 boxes=np.concatenate([p.boxes for _, p in results]),
                 crop_boxes=np.concatenate([p.crop_boxes for _, p in results]), model=model.id, units=UNITS,
                 **extra)  # fmt: skip
    return path


def write_image_outputs(
    model: PoseModel, pred: Prediction, i: int, crop: np.ndarray, path: Path, out: Path, name: str
) -> list[Path]:
    """``NAME.json`` (:meth:`~structpose.release.Prediction.to_json` of sample ``i``, with the image's path)
    and ``NAME.png`` (the crop beside the 3D skeleton seen from the camera and from the side)."""
    doc = pred.to_json(i, image=str(path), backend=model.backend.name, model_path=str(model.path))
    json_path = write_text(out / f"{name}.json", json.dumps(doc, indent=1) + "\n")
    return [json_path, pose_figure(crop, pred.poses[i], f"{path.name} ({model.id})", out / f"{name}.png")]


def pose_figure(crop: np.ndarray, pose: np.ndarray, title: str, path: Path, label: str = "input crop",
                size: tuple[float, float] = (7.5, 2.7)) -> Path:  # fmt: skip
    """A PNG of ``crop`` (an (H, W, 3) image, titled ``label``) beside ``pose`` (17, 3) mm drawn in 3D from the
    camera and from the side; ``size``: the figure's (width, height) in inches."""
    import matplotlib.pyplot as plt

    from structpose.viz import plot_pose_3d, save_figure

    fig = plt.figure(figsize=size)
    ax = fig.add_subplot(1, 3, 1)
    ax.imshow(crop)
    ax.set_title(label, fontsize=8)
    ax.axis("off")
    for k, (label, elev, azim) in enumerate((("from the camera", 5, -90), ("from the side", 5, 0))):
        ax3 = fig.add_subplot(1, 3, k + 2, projection="3d")
        plot_pose_3d(ax3, np.asarray(pose, np.float64))
        ax3.view_init(elev=elev, azim=azim)
        ax3.set_title(label, fontsize=8)
        ax3.tick_params(labelsize=5)
    fig.suptitle(title, fontsize=8)
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------- videos


def _av():
    try:
        import av
    except ImportError as err:  # an optional dependency
        raise ImportError(f"videos need PyAV ({err}): pip install 'structpose[video]'") from err
    return av


def predict_video(
    model: PoseModel,
    path: Path,
    out: Path,
    name: str,
    box: Any = None,
    batch_size: int = 64,
    device: str | None = None,
    video_format: str = "mp4",
    progress: bool = True,
) -> list[Path]:
    """Predict the pose in every frame of a video (decoded with PyAV, in presentation order).

    Writes ``NAME.mp4`` (or ``NAME.gif``: each frame, with the crop's square drawn on it, beside the
    skeleton from the camera and from the side), then ``NAME.npz`` (``poses`` (N, 17, 3) mm, ``names``,
    ``boxes``, ``crop_boxes``, ``fps``) and ``NAME.json`` (the same as JSON: ``joint_names``, ``poses_mm``
    (N, 17, 3), ``units``, ``frame``, ``box``, ``boxes``, ``crop_boxes``, ``fps``, ``frames``, ``model``).

    Raises:
        FormatError: the file cannot be decoded, has no video stream or no frame (the message names it);
            nothing is written for it then.
    """
    av = _av()
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise FormatError(f"not a readable image or video ({err})", path) from None
    parts: list[Prediction] = []
    movie = out / f"{name}.{video_format}"
    with container:
        fps = _fps(container, path)
        with video_writer(movie, fps, video_format) as write:
            stream = container.streams.video[0]
            for batch in _batches(decode_frames(container, stream, path, progress), batch_size):
                pred = model.predict(batch, [box] * len(batch), batch_size, device)
                for rgb, pose, region in zip(batch, pred.poses, pred.crop_boxes, strict=True):
                    write(video_panel(rgb, pose, region))
                parts.append(pred)
            if not parts:
                raise FormatError("holds no video frame", path)
    return [movie, *_write_video_poses(model, parts, box, fps, out, name, path)]


def _fps(container: Any, path: Path) -> float:
    """The frame rate of the first video stream (25 when the file does not say)."""
    if not container.streams.video:
        raise FormatError("has no video stream", path)
    stream = container.streams.video[0]
    return float(stream.average_rate or stream.guessed_rate or 25)


def decode_frames(container: Any, stream: Any, path: Path, progress: bool) -> Iterator[np.ndarray]:
    """The frames of ``stream`` as (H, W, 3) uint8 RGB, with a progress bar; decoding errors as FormatError."""
    from tqdm import tqdm

    av = _av()
    stream.thread_type = "AUTO"
    bar = tqdm(total=stream.frames or None, desc=path.name, unit="frame", disable=not progress, leave=False)
    count = 0
    try:
        for frame in container.decode(stream):
            count += 1
            bar.update(1)
            yield frame.to_ndarray(format="rgb24")
    except av.FFmpegError as err:
        raise FormatError(f"decoding failed after {count} frames ({err}); is the file complete?", path) from None
    finally:
        bar.close()


def _batches(frames: Iterator[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_video_poses(
    model: PoseModel, parts: list[Prediction], box: Any, fps: float, out: Path, name: str, path: Path
) -> list[Path]:
    poses = np.concatenate([p.poses for p in parts])
    boxes = np.concatenate([p.boxes for p in parts])
    regions = np.concatenate([p.crop_boxes for p in parts])
    labels = [f"{name} frame {i}" for i in range(len(poses))]
    whole = Prediction(poses, model.joint_names, boxes, regions, model.id)
    npz = _write_npz(out / f"{name}.npz", [(label, _row(whole, i)) for i, label in enumerate(labels)], model,
                     fps=fps)  # fmt: skip
    doc = {"video": str(path), "name": name, "frames": len(poses), "fps": fps,
           "joint_names": list(model.joint_names), "poses_mm": np.round(poses.astype(np.float64), 3).tolist(),
           "units": UNITS, "frame": FRAME, "box": None if box is None else [float(v) for v in box],
           "boxes": np.round(boxes, 3).tolist(), "crop_boxes": np.round(regions, 3).tolist(), "model": model.id,
           "backend": model.backend.name, "model_path": str(model.path)}  # fmt: skip
    return [npz, write_text(out / f"{name}.json", json.dumps(doc) + "\n")]


@contextlib.contextmanager
def video_writer(path: Path, fps: float, video_format: str = "mp4") -> Iterator[Callable[[np.ndarray], None]]:
    """A function that appends an (H, W, 3) uint8 frame (H, W even) to a video written atomically at ``path``:
    an MP4 (H.264 when PyAV has libx264, else MPEG-4 part 2) or an animated GIF (Pillow). When the block
    fails, nothing is left at ``path``."""
    with atomic_path(path) as tmp:
        if video_format == "gif":
            frames: list[Image.Image] = []
            yield lambda rgb: frames.append(Image.fromarray(rgb).quantize(colors=128))
            if frames:
                frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                               duration=max(int(round(1000 / fps)), 20), loop=0)  # fmt: skip
            return
        av = _av()
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        with av.open(str(tmp), "w", format="mp4") as container:
            state: dict[str, Any] = {}

            def write(rgb: np.ndarray) -> None:
                if "stream" not in state:
                    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                    stream.width, stream.height, stream.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
                    state["stream"] = stream
                for packet in state["stream"].encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)

            yield write
            if "stream" in state:
                for packet in state["stream"].encode():
                    container.mux(packet)


def video_panel(rgb: np.ndarray, pose: np.ndarray, region: np.ndarray, height: int = PANEL) -> np.ndarray:
    """One output-video frame: the input frame (the crop's square drawn on it) beside the skeleton seen from
    the camera and from the side. (height, W, 3) uint8, W even."""
    image = Image.fromarray(rgb)
    x0, y0, side = (float(v) for v in region[:3])
    ImageDraw.Draw(image).rectangle((x0, y0, x0 + side, y0 + side), outline=(255, 220, 0),
                                    width=max(1, round(max(rgb.shape[:2]) / 200)))  # fmt: skip
    width = max(2, round(rgb.shape[1] * height / rgb.shape[0] / 2) * 2)
    frame = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
    views = [skeleton_view(pose, height, axis) for axis in (0, 2)]
    return np.concatenate([frame, *views], axis=1)


def skeleton_view(pose: np.ndarray, size: int, axis: int = 0, half_mm: float = HALF_MM) -> np.ndarray:
    """An orthographic drawing (size, size, 3) uint8 of ``pose`` (17, 3) mm, root-relative, camera frame:
    image right is camera x (``axis=0``: from the camera) or depth z (``axis=2``: from the side), image down
    is camera y; the root at the centre, ``half_mm`` from the centre to the border."""
    from structpose.skeleton import H36M
    from structpose.viz import limb_colour

    canvas = Image.new("RGB", (size, size), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    scale = size / 2 / half_mm
    pose = np.asarray(pose, np.float64) - np.asarray(pose, np.float64)[:1]
    points = np.stack([size / 2 + pose[:, axis] * scale, size / 2 + pose[:, 1] * scale], axis=1)
    for limb in H36M.limbs:
        (ax, ay), (bx, by) = points[list(limb)]
        draw.line((ax, ay, bx, by), fill=limb_colour(limb), width=max(2, size // 80))
    draw.text((4, 4), "from the camera" if axis == 0 else "from the side", fill=(90, 90, 90))
    return np.asarray(canvas)


# ------------------------------------------------------------------------------ held-out inputs to try


def write_samples(
    store: Path, out: Path, count: int = 4, frames: int = 48, size: int = 128, seed: int = 0
) -> list[Path]:
    """Held-out inputs to try ``structpose predict`` on, with their ground truth.

    Writes ``test_000.png``, ... (``count`` crops of the store's test split, evenly spaced) and their
    ``ground_truth.npz`` (``poses`` (count, 17, 3) mm, ``names``); and, for a store rendered by structpose,
    ``test_sequence.mp4``: ``frames`` consecutive frames of one held-out (test-split) sequence of its pose
    library, rendered at ``size`` px through one camera with one appearance (each frame a person-centred
    crop), with ``test_sequence_truth.npz``.

    Args:
        store: a dataset directory (``structpose data synth`` or an import).
        out: the folder to write.
        count: test crops to write.
        frames: frames of the clip (the pose library's rate: 20 per second); 0: no clip.
        size: the clip's side, px.
        seed: draws the sequence, camera and appearance.

    Returns:
        The files written.
    """
    from structpose.data.dataset import PoseImageDataset

    test = PoseImageDataset(store, "test")
    picks = np.unique(np.linspace(0, len(test) - 1, min(count, len(test))).round().astype(np.int64))
    written = []
    for k, image in zip(picks, test.images(picks), strict=True):
        with atomic_path(Path(out) / f"test_{k:04d}.png") as tmp:
            Image.fromarray(image).save(tmp, format="PNG")
        written.append(Path(out) / f"test_{k:04d}.png")
    names = np.array([p.name for p in written])
    written.append(_write_truth(Path(out) / "ground_truth.npz", test.poses3d[picks], names))
    attrs = test.shard_attrs[0]
    if frames > 0 and attrs.get("created_by") == "structpose data synth":
        written += _write_clip(Path(out), attrs, frames, size, seed)
    return written


def _write_truth(path: Path, poses: np.ndarray, names: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as fp:
        np.savez(fp, poses=np.asarray(poses, np.float32), names=names, units=UNITS, frame=FRAME)
    return path


def _clip_renderer(renderer: str, poses: np.ndarray, rng: np.random.Generator):
    """``draw(i, pose, camera, appearance, rng, size)`` of frame ``i`` of a clip of ``poses`` (n, 17, 3) mm,
    by the store's renderer: capsule people, or one body of the mesh renderer's bank (drawn from ``rng``)
    posed frame by frame."""
    from structpose.render import render_sample

    if renderer != "mesh":
        return lambda i, pose, camera, appearance, frame_rng, size: render_sample(
            pose, camera, appearance, frame_rng, size)  # fmt: skip
    from structpose.render.bodybank import load_body_bank
    from structpose.render.mesh import render_mesh_sample
    from structpose.render.retarget import pose_body

    bank = load_body_bank()
    body = int(rng.integers(len(bank)))
    posed = pose_body(poses, bank.joints[body])
    return lambda i, pose, camera, appearance, frame_rng, size: render_mesh_sample(
        pose, camera, appearance, body, frame_rng, size, posed=posed[i])  # fmt: skip


def _write_clip(out: Path, attrs: dict, frames: int, size: int, seed: int) -> list[Path]:
    """``test_sequence.mp4`` of a held-out sequence of the store's pose library (see :func:`write_samples`)."""
    from structpose.data.poselib import load_pose_library
    from structpose.data.protocol import protocol_splits
    from structpose.render import sample_appearance, sample_camera

    library = attrs.get("pose_library", "")
    lib = load_pose_library(None if library.startswith("structpose/assets/") else library,
                            tuple(str(attrs.get("sources", "cmu,bandai")).split(",")))  # fmt: skip
    held_out = protocol_splits(lib, attrs.get("protocol", "v1")) == "test"
    long = [s for s in np.unique(lib.sequence[held_out]) if np.sum(lib.sequence == s) >= frames]
    if not long:
        raise InputError(f"the pose library has no held-out sequence of {frames} frames; ask for fewer")
    rng = np.random.default_rng([seed, 17])
    rows = np.flatnonzero(lib.sequence == long[rng.integers(len(long))])
    rows = rows[np.argsort(lib.frame[rows])]
    start = rng.integers(len(rows) - frames + 1)
    poses = lib.poses[rows[start : start + frames]].astype(np.float64)
    camera, appearance = sample_camera(rng, poses[0]), sample_appearance(rng)
    draw = _clip_renderer(attrs.get("renderer", "capsule"), poses, rng)
    truth = []
    with video_writer(out / "test_sequence.mp4", lib.fps) as write:
        for i, pose in enumerate(poses):
            sample = draw(i, pose, camera, appearance, np.random.default_rng([seed, 18]), size)
            write(sample.image)
            truth.append(sample.pose3d)
    names = np.array([f"test_sequence frame {i}" for i in range(frames)])
    return [out / "test_sequence.mp4", _write_truth(out / "test_sequence_truth.npz", np.stack(truth), names)]


# ------------------------------------------------------------------------------- --run: crops, as before


def load_network(run_dir: Path, model: str = "ours") -> tuple[torch.nn.Module, ExperimentConfig]:
    """Rebuild the trained network ``model`` (a network key of :data:`~structpose.train.methods.METHODS`:
    "ours", "ours_noft", "cnn", ...) of a run or pipeline folder from its resolved config and safetensors
    weights, without its training data; returns it in eval mode with that folder's config."""
    from structpose.train.config import load_config
    from structpose.train.layout import pipeline_folder
    from structpose.train.methods import METHODS, NetMethod, load_method, network_methods

    if model not in network_methods():
        raise ValueError(f"unknown model {model!r}; known: {', '.join(network_methods())}")
    method = load_method(run_dir, model)
    if not isinstance(method, NetMethod):
        raise ValueError(f"{model!r} is not a network")
    return method.net, load_config(pipeline_folder(run_dir, METHODS[model].stage).config)


def read_crop(path: Path, size: int) -> np.ndarray:
    """Read an image file (by :func:`structpose.images.read_image`'s rules) as the network's input.

    Args:
        path: an image file, a person-centred crop.
        size: the network's input side, pixels.

    Returns:
        (size, size, 3) uint8: see :func:`square_crop`.

    Raises:
        FormatError: the file cannot be decoded (the message names it and says why).
        OSError: the file cannot be opened.
    """
    return square_crop(read_image(path), size)


def square_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """Pad an image with black to a square around its centre and resize it (bilinear):
    :func:`structpose.release.crop_person` without a box.

    Args:
        rgb: (H, W, 3) uint8 image.
        size: the output side, pixels.

    Returns:
        (size, size, 3) uint8.
    """
    return crop_person(rgb, None, size)[0]


def read_crops(images: list[Path], size: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Read each image file as the network's input, skipping the ones that cannot be read.

    Args:
        images: image files.
        size: the network's input side, pixels.

    Returns:
        The (size, size, 3) uint8 crops, the names of the files they came from, and one line per skipped
        file (``PATH: why``).
    """
    crops, names, problems = [], [], []
    for path in images:
        try:
            crops.append(read_crop(Path(path), size))
            names.append(str(path))
        except FormatError as err:  # its message names the file
            problems.append(str(err))
        except OSError as err:
            problems.append(f"{path}: cannot open this file ({err.strerror or err}); check the path")
    return crops, names, problems


def predict_images(
    run_dir: Path, images: list[Path], out: Path, model: str = "ours", onnx: bool = False
) -> tuple[Path, list[str]]:
    """Predict the 3D pose in each image; returns ``out`` and the problems met (one line per bad file).

    A file that cannot be read (missing, empty, truncated, corrupt, too large, a decompression bomb) is
    reported and skipped; the others still go through. ``poses.npz`` and ``poses.png`` are written atomically
    (a full disk leaves any previous ones as they were, and no temporary file).

    Raises:
        InputError: no image could be read (the message lists why, file by file).
    """
    import torch

    from structpose.train.export import PosePredictor, export_onnx
    from structpose.viz import plot_pose_3d, save_figure

    net, cfg = load_network(run_dir, model)
    crops, names, problems = read_crops(images, cfg.cnn.in_size)
    if not crops:
        raise InputError("no readable image: " + "; ".join(problems))
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        poses = PosePredictor(net)(batch).numpy()
    out = Path(out)
    with atomic_path(out / "poses.npz") as tmp, open(tmp, "wb") as fp:  # a file object: savez adds no suffix
        np.savez(fp, poses=poses, names=np.array(names), model=model, run=str(run_dir))

    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5.0, 2.5 * len(crops)))
    for i, (crop, pose) in enumerate(zip(crops, poses, strict=True)):
        ax = fig.add_subplot(len(crops), 2, 2 * i + 1)
        ax.imshow(crop)
        ax.set_title(Path(names[i]).name, fontsize=7)
        ax.axis("off")
        plot_pose_3d(fig.add_subplot(len(crops), 2, 2 * i + 2, projection="3d"), pose)
    save_figure(fig, out / "poses.png")
    if onnx:
        export_onnx(net, out / f"{model}.onnx", cfg.cnn.in_size)
    return out, problems
