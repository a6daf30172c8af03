"""Data for training: the train/validation split of a store's TRAIN split, and the two DataModules.

:func:`load_splits` opens a dataset directory; :class:`PoseImageDataModule` serves its images and poses
to the image stages, :class:`PoseDataModule` only its poses (no image is read) to the auto-encoder.
Training loaders shuffle; under DDP Lightning swaps in its ``DistributedSampler``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from structpose.data.dataset import PoseImageDataset
from structpose.data.store import StoreError, list_shards
from structpose.errors import ConfigError
from structpose.train.config import DataConfig


def split_train_val(
    groups: np.ndarray, val_fraction: float, train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sorted int64) of the training and validation samples of a training split.

    ``groups`` (N,): a sequence label per sample; validation takes whole groups, drawn in a seeded random
    order until they hold at least ``val_fraction`` of the samples (none if ``val_fraction`` is 0).
    ``train_fraction`` keeps a seeded random subset of the other samples (at least one).
    """
    rng = np.random.default_rng(seed)
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    counts = np.bincount(inverse, minlength=len(labels))
    order = rng.permutation(len(labels))
    # the first groups of the random order whose running total reaches the wanted fraction
    taken = np.cumsum(counts[order]) - counts[order] < val_fraction * len(groups)
    is_val = np.isin(inverse, order[taken])
    if is_val.all():
        raise ConfigError(f"val_fraction={val_fraction} leaves no training sample ({len(labels)} sequences)")
    train = np.flatnonzero(~is_val)
    keep = max(1, round(train_fraction * len(train)))
    train = np.sort(rng.choice(train, size=keep, replace=False)) if keep < len(train) else train
    return train.astype(np.int64), np.flatnonzero(is_val).astype(np.int64)


@dataclass
class Splits:
    """The datasets of a run: ``train`` and ``val`` (disjoint parts of the store's train split; ``val``
    None when ``val_fraction`` is 0), ``test`` (the store's test split) and ``unseen`` (the store's test set
    of motions without training counterpart, protocol v2; None when the store has none). ``ae_train``: the
    auto-encoder's training poses (N, 17, 3) mm when they are not ``train``'s (``data.ae_poses=library``)."""

    train: PoseImageDataset
    val: PoseImageDataset | None
    test: PoseImageDataset
    unseen: PoseImageDataset | None = None
    ae_train: np.ndarray | None = None


def load_splits(cfg: DataConfig, image_size: int) -> Splits:
    """Open ``cfg.root`` and carve the validation set out of its train split (:func:`split_train_val`, by
    subject and sequence, drawn with ``cfg.split_seed``). ``image_size``: the side (px) the CNN expects; the
    store must match it."""
    seed = cfg.split_seed
    full = PoseImageDataset(cfg.root, "train")
    if full.image_size != image_size:
        raise ConfigError(f"{cfg.root} holds {full.image_size} px images but cnn.in_size={image_size}: "
                         f"set cnn.in_size (and cnn.crop) to match the data")  # fmt: skip
    pool = _with_actions(full.action, cfg.actions, f"{cfg.root} (train)")
    groups = np.char.add(np.char.add(full.subject[pool].astype(str), "/"), full.sequence[pool].astype(str))
    train_idx, val_idx = (pool[i] for i in split_train_val(groups, cfg.val_fraction, cfg.train_fraction, seed))
    if cfg.equal_steps and cfg.train_fraction < 1:  # as many samples per epoch as the whole training part
        train_idx = np.resize(train_idx, len(pool) - len(val_idx))
    val = full.subset(val_idx) if len(val_idx) else None
    test = PoseImageDataset(cfg.root, "test")
    if cfg.actions is not None:
        test = test.subset(_with_actions(test.action, cfg.actions, f"{cfg.root} (test)"))
    return Splits(full.subset(train_idx), val, test, _unseen(cfg), _ae_poses(cfg, full, val))


def _ae_poses(cfg: DataConfig, full: PoseImageDataset, val: PoseImageDataset | None) -> np.ndarray | None:
    """The auto-encoder's own training poses under ``data.ae_poses=library`` (None otherwise)."""
    if cfg.ae_poses == "images":
        return None
    from structpose.data.synth import library_poses

    held_out = set() if val is None else set(val.sequence.astype(str))
    return library_poses(cfg.ae_library_poses, full.shard_attrs[0], held_out, seed=cfg.split_seed)


