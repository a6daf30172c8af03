"""``structpose data show``: a picture of what a dataset store holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from structpose.data.dataset import PoseImageDataset
from structpose.viz import sample_sheet


def show_store(path: str | Path, out: str | Path, split: str = "train", count: int = 18, seed: int = 0) -> Path:
    """Write a PNG grid of ``count`` random samples of ``split`` (a store directory, all its shards) or of
    one .h5 file, with their 2D skeletons and the 3D pose of the first."""
    ds = PoseImageDataset(path, split if Path(path).is_dir() else None)
    idx = np.sort(np.random.default_rng(seed).choice(len(ds), size=min(count, len(ds)), replace=False))
    titles = [f"{ds.subject[i]} {ds.action[i]}"[:28] for i in idx]
    return sample_sheet(ds.images(idx), ds.joints2d[idx], ds.poses3d[idx], titles, out)
