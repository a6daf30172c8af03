"""Released lifters: a trained lifting method as a model folder, and :class:`Lifter`, which lifts 2D keypoints.

A released lifter is a folder like any released model (:mod:`structpose.release`): ``model.safetensors``
and ``model.json``, whose ``input.kind`` is ``"keypoints2d"``; :func:`structpose.load` returns a
:class:`Lifter` for it. Its input: 17 Human3.6M keypoints (N, 17, 2) px in the image with a visibility
flag per joint (:func:`structpose.keypoints.from_blazepose` / ``from_coco`` map a detector's); the hip offset
and synthesis rules it was trained with are in ``model.json`` (``input``). The output is the pose (N, 17, 3)
mm, root-relative, camera frame, as for every released model.

``dtype: float16`` (``export_lifter(..., half=True)``) halves the file; the weights are computed in float32.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from structpose.errors import FormatError, InputError
from structpose.files import atomic_path, write_text
from structpose.lift.config import LIFT_METHODS, LiftConfig, load_lift_config
from structpose.lift.inputs import HipOffset, lifter_input
from structpose.models.autoencoder import AEConfig, PoseAutoencoder
from structpose.models.lifter import LiftedDirect, LiftedStructured, LifterConfig, LifterMLP
from structpose.models.normalize import PoseNormalizer
from structpose.release import (
    FORMAT,
    FORMAT_VERSION,
    FRAME,
    MODEL_JSON,
    UNITS,
    WEIGHTS,
    _check_digest,
    _check_file,
    file_sha256,
    weights_digest,
)
from structpose.skeleton import H36M, H36M_JOINTS, NUM_JOINTS

INPUT_KIND = "keypoints2d"
_LICENCE = ("CC BY-NC 4.0: NON-COMMERCIAL use only, inherited from the Bandai-Namco-Research-Motiondataset poses "
            "it was trained on (the CMU poses are free for any use; the code is MIT)")  # fmt: skip


def build_lifter(key: str, lifter: LifterConfig, ae: AEConfig) -> torch.nn.Module:
    """The untrained network of lifting method ``key`` (weights and normaliser to be loaded)."""
    normalizer = PoseNormalizer()
    if key == "lift_direct":
        return LiftedDirect(LifterMLP(lifter, 3 * NUM_JOINTS), normalizer)
    if key in ("lift_ours", "lift_ours_noft"):
        autoencoder = PoseAutoencoder(ae, 1.0)
        return LiftedStructured(LifterMLP(lifter, autoencoder.latent_dim), autoencoder.decoder(), normalizer)
    raise InputError(f"unknown lifting method {key!r}; known: {', '.join(LIFT_METHODS)}")


@dataclass(frozen=True)
class LiftPrediction:
    """Lifted poses. ``poses`` (N, 17, 3) float32 mm, root-relative camera frame; ``joint_names``; ``model_id``."""

    poses: np.ndarray
    joint_names: tuple[str, ...]
    model_id: str
    units: str = UNITS
    frame: str = FRAME


@dataclass
class Lifter:
    """A released lifter (see :func:`structpose.load`). ``card``: its ``model.json``; ``net``: the network."""

    card: dict
    net: torch.nn.Module
    path: Path

    @property
    def id(self) -> str:
        return str(self.card["id"])

    @property
    def method(self) -> str:
        return str(self.card["method"]["key"])

    @property
    def joint_names(self) -> tuple[str, ...]:
        return H36M_JOINTS

    @torch.inference_mode()
    def lift(self, keypoints: Any, visible: Any = None, batch_size: int = 1024) -> LiftPrediction:
        """3D poses of 2D keypoints.

        Args:
            keypoints: (N, 17, 2) or (17, 2) px, Human3.6M joint order, image coordinates (x right, y down),
                as :func:`structpose.keypoints.from_blazepose` gives them; or a list of
                :class:`~structpose.keypoints.Keypoints2D` (then ``visible`` is theirs).
            visible: (N, 17) bool (default: all visible). Hidden joints are ignored (their x, y are not used).
            batch_size: samples per forward pass.

        Returns:
            The :class:`LiftPrediction` (poses (N, 17, 3) float32 mm).

        Raises:
            InputError: another shape, or non-finite coordinates of a visible joint.
        """
        xy, vis = _as_arrays(keypoints, visible)
        x = torch.from_numpy(lifter_input(xy, vis))
        out = [self.net(x[i : i + batch_size]).float() for i in range(0, len(x), batch_size)]
        poses = torch.cat(out).numpy() if out else np.zeros((0, NUM_JOINTS, 3), np.float32)
        return LiftPrediction(poses, self.joint_names, self.id)


def _as_arrays(keypoints: Any, visible: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(keypoints, (list, tuple)) and keypoints and hasattr(keypoints[0], "xy"):
        return np.stack([k.xy for k in keypoints]), np.stack([k.visible for k in keypoints])
    xy = np.asarray(keypoints, np.float64)
    if xy.ndim == 2:
        xy = xy[None]
    if xy.ndim != 3 or xy.shape[1:] != (NUM_JOINTS, 2):
        raise InputError(f"expected keypoints (N, {NUM_JOINTS}, 2) px, got shape {xy.shape}")
    vis = np.ones(xy.shape[:2], bool) if visible is None else np.asarray(visible, bool).reshape(xy.shape[:2])
    if not np.isfinite(xy[vis]).all():
        raise InputError("visible keypoints must be finite (mark a missing joint not visible)")
    return np.where(vis[..., None], xy, 0.0), vis


def load_lifter(folder: Path, card: dict) -> Lifter:
    """The :class:`Lifter` of a released folder whose ``model.json`` is ``card`` (weights checked)."""
    from safetensors.torch import load_file

    weights = _check_file(folder, card, "weights")
    arch = card["architecture"]
    try:
        net = build_lifter(
            card["method"]["key"],
            LifterConfig(**arch["lifter"]),
            AEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in arch["ae"].items()}),
        )
        state = load_file(str(weights))
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(f"not a lifter as {MODEL_JSON} describes it ({type(err).__name__}: {err})", weights) from err
    _check_digest(card["method"]["key"], state, card, weights)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as err:
        raise FormatError(f"not the weights of a {card['method']['key']!r} lifter ({err})", weights) from err
    return Lifter(card, net.eval(), folder)


def _trained(run_dir: Path, key: str) -> tuple[torch.nn.Module, LiftConfig, Path]:
    """Method ``key``'s network of the first seed folder of a lifting run (or of a seed folder), loaded."""
    from safetensors.torch import load_file

    from structpose.train.export import load_weights
    from structpose.train.layout import pipeline_folder

    stage = {"lift_direct": "direct", "lift_ours": "finetune", "lift_ours_noft": "finetune"}[key]
    folder = pipeline_folder(run_dir, stage)
    cfg = load_lift_config(folder.config)
    if key != "lift_ours_noft":
        return load_weights(build_lifter(key, cfg.lifter, cfg.ae), folder.weights(stage)).eval(), cfg, folder.root
    # before fine-tuning: the MLP of 'latent', the decoder of 'ae_finetune', the normaliser (a buffer no stage trains)
    ae = load_weights(PoseAutoencoder(cfg.ae, 1.0), folder.weights("ae_finetune"))
    mlp = load_weights(LifterMLP(cfg.lifter, ae.latent_dim), folder.weights("latent"))
    normalizer = PoseNormalizer()
    tuned = load_file(str(folder.weights("finetune")))
    normalizer.load_state_dict({k.split(".", 1)[1]: v for k, v in tuned.items() if k.startswith("normalizer.")})
    return LiftedStructured(mlp, ae.decoder(), normalizer).eval(), cfg, folder.root


