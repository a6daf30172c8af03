"""Read throughput of PoseImageDataset vs the same samples held in memory, both through a DataLoader.

Writes a store of random samples to a temporary directory, then times one shuffled epoch of
``DataLoader(batch_size=128, shuffle=True, num_workers=2)`` over (a) ``PoseImageDataset`` and (b) an
in-memory dataset over numpy arrays with the same ``__getitems__``/collate path. Prints samples/s for
both and their ratio (target >= 0.5). Run: ``.venv/bin/python benches/bench_store.py [--n 4096 --size 128]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from structpose.data.dataset import PoseImageDataset, batch_to_items
from structpose.data.store import StoreWriter, open_store, shard_path


class InMemoryDataset(Dataset):
    """The baseline: images (N, S, S, 3) and labels in numpy arrays, batched like PoseImageDataset."""

    def __init__(self, images: np.ndarray, poses3d: np.ndarray, joints2d: np.ndarray, intrinsics: np.ndarray):
        self.images, self.poses3d, self.joints2d, self.intrinsics = images, poses3d, joints2d, intrinsics

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        i = np.asarray(indices)
        return batch_to_items(i, self.images[i], self.poses3d[i], self.joints2d[i], self.intrinsics[i])


def write_store(root: Path, n: int, size: int, chunk: int) -> Path:
    """A store of ``n`` random samples of ``size`` px, written 256 at a time; returns its path."""
    rng = np.random.default_rng(0)
    with StoreWriter(shard_path(root, "train"), size, attrs={"source": "bench"}, chunk=chunk) as w:
        for start in range(0, n, 256):
            m = min(256, n - start)
            w.append(
                images=rng.integers(0, 256, (m, size, size, 3), dtype=np.uint8),
                poses3d=rng.normal(0, 300, (m, 17, 3)).astype(np.float32),
                joints2d=rng.uniform(0, size, (m, 17, 2)).astype(np.float32),
                intrinsics=np.tile(np.float32([1145, 1144, 512, 515, 0, 0, 0, 0, 0]), (m, 1)),
                boxes=np.tile(np.float32([100, 100, 500, 500]), (m, 1)),
                root_cam=rng.normal(0, 1000, (m, 3)).astype(np.float32),
                subject=["S1"] * m, action=["Walking"] * m, sequence=["Walking 1"] * m,
                frame=np.arange(start, start + m), camera_id=["54138969"] * m,
            )  # fmt: skip
        return w.close()


def throughput(dataset: Dataset, epochs: int, workers: int) -> float:
    """Samples per second over ``epochs`` shuffled epochs (the first, warm-up epoch is not timed)."""
    loader = DataLoader(dataset, batch_size=128, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    for _ in loader:
        pass
    start, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            seen += len(batch["index"])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="samples in the store")
    parser.add_argument("--size", type=int, default=128, help="image size S (px)")
    parser.add_argument("--chunk", type=int, default=64, help="writer chunk (images per HDF5 chunk)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loader")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = write_store(Path(tmp), args.n, args.size, args.chunk)
        mb = path.stat().st_size / 2**20
        print(f"wrote {args.n} samples ({mb:.0f} MiB) in {time.perf_counter() - t0:.2f} s")
        with open_store(path) as store:
            memory = InMemoryDataset(store.images(slice(None)), store.poses3d, store.joints2d, store.intrinsics)
        disk = PoseImageDataset(Path(tmp), "train")
        mem_rate = throughput(memory, args.epochs, args.workers)
        disk_rate = throughput(disk, args.epochs, args.workers)
    print(f"in-memory numpy : {mem_rate:9.0f} samples/s")
    print(f"PoseImageDataset: {disk_rate:9.0f} samples/s")
    print(f"ratio           : {disk_rate / mem_rate:9.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
