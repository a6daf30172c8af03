"""Exporting trained networks: weights as safetensors, the image -> pose predictor as ONNX."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from structpose.files import atomic_path
from structpose.models.cnn import preprocess


class PosePredictor(nn.Module):
    """The deployable predictor: uint8 images (B, 3, S, S) -> poses (B, J, 3) mm.

    Wraps a pose network (``StructuredNet`` or ``DirectCNN``: normalised crops -> mm) with the evaluation
    preprocessing (centre crop of ``net.cnn.cfg.crop`` px, per-channel normalisation).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.crop = net.cnn.cfg.crop

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(preprocess(images, train=False, crop=self.crop))


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """``model``'s parameters and buffers -> a safetensors file (shared tensors stored once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))
    return path


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a file written by :func:`save_weights` into ``model`` (same architecture, strict); returns it."""
    load_model(model, str(path), strict=True)
    return model


def export_onnx(
    net: nn.Module, path: str | Path, image_size: int, opset: int = 17, metadata: dict[str, str] | None = None
) -> Path:
    """Export ``PosePredictor(net)`` to ONNX, written atomically (see :func:`structpose.files.atomic_path`).

    Input ``images``: uint8 (B, 3, S, S), dynamic batch B, the crops as they are (the centre crop and the
    per-channel normalisation are inside the graph); output ``poses_mm``: (B, J, 3) float32, mm. Uses the
    TorchScript-based exporter (the dynamo one needs onnxscript). The file is checked with ``onnx.checker``.

    Args:
        net: a pose network (``StructuredNet``, ``DirectCNN``, ...), on any device.
        path: the ``.onnx`` file.
        image_size: S, px.
        opset: the ONNX opset.
        metadata: ``metadata_props`` to store in the model (e.g. the model id, units, joint names).

    Returns:
        ``path``.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor = PosePredictor(net).eval()
    device = next(net.parameters()).device
    example = torch.zeros(2, 3, image_size, image_size, dtype=torch.uint8, device=device)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning))
            torch.onnx.export(predictor, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["images"], output_names=["poses_mm"],
                              dynamic_axes={"images": {0: "batch"}, "poses_mm": {0: "batch"}})  # fmt: skip
        model = onnx.load(str(tmp))
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
    return path