def export_lifter(run_dir: str | Path, key: str = "lift_ours", out: str | Path | None = None,
                  half: bool = False) -> Path:  # fmt: skip
    """Write lifting method ``key`` of a lifting run (or seed) folder as a released model folder.

    Args:
        run_dir: a ``structpose reproduce --input keypoints2d`` run folder or one of its ``seedN/``.
        key: ``lift_ours``, ``lift_direct`` or ``lift_ours_noft``.
        out: the folder (default ``RUN/models/KEY``).
        half: store the weights as float16 (half the size; computed in float32 when loaded).

    Returns:
        ``out``.
    """
    from structpose.train.layout import RunLayout

    if key not in LIFT_METHODS:
        raise InputError(f"unknown lifting method {key!r}; known: {', '.join(LIFT_METHODS)}")
    run_dir = Path(run_dir)
    net, cfg, folder = _trained(run_dir, key)
    root = folder.parent if folder.name.startswith("seed") else folder
    out = Path(out) if out is not None else RunLayout(root).model(key)
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    state = _unshared(state)
    card = lifter_card(key, cfg, state, root, half)
    card["validation"] = {"mpjpe_mm": _validation_mpjpe(folder, key), "split": "held-out training sequences, exact 2D"}
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    card["files"] = {"weights": WEIGHTS, "weights_sha256": file_sha256(out / WEIGHTS)}
    write_text(out / MODEL_JSON, json.dumps(card, indent=1) + "\n")
    return out


