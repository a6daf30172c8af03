"""``structpose data show``: a picture of what a dataset store holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from structpose.data.store import list_shards, open_store
from structpose.viz import sample_sheet


def show_store(path: str | Path, out: str | Path, split: str = "train", count: int = 18, seed: int = 0) -> Path:
    """Write a PNG grid of ``count`` random samples of ``split`` (a store directory) or of one .h5 file."""
    path = Path(path)
    files = list_shards(path, split) if path.is_dir() else [path]
    with open_store(files[0]) as store:
        n = len(store)
        idx = np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))
        images = store.images(idx)
        titles = [f"{store.subject[i]} {store.action[i]}"[:28] for i in idx]
        return sample_sheet(images, store.joints2d[idx], store.poses3d[idx], titles, out)
