"""The methods of a run: their names, the stages they are made of, and how to rebuild each from its folder.

A *method* maps person crops to 3D poses. Each is made of stages of :mod:`structpose.train.layout`'s
pipeline folder and is rebuilt from their finished files alone (the resolved ``config.yaml`` and
safetensors weights; no training data, nothing unpickled) by :func:`load_method`. Every method answers
:meth:`Method.predict` on uint8 crops (N, S, S, 3) with poses (N, 17, 3) mm (root-relative, camera frame),
and :meth:`Method.predict_dataset` on a :class:`~structpose.data.dataset.PoseImageDataset`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import torch
from torch import nn

from structpose.errors import InputError
from structpose.train.layout import SeedLayout, pipeline_folder

if TYPE_CHECKING:
    from structpose.data.dataset import PoseImageDataset
    from structpose.models.linkde import LinKDE
    from structpose.train.config import ExperimentConfig


@dataclass(frozen=True)
class MethodSpec:
    """A method of a run: its report label, the stage whose finished files make it (``stage``) and any
    other it needs (``needs``), and whether it is a network (``net``) or a fitted HOG regressor (``hog``)."""

    label: str
    stage: str
    kind: Literal["net", "hog"]
    needs: tuple[str, ...] = ()
    description: str = ""


#: Every method of a run, in the paper's Table 1 row order.
METHODS: dict[str, MethodSpec] = {
    "linkde": MethodSpec(
        "LinKDE",
        "linkde",
        "hog",
        description=(
            "Ionescu et al. (TPAMI 2014): random Fourier features of the exponentiated chi-squared kernel on "
            "L1-normalised HOG, a Gaussian kernel on poses, ridge regression between them, a pre-image by "
            "optimisation from the best training candidates"
        ),
    ),
    "linkde_knn": MethodSpec(
        "LinKDE-kNN",
        "linkde_knn",
        "hog",
        description=(
            "structpose's earlier LinKDE-style variant: a Gaussian kernel on standardised HOG, the pre-image "
            "the mean of the 8 nearest training poses"
        ),
    ),
    "cnn": MethodSpec(
        "CNN (direct)",
        "direct",
        "net",
        description=("the paper CNN regressing the pose directly: structpose's same-trunk stand-in for DconvMP-HML"),
    ),
    "structnet_max": MethodSpec(
        "StructNet-Max",
        "structnet",
        "net",
        description=(
            "Li, Zhang & Chan (ICCV 2015): image-pose score by max-margin learning; the best-scoring training pose"
        ),
    ),
    "structnet_avg": MethodSpec(
        "StructNet-Avg",
        "structnet",
        "net",
        description=("the same network; the mean of the top-A scoring training poses, A chosen on validation"),
    ),
    "ours_noft": MethodSpec(
        "OURS, no FT",
        "latent",
        "net",
        needs=("ae_finetune", "direct"),
        description=("Tekin et al.: the CNN regressing the auto-encoder's code, decoded, before fine-tuning"),
    ),
    "ours": MethodSpec(
        "OURS, with FT",
        "finetune",
        "net",
        description=("Tekin et al.: the same after fine-tuning the CNN and the decoder on the pose"),
    ),
}


def network_methods() -> list[str]:
    """The keys of :data:`METHODS` that are networks."""
    return [k for k, m in METHODS.items() if m.kind == "net"]


class Method(Protocol):
    """What every method offers (see the module docstring)."""

    def predict(self, images: np.ndarray) -> np.ndarray: ...

    def predict_dataset(self, dataset: PoseImageDataset) -> np.ndarray: ...


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if not (images.ndim == 4 and images.shape[-1] == 3 and images.shape[1] == images.shape[2]):
        raise InputError(f"expected square RGB crops (N, S, S, 3), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise InputError(f"expected uint8 crops, got {images.dtype}")
    return images


@dataclass
class NetMethod:
    """A pose network (normalised crops (B, 3, crop, crop) -> (B, 17, 3) mm) with its evaluation
    preprocessing (:class:`~structpose.train.export.PosePredictor`)."""

    net: nn.Module
    batch_size: int = 256

    def predict(self, images: np.ndarray, device: str | torch.device | None = None) -> np.ndarray:
        """Poses (N, 17, 3) float32 mm of uint8 crops (N, S, S, 3), in batches, under ``inference_mode``."""
        from structpose.train.export import PosePredictor

        images = _check_images(images)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        predictor = PosePredictor(self.net).to(device).eval()
        out = []
        with torch.inference_mode():
            for lo in range(0, len(images), self.batch_size):
                batch = torch.from_numpy(images[lo : lo + self.batch_size]).permute(0, 3, 1, 2).contiguous()
                out.append(predictor(batch.to(device)).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, 17, 3), np.float32)

    def predict_dataset(self, dataset: PoseImageDataset) -> np.ndarray:
        from structpose.train.pipeline import predict

        return predict(self.net, dataset, batch_size=self.batch_size)


@dataclass
class HogMethod:
    """A regressor on HOG descriptors of the whole crop (:func:`structpose.models.features.hog`)."""

    model: LinKDE
    chunk: int = 2048

    def features(self, images: np.ndarray) -> np.ndarray:
        """The descriptors (N, D) this model was fitted on, of uint8 crops (N, S, S, 3)."""
        from structpose.models.features import hog

        return hog(_check_images(images))

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.model.predict(self.features(images))

    def dataset_features(self, dataset: PoseImageDataset) -> np.ndarray:
        """:meth:`features` of every crop of ``dataset``, read ``chunk`` at a time."""
        n = len(dataset)
        parts = [self.features(dataset.images(np.arange(lo, min(lo + self.chunk, n))))
                 for lo in range(0, n, self.chunk)]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def predict_dataset(self, dataset: PoseImageDataset) -> np.ndarray:
        return self.model.predict(self.dataset_features(dataset))


def build_net(key: str, cfg: ExperimentConfig) -> nn.Module:
    """The untrained architecture of network method ``key`` for ``cfg`` (weights come from the stage)."""
    from structpose.models.autoencoder import PoseAutoencoder
    from structpose.models.cnn import PaperCNN
    from structpose.models.normalize import PoseNormalizer
    from structpose.models.structured import DirectCNN, StructuredNet
    from structpose.skeleton import NUM_JOINTS

    normalizer = PoseNormalizer()  # its mean and scale are buffers: the weights restore them
    if key in ("ours", "ours_noft"):
        ae = PoseAutoencoder(cfg.ae, scale_mm=1.0)  # the noise scale plays no part at inference
        return StructuredNet(PaperCNN(cfg.cnn, ae.latent_dim), ae.decoder(), normalizer)
    if key == "cnn":
        return DirectCNN(PaperCNN(cfg.cnn, 3 * NUM_JOINTS), normalizer)
    if key in ("structnet_max", "structnet_avg"):
        from structpose.models.structnet import StructNet

        return StructNet(cfg.cnn, normalizer, cfg.structnet).with_mode(key.removeprefix("structnet_"))
    raise InputError(f"{key!r} is not a network method; known: {', '.join(network_methods())}")


def load_method(path: Path, key: str = "ours") -> Method:
    """Rebuild method ``key`` of a pipeline folder (or of the first seed of a run folder that has it).

    Args:
        path: a pipeline folder (``seedN/``) or a run folder.
        key: a key of :data:`METHODS`.

    Returns:
        The method, in eval mode.

    Raises:
        InputError: unknown method.
        FileNotFoundError: its stages did not finish in that folder.
    """
    from structpose.train.config import load_config
    from structpose.train.export import load_weights

    if key not in METHODS:
        raise InputError(f"unknown method {key!r}; known: {', '.join(METHODS)}")
    spec = METHODS[key]
    folder = pipeline_folder(Path(path), spec.stage)
    if spec.kind == "hog":
        return HogMethod(load_linkde(folder, spec.stage))
    cfg = load_config(folder.config)
    if key == "ours_noft":
        return NetMethod(_ours_noft(folder, cfg).eval())
    return NetMethod(load_weights(build_net(key, cfg), folder.weights(spec.stage)).eval())


def _ours_noft(folder: SeedLayout, cfg: ExperimentConfig) -> nn.Module:
    """OURS before fine-tuning: the latent stage's CNN, the auto-encoder's decoder and the pose normaliser
    (not trained; the direct stage's copy)."""
    from safetensors import safe_open
    from safetensors.torch import load_model

    from structpose.models.autoencoder import PoseAutoencoder

    for stage in ("latent", *METHODS["ours_noft"].needs):
        if not folder.weights(stage).is_file():
            raise FileNotFoundError(f"{folder.weights(stage)} is missing: the '{stage}' stage did not finish")
    net = build_net("ours_noft", cfg)
    load_model(net.cnn, str(folder.weights("latent")), strict=True)
    ae = PoseAutoencoder(cfg.ae, scale_mm=1.0)
    load_model(ae, str(folder.weights("ae_finetune")), strict=True)
    net.decoder = ae.decoder()
    with safe_open(str(folder.weights("direct")), framework="pt") as f:
        net.normalizer.load_state_dict({k: f.get_tensor(f"normalizer.{k}") for k in ("mean", "scale")})
    return net


def load_linkde(folder: SeedLayout, stage: str) -> LinKDE:
    """The fitted LinKDE of ``stage`` (its chosen config in ``selection.json``, its arrays in safetensors)."""
    from safetensors.numpy import load_file

    from structpose.models.linkde import LinKDE, LinKDEConfig

    chosen = json.loads(folder.selection(stage).read_text())["chosen"]
    return LinKDE(LinKDEConfig(**chosen)).load_state_dict(load_file(str(folder.weights(stage))))