def _unseen(cfg: DataConfig) -> PoseImageDataset | None:
    """The store's ``unseen`` split (all of it: it holds no action of the others), or None without one."""
    try:
        list_shards(cfg.root, "unseen")
    except StoreError:
        return None
    return None if cfg.actions is not None else PoseImageDataset(cfg.root, "unseen")


def _with_actions(actions: np.ndarray, keep: tuple[str, ...] | None, where: str) -> np.ndarray:
    """Indices (int64) of the samples whose action is in ``keep`` (all when ``keep`` is None)."""
    if keep is None:
        return np.arange(len(actions), dtype=np.int64)
    idx = np.flatnonzero(np.isin(actions, list(keep))).astype(np.int64)
    if len(idx) == 0:
        raise ConfigError(f"{where} has no sample of the actions {list(keep)}")
    return idx


class PoseDataset(Dataset):
    """In-memory poses (N, 17, 3) mm as items ``{"pose3d": float32 (17, 3)}``, fetched a batch at a time."""

    def __init__(self, poses3d: np.ndarray | torch.Tensor):
        self.poses3d = torch.as_tensor(np.asarray(poses3d), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.poses3d)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"pose3d": self.poses3d[i]}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """A whole batch in one indexing op; collated by :func:`_identity`."""
        return {"pose3d": self.poses3d[torch.as_tensor(indices)]}


def _identity(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


class _LoaderModule(L.LightningDataModule):
    """Train (shuffled), validation and test loaders over given datasets (``None``: no such loader).

    ``batch_size`` is set by :func:`structpose.train.engine.fit_stage` from the stage's config. Workers
    are not persistent: each epoch's iterator draws its seeds afresh from torch's RNG, which is what makes
    a resumed run identical to an uninterrupted one.
    """

    collate_fn: Callable | None = None  # None: DataLoader's default (stacks the item dicts)

    def __init__(self, train: Dataset, val: Dataset | None, test: Dataset | None, batch_size: int,
                 num_workers: int) -> None:  # fmt: skip
        super().__init__()
        self.train_set, self.val_set, self.test_set = train, val, test
        self.batch_size = batch_size
        self.num_workers = num_workers

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader | list:
        if dataset is None:
            return []  # no batches: Lightning skips the loop
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=self.collate_fn, pin_memory=torch.cuda.is_available())  # fmt: skip

    def train_dataloader(self) -> DataLoader | list:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader | list:
        return self._loader(self.test_set, shuffle=False)


class PoseImageDataModule(_LoaderModule):
    """Images and poses (items of :class:`~structpose.data.dataset.PoseImageDataset`, or any dataset with
    ``image`` uint8 (3, S, S) and ``pose3d`` (17, 3) mm) for the image stages."""

    @classmethod
    def from_splits(cls, splits: Splits, batch_size: int, num_workers: int) -> PoseImageDataModule:
        return cls(splits.train, splits.val, splits.test, batch_size, num_workers)


class PoseDataModule(_LoaderModule):
    """Poses only, in memory, for the auto-encoder: ``train``/``val``/``test`` arrays (N, 17, 3) mm (e.g. a
    :class:`~structpose.data.dataset.PoseImageDataset`'s ``poses3d``, read without its images)."""

    collate_fn = staticmethod(_identity)

    def __init__(self, train: np.ndarray, val: np.ndarray | None, test: np.ndarray | None = None,
                 batch_size: int = 128) -> None:  # fmt: skip
        wrap = [None if p is None else PoseDataset(p) for p in (train, val, test)]
        super().__init__(*wrap, batch_size=batch_size, num_workers=0)

    @classmethod
    def from_splits(cls, splits: Splits, batch_size: int) -> PoseDataModule:
        train = splits.train.poses3d if splits.ae_train is None else splits.ae_train
        return cls(train, None if splits.val is None else splits.val.poses3d, splits.test.poses3d, batch_size)
