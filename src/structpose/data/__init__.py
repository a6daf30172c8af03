"""Datasets: the pose library, the embedded default dataset, imports, stores -- and the public verbs for your
own mocap.

Evaluate a trained model on your own motion capture in three calls::

    from structpose.data import PoseImageDataset, read_mocap, render_poses

    take = read_mocap("my_take.bvh", fps=20)                   # (N, 17, 3) float32 mm, world frame, Z up
    render_poses(take.poses, "my_eval", sequence="my_take")    # my_eval/test.h5, rendered as the test split
    test = PoseImageDataset("my_eval", "test")                 # test.poses3d: camera frame, root-relative

* :func:`read_mocap` (:mod:`structpose.data.loose`): one ``.bvh``, or an ``.asf`` with its ``.amc``, with a
  named or detected rig -> :class:`MocapPoses`.
* :func:`render_poses` (:mod:`structpose.data.render_store`): poses -> a store rendered exactly as the
  embedded benchmark's test split.
* :class:`PoseImageDataset` (:mod:`structpose.data.dataset`): a store's split as a torch ``Dataset``.

These names are imported on first use, so ``import structpose.data.store`` stays as light as it was.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from structpose.data.dataset import PoseImageDataset
    from structpose.data.loose import RIG_CHOICES, MocapPoses, read_mocap
    from structpose.data.render_store import render_poses

_EXPORTS = {
    "read_mocap": "structpose.data.loose",
    "MocapPoses": "structpose.data.loose",
    "RIG_CHOICES": "structpose.data.loose",
    "render_poses": "structpose.data.render_store",
    "PoseImageDataset": "structpose.data.dataset",
}

__all__ = ["RIG_CHOICES", "MocapPoses", "PoseImageDataset", "read_mocap", "render_poses"]


def __getattr__(name: str) -> object:
    """The public names of :data:`__all__`, imported from their modules on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
