"""``structpose predict``: run a trained network of a run folder on your own images.

Each image should be a person-centred crop (as the training crops are: the person's 2D box plus a margin);
it is read by the rules of :mod:`structpose.images` (EXIF orientation applied, 16-bit and float images
scaled, alpha composited on black), padded to a square and resized to the network's input size. Outputs:
``poses.npz`` (root-relative 3D poses in mm, camera frame, 17 Human3.6M joints, with the image names),
``poses.png`` (each image beside its 3D pose) and, on request, the network as ONNX.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from structpose.errors import FormatError, InputError
from structpose.files import atomic_path
from structpose.images import read_image
from structpose.train.config import ExperimentConfig, load_config
from structpose.train.export import PosePredictor, export_onnx


def load_network(run_dir: Path, model: str = "ours") -> tuple[torch.nn.Module, ExperimentConfig]:
    """Rebuild the trained network ``model`` (a network key of :data:`~structpose.train.methods.METHODS`:
    "ours", "ours_noft", "cnn", ...) of a run or pipeline folder from its resolved config and safetensors
    weights, without its training data; returns it in eval mode with that folder's config."""
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
    """Pad an image with black to a square around its centre and resize it (bilinear).

    Args:
        rgb: (H, W, 3) uint8 image.
        size: the output side, pixels.

    Returns:
        (size, size, 3) uint8.
    """
    height, width = rgb.shape[:2]
    side = max(height, width)
    square = Image.new("RGB", (side, side))
    square.paste(Image.fromarray(rgb), ((side - width) // 2, (side - height) // 2))
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


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
