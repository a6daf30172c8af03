"""``structpose predict``: run a trained network of a run folder on your own images.

Each image should be a person-centred crop (as the training crops are: the person's 2D box plus a margin);
it is padded to a square and resized to the network's input size. Outputs: ``poses.npz`` (root-relative
3D poses in mm, camera frame, 17 Human3.6M joints, with the image names), ``poses.png`` (each image beside
its 3D pose) and, on request, the network as ONNX.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.cnn import PaperCNN
from structpose.models.normalize import PoseNormalizer
from structpose.models.structured import DirectCNN, StructuredNet
from structpose.skeleton import NUM_JOINTS
from structpose.train.config import ExperimentConfig, load_config
from structpose.train.engine import WEIGHTS
from structpose.train.export import PosePredictor, export_onnx, load_weights

#: model name -> the stage folder whose weights hold it
MODELS = {"ours": "finetune", "cnn": "direct"}


def seed_folder(run_dir: Path) -> Path:
    """The folder holding a pipeline's stages: ``run_dir`` itself, or its first ``seed*`` folder."""
    run_dir = Path(run_dir)
    if (run_dir / "finetune").is_dir():
        return run_dir
    seeds = sorted(p for p in run_dir.glob("seed*") if (p / "finetune").is_dir())
    if not seeds:
        raise FileNotFoundError(f"{run_dir} holds no trained pipeline (no finetune/ stage in it or in seed*/)")
    return seeds[0]


def load_network(run_dir: Path, model: str = "ours") -> tuple[torch.nn.Module, ExperimentConfig]:
    """Rebuild the trained ``model`` ("ours": the fine-tuned structured net; "cnn": the direct CNN) of a run
    folder from its resolved config and safetensors weights, without its training data."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    folder = seed_folder(run_dir)
    cfg = load_config(folder / "config.yaml")
    normalizer = PoseNormalizer()  # mean and scale are buffers: the weights file restores them
    if model == "ours":
        ae = PoseAutoencoder(cfg.ae, scale_mm=1.0)  # the noise scale plays no part at inference
        net = StructuredNet(PaperCNN(cfg.cnn, ae.latent_dim), ae.decoder(), normalizer)
    else:
        net = DirectCNN(PaperCNN(cfg.cnn, 3 * NUM_JOINTS), normalizer)
    weights = folder / MODELS[model] / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: the '{MODELS[model]}' stage of this run did not finish")
    return load_weights(net, weights).eval(), cfg


def read_crop(path: Path, size: int) -> np.ndarray:
    """An image file -> (size, size, 3) uint8: padded with black to a square around its centre, resized."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    side = max(rgb.size)
    square = Image.new("RGB", (side, side))
    square.paste(rgb, ((side - rgb.width) // 2, (side - rgb.height) // 2))
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def predict_images(
    run_dir: Path, images: list[Path], out: Path, model: str = "ours", onnx: bool = False
) -> tuple[Path, list[str]]:
    """Predict the 3D pose in each image; returns ``out`` and the problems met (one line per bad file).

    A file that cannot be read is reported and skipped; the others still go through.
    """
    from structpose.viz import plot_pose_3d, save_figure

    net, cfg = load_network(run_dir, model)
    size = cfg.cnn.in_size
    crops, names, problems = [], [], []
    for path in images:
        try:
            crops.append(read_crop(Path(path), size))
            names.append(str(path))
        except (OSError, UnidentifiedImageError) as err:
            problems.append(f"{path}: cannot read this image ({err.__class__.__name__}: {err})")
    if not crops:
        raise ValueError("no readable image: " + "; ".join(problems))
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        poses = PosePredictor(net)(batch).numpy()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=out)
    os.close(fd)
    np.savez(tmp, poses=poses, names=np.array(names), model=model, run=str(run_dir))
    os.replace(tmp, out / "poses.npz")

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
        export_onnx(net, out / f"{model}.onnx", size)
    return out, problems
