"""The lifter's data: pose-library frames seen by sampled Human3.6M-like cameras, as (2D, 3D) pairs.

No image is rendered: a view is a library frame, a camera sampled as the renderer samples them
(:func:`structpose.render.sample_camera`), the camera-frame root-relative pose (mm) and its projection with
lens distortion (px in the camera's 1000-px image). The splits follow the embedded benchmark
(:mod:`structpose.data.protocol`): ``train`` and ``val`` from the library's training frames (validation takes
whole sequences, drawn with ``split_seed`` by :func:`structpose.train.data.split_train_val`), ``test`` and
``unseen`` exactly the frames and cameras of the rendered store's ``test`` and ``unseen`` splits (the same
draws as :func:`structpose.data.synth.render_split_sample`), so the lifter is scored on the poses and
viewpoints the image methods are scored on: the mocap poses themselves, as capsule people wear them (mesh
people carry each pose onto a body of their own bone lengths; ``data.test_store`` scores on a store's own
labels, whichever renderer drew it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from structpose.data.poselib import PoseLibrary
from structpose.data.protocol import protocol_splits
from structpose.data.synth import _SPLIT_ID, _frames
from structpose.errors import ConfigError
from structpose.render import sample_camera


@dataclass(frozen=True)
class Views:
    """Views of library frames. ``poses3d`` (N, 17, 3) float32 mm root-relative camera frame; ``joints2d``
    (N, 17, 2) float32 px (the camera's image, distortion applied); ``action``, ``sequence``, ``subject``
    (N,) str; ``frame`` (N,) int64 library frame index."""

    poses3d: np.ndarray
    joints2d: np.ndarray
    action: np.ndarray
    sequence: np.ndarray
    subject: np.ndarray
    frame: np.ndarray

    def __len__(self) -> int:
        return len(self.poses3d)

    def subset(self, idx: np.ndarray) -> Views:
        return Views(*(getattr(self, k)[idx] for k in ("poses3d", "joints2d", "action", "sequence", "subject",
                                                       "frame")))  # fmt: skip


def views(lib: PoseLibrary, frames: np.ndarray, seed: int, split: str) -> Views:
    """The views of library ``frames`` (M,): view ``i`` is seen by the camera drawn first from
    ``default_rng([seed, split id, i])``, as the ``i``-th rendered sample of ``split`` is. A view with a
    joint behind the camera is left out (none is, with the renderer's camera distances)."""
    poses, joints, keep = [], [], []
    for i, f in enumerate(frames):
        pose = lib.poses[f].astype(np.float64)
        cam = sample_camera(np.random.default_rng([seed, _SPLIT_ID[split], i]), pose)
        x = cam.world_to_camera(pose)
        if np.any(x[:, 2] <= 0):
            continue
        poses.append(x - x[0])
        joints.append(cam.project(x))
        keep.append(f)
    keep = np.asarray(keep, np.int64)
    seqs = [lib.sequences[int(s)] for s in lib.sequence[keep]]
    return Views(np.asarray(poses, np.float32).reshape(-1, 17, 3), np.asarray(joints, np.float32).reshape(-1, 17, 2),
                 np.array([str(q["action"]) for q in seqs]), np.array([str(q["name"]) for q in seqs]),
                 np.array([str(q["subject"]) for q in seqs]), keep)  # fmt: skip


def lift_splits(lib: PoseLibrary, protocol: str, seed: int, split_seed: int, sizes: dict[str, int],
                val_fraction: float) -> dict[str, Views]:  # fmt: skip
    """``train``, ``val``, ``test`` (and ``unseen`` when the protocol has it) views (module docstring).

    ``sizes``: views per split (``train`` counts the training frames' views before validation is carved out;
    ``test`` and ``unseen`` as the rendered store's ``test_images`` / ``unseen_images``); ``seed``: the
    dataset seed (``SynthConfig.seed``, 0 for the embedded default); ``split_seed``: the validation draw.
    """
    from structpose.train.data import split_train_val

    have = set(np.unique(protocol_splits(lib, protocol)))
    out = {}
    for split in ("train", "test", "unseen"):
        if split in have and sizes.get(split, 0) > 0:
            out[split] = views(lib, _frames(lib, split, sizes[split], seed, protocol), seed, split)
    if "train" not in out or "test" not in out:
        raise ConfigError(f"the pose library has no train or test frames under protocol {protocol}")
    train = out["train"]
    groups = np.char.add(np.char.add(train.subject, "/"), train.sequence)
    tr, va = split_train_val(groups, val_fraction, 1.0, split_seed)
    out["train"], out["val"] = train.subset(tr), train.subset(va)
    return out


class ViewDataset(Dataset):
    """Views as items ``{"joints2d": (17, 2) px, "pose3d": (17, 3) mm}`` (float32), or, with ``inputs``
    (N, 51), ``{"keypoints": (51,), "pose3d"}``: fixed lifter inputs (an evaluation condition). Fetched a
    batch at a time (``__getitems__``)."""

    def __init__(self, v: Views, inputs: np.ndarray | None = None):
        self.pose3d = torch.from_numpy(np.ascontiguousarray(v.poses3d, np.float32))
        self.joints2d = torch.from_numpy(np.ascontiguousarray(v.joints2d, np.float32))
        self.inputs = None if inputs is None else torch.from_numpy(np.ascontiguousarray(inputs, np.float32))

    def __len__(self) -> int:
        return len(self.pose3d)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices)
        if self.inputs is not None:
            return {"keypoints": self.inputs[idx], "pose3d": self.pose3d[idx]}
        return {"joints2d": self.joints2d[idx], "pose3d": self.pose3d[idx]}