def _validation_mpjpe(folder: Path, key: str) -> float | None:
    """The last validation MPJPE (mm) of the stage that finished method ``key`` (its CSV log), or None."""
    from structpose.report import read_metrics_csv

    stage = {"lift_direct": "direct", "lift_ours": "finetune", "lift_ours_noft": "latent"}[key]
    logs = sorted((folder / "logs" / stage).glob("version_*/metrics.csv"))
    curve = read_metrics_csv(logs[-1]).get("val/mpjpe_mm", []) if logs else []
    return round(curve[-1][1], 2) if curve else None


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor its own storage (safetensors refuses shared ones; a tied decoder shares the encoder's)."""
    return {k: v.clone() for k, v in state.items()}


def lifter_card(key: str, cfg: LiftConfig, state: dict, run_root: Path, half: bool) -> dict:
    """``model.json`` of a released lifter (without ``files``)."""
    results_path = run_root / "results.json"
    metrics = None
    if results_path.is_file():
        sets = json.loads(results_path.read_text()).get("sets", {})
        metrics = {name: {m: v for m, v in entry.get(key, {}).items()} for name, entry in sets.items() if key in entry}
    h: HipOffset = cfg.augment.hips
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "id": f"{key}-{weights_digest(state)[:12]}",
        "method": {"key": key, "label": LIFT_METHODS[key], "kind": "lifter", "stage": key},
        "architecture": {"lifter": asdict(cfg.lifter), "ae": cfg.to_dict()["ae"]},
        "dtype": "float16" if half else "float32", "config": cfg.to_yaml(),
        "skeleton": {"name": "Human3.6M, 17 joints", "joint_names": list(H36M.names), "parents": list(H36M.parents),
                     "left": list(H36M.left), "right": list(H36M.right), "root": H36M.names[H36M.root]},
        "output": {"units": UNITS, "frame": FRAME, "shape": [NUM_JOINTS, 3]},
        "input": {"kind": INPUT_KIND, "layout": "h36m17: (N, 17, 2) px in the image and (N, 17) visible",
                  "accepts": ["blazepose33", "coco17", "h36m17"],
                  "normalisation": "visible joints centred on their bounding box and divided by half its longer "
                                   "side; hidden joints (0, 0) with flag 0 (structpose.lift.inputs.lifter_input)",
                  "synthesised": "Hip, Thorax and Spine from the other joints (structpose.keypoints.synthesise)",
                  "hip_offset": {"width": h.width, "rise": h.rise, "jitter": h.jitter,
                                 "note": "assumed, not measured: see structpose.lift.inputs"}},
        "training_data": {"poses": "structpose pose library (CMU and Bandai-Namco mocap), sampled Human3.6M-like "
                                   "cameras, no images", "protocol": cfg.data.protocol,
                          "sources": list(cfg.data.sources), "train_views": cfg.data.train_views},
        "license": _LICENCE if "bandai" in cfg.data.sources else "free for any use (CMU poses); the code is MIT",
        "metrics": metrics,
        "model_card": {"summary": f"{LIFT_METHODS[key]}: lifts 17 2D keypoints (a detector's) to a 3D pose",
                       "intended_use": "3D poses of people in photos and videos from a 2D detector's keypoints",
                       "limits": "trained on mocap of CMU and Bandai-Namco actors seen by Human3.6M-like cameras; "
                                 "the detector's hip offset is an assumption; depth is ambiguous from one view"},
        "source": {"run": str(run_root)},
    }  # fmt: skip
