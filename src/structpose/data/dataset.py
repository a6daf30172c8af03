"""A torch ``Dataset`` over one or more store files (shards), reading images lazily and in batches.

Each worker process opens its own HDF5 handles on first access (handles are keyed by ``os.getpid()``
and dropped when pickled), so the dataset is safe with ``DataLoader(num_workers > 0)`` under both
``fork`` and ``spawn``. ``__getitems__`` is the batched fetch that torch's ``DataLoader`` calls with a
whole batch of indices: it reads each shard's images in one HDF5 call and returns the list of
per-sample dicts that ``collate_fn`` expects (``default_collate`` stacks them).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from structpose.data.store import META_FIELDS, StoreError, list_shards, open_h5, open_store, read_rows


def batch_to_items(
    positions: np.ndarray, images: np.ndarray, poses3d: np.ndarray, joints2d: np.ndarray, intrinsics: np.ndarray
) -> list[dict[str, torch.Tensor]]:
    """Per-sample dicts (as ``__getitem__`` returns them) from batched arrays, sharing their memory.

    positions (n,) int, images (n, S, S, 3) uint8, poses3d (n, 17, 3), joints2d (n, 17, 2), intrinsics (n, 9)
    -> n dicts of ``image`` (3, S, S) uint8, ``pose3d``, ``joints2d``, ``intrinsics`` float32, ``index`` int64.
    """
    image = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    pose3d, j2d, intr = (torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                         for a in (poses3d, joints2d, intrinsics))  # fmt: skip
    index = torch.as_tensor(positions, dtype=torch.int64)
    return [
        {"image": image[k], "pose3d": pose3d[k], "joints2d": j2d[k], "intrinsics": intr[k], "index": index[k]}
        for k in range(len(index))
    ]


class PoseImageDataset(Dataset):
    """Samples of a dataset directory's split (``root, split``) or of explicit store files, concatenated.

    ``indices`` (optional, int array into the concatenation) selects and orders a subset. Sample ``i`` is
    ``{"image": uint8 (3, S, S), "pose3d": float32 (17, 3) mm, "joints2d": float32 (17, 2) crop px,
    "intrinsics": float32 (9,), "index": int64 scalar i}``: ``index`` is the position in this dataset,
    so predictions match ``self.poses3d[index]``.

    Metadata for evaluation, in this dataset's order and without touching images: ``poses3d`` (N, 17, 3),
    ``joints2d`` (N, 17, 2), ``intrinsics`` (N, 9), ``boxes`` (N, 4), ``root_cam`` (N, 3), ``frame`` (N,),
    ``subject``, ``action``, ``sequence``, ``camera_id`` (N,) str arrays; ``image_size`` (S);
    ``paths`` (the shard files) and ``shard_attrs`` (their provenance attributes).
    """

    def __init__(
        self, root_or_paths: str | Path | list[Path], split: str | None = None, indices: np.ndarray | None = None
    ) -> None:
        self.paths = _resolve_paths(root_or_paths, split)
        meta: dict[str, list[np.ndarray]] = {name: [] for name in META_FIELDS}
        sizes, self.shard_attrs = [], []
        image_sizes = set()
        for path in self.paths:
            with open_store(path) as store:
                sizes.append(len(store))
                image_sizes.add(store.image_size)
                self.shard_attrs.append(store.attrs)
                for name in META_FIELDS:
                    meta[name].append(getattr(store, name))
        if len(image_sizes) != 1:
            raise StoreError(f"{self.paths}: shards have different image sizes {sorted(image_sizes)}")
        self.image_size: int = image_sizes.pop()
        self._offsets = np.cumsum([0, *sizes])  # (num_shards + 1,) first global index of each shard
        total = int(self._offsets[-1])
        if indices is None:
            self._global = np.arange(total, dtype=np.int64)
        else:
            self._global = np.asarray(indices, dtype=np.int64).reshape(-1)
            if self._global.size and (self._global.min() < 0 or self._global.max() >= total):
                raise IndexError(f"indices must lie in [0, {total}), got [{self._global.min()}, {self._global.max()}]")
        subset = {name: np.concatenate(arrays)[self._global] for name, arrays in meta.items()}
        self.poses3d: np.ndarray = subset["poses3d"]
        self.joints2d: np.ndarray = subset["joints2d"]
        self.intrinsics: np.ndarray = subset["intrinsics"]
        self.boxes: np.ndarray = subset["boxes"]
        self.root_cam: np.ndarray = subset["root_cam"]
        self.frame: np.ndarray = subset["frame"]
        self.subject: np.ndarray = subset["subject"]
        self.action: np.ndarray = subset["action"]
        self.sequence: np.ndarray = subset["sequence"]
        self.camera_id: np.ndarray = subset["camera_id"]
        self._handles: dict[int, list[h5py.Dataset | None]] = {}  # pid -> images dataset of each shard
        self._perturb: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._global)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.__getitems__([i])[0]

    def _positions(self, indices) -> np.ndarray:
        positions = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if positions.size and (positions.min() < -n or positions.max() >= n):
            raise IndexError(f"index out of range for a dataset of {n} samples")
        return positions % max(n, 1)

    def subset(self, indices) -> PoseImageDataset:
        """The samples at positions ``indices`` of this dataset, as a dataset of their own; no file is read
        (the metadata is already in memory)."""
        positions = self._positions(indices)
        view = copy.copy(self)
        view._global = self._global[positions]
        for name in META_FIELDS:
            setattr(view, name, getattr(self, name)[positions])
        view._handles = {}
        return view

    def perturbed(self, perturb: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> PoseImageDataset:
        """This dataset with its images passed through ``perturb(images (n, S, S, 3) uint8, sample ids (n,),
        joints2d (n, 17, 2)) -> images`` whenever they are read (e.g. :mod:`structpose.data.perturb`'s
        occluders; the ids index the store files, so a sample is damaged alike in every view); poses and
        metadata are unchanged."""
        view = self.subset(np.arange(len(self)))
        view._perturb = perturb
        return view

    def images(self, indices) -> np.ndarray:
        """The crops at dataset positions ``indices`` (n,) as (n, S, S, 3) uint8, HWC, in the given order."""
        positions = self._positions(indices)
        return self._perturbed(self._read_images(self._global[positions]), positions)

    def _perturbed(self, images: np.ndarray, positions: np.ndarray) -> np.ndarray:
        if self._perturb is None:
            return images
        return self._perturb(images, self._global[positions], self.joints2d[positions])

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        """Batched fetch: one HDF5 read per shard for the whole batch; returns one dict per index."""
        positions = self._positions(indices)
        images = self._perturbed(self._read_images(self._global[positions]), positions)
        return batch_to_items(positions, images, self.poses3d[positions], self.joints2d[positions],
                              self.intrinsics[positions])  # fmt: skip

    def _read_images(self, global_idx: np.ndarray) -> np.ndarray:
        """Images at global indices (n,) (any order, repeats allowed) -> (n, S, S, 3) uint8."""
        unique, inverse = np.unique(global_idx, return_inverse=True)
        S = self.image_size
        out = np.empty((len(unique), S, S, 3), dtype=np.uint8)
        shard_of = np.searchsorted(self._offsets, unique, side="right") - 1
        for shard in np.unique(shard_of):
            sel = np.flatnonzero(shard_of == shard)
            local = unique[sel] - self._offsets[shard]
            out[sel[0] : sel[-1] + 1] = read_rows(self._images(int(shard)), local)  # sel: one sorted run
        return out[inverse]

    def _images(self, shard: int) -> h5py.Dataset:
        """This process's handle on shard ``shard``'s images, opened on first use."""
        handles = self._handles.setdefault(os.getpid(), [None] * len(self.paths))
        if handles[shard] is None:
            handles[shard] = open_h5(self.paths[shard])["images"]
        return handles[shard]

    def close(self) -> None:
        """Close this process's file handles (they reopen on the next read)."""
        for ds in self._handles.pop(os.getpid(), []):
            if ds is not None:
                ds.file.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = {}  # HDF5 handles never cross a process boundary
        return state


def _resolve_paths(root_or_paths: str | Path | list[Path], split: str | None) -> list[Path]:
    if isinstance(root_or_paths, (list, tuple)):
        if not root_or_paths:
            raise ValueError("no store paths given")
        return [Path(p) for p in root_or_paths]
    root = Path(root_or_paths)
    if root.is_dir():
        if split is None:
            raise ValueError(f"{root} is a dataset directory: give the split to read (e.g. 'train')")
        return list_shards(root, split)
    return [root]
