"""Training throughput of the paper CNN: our Lightning loop + DataModule over a store vs a bare PyTorch loop.

Both arms train the same network (``PaperCNN`` regressing the 2000-d AE code, channels-last, fused Adam,
the same batch and crops) in the same process; the Lightning arm reads its images from an HDF5 store
through :class:`~structpose.train.data.PoseImageDataModule`, the bare arm from uint8 tensors in memory.
The ratio (target >= 0.9) is the cost of the engine. Then inference images/s at batch 1 and 64.

    .venv/bin/python benches/bench_train.py                      # 128 px, crop 112, batch 64
    .venv/bin/python benches/bench_train.py --size 64 --batch 128  # the quick preset's images
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from structpose.data.store import StoreWriter, shard_path
from structpose.models.autoencoder import AEConfig, PoseAutoencoder
from structpose.models.cnn import CNNConfig, PaperCNN, default_crop, preprocess
from structpose.models.normalize import PoseNormalizer
from structpose.models.structured import StructuredNet
from structpose.train.config import DataConfig, StageConfig, TrainerConfig
from structpose.train.data import PoseImageDataModule, load_splits
from structpose.train.engine import fit_stage
from structpose.train.export import PosePredictor
from structpose.train.image_module import ImageRegressionModule
from structpose.train.optim import make_adam


def write_store(root: Path, size: int, n: int) -> Path:
    """A store of ``n`` random ``size`` px images (train) and 64 (test), 20 sequences."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("test", 64)):
        with StoreWriter(shard_path(root, split), size) as w:
            idx = np.arange(count)
            w.append(images=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
                     poses3d=rng.normal(0, 200, (count, 17, 3)), joints2d=np.zeros((count, 17, 2)),
                     intrinsics=np.zeros((count, 9)), boxes=np.zeros((count, 4)), root_cam=np.zeros((count, 3)),
                     subject=["S1"] * count, action=["bench"] * count, sequence=[f"s{i * 20 // count}" for i in idx],
                     frame=idx, camera_id=["c0"] * count)  # fmt: skip
    return root


class StepTimer(Callback):
    """Wall time from the start of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = 0.0
        self.images = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step > self.warmup:
            self.images += len(batch["image"])
            self.end = time.perf_counter()


def bench_lightning(root: Path, cnn_cfg: CNNConfig, batch: int, steps: int, warmup: int, workers: int) -> float:
    """Images/s of the latent stage through ``fit_stage`` (validation off)."""
    splits = load_splits(DataConfig(root=str(root), val_fraction=0.0), cnn_cfg.in_size)
    norm = PoseNormalizer.from_poses(splits.train.poses3d)
    ae = PoseAutoencoder(AEConfig(), norm.scale_mm)
    module = ImageRegressionModule(PaperCNN(cnn_cfg, ae.latent_dim), "latent", norm, cnn_cfg.crop, ae,
                                   channels_last=True)  # fmt: skip
    timer = StepTimer(warmup)
    with tempfile.TemporaryDirectory() as run_dir:
        stage = StageConfig(epochs=1000, batch_size=batch, max_steps=warmup + steps)
        run = TrainerConfig(accelerator="cpu", devices=1, progress_bar=False)
        fit_stage(module, PoseImageDataModule.from_splits(splits, batch, workers), stage, Path(run_dir), "bench",
                  trainer_cfg=run, callbacks=[timer])  # fmt: skip
    return timer.images / (timer.end - timer.start)


def bench_bare(cnn_cfg: CNNConfig, batch: int, steps: int, warmup: int) -> float:
    """Images/s of a plain loop over in-memory uint8 images with precomputed 2000-d targets."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4 * batch, 3, cnn_cfg.in_size, cnn_cfg.in_size), dtype=torch.uint8, generator=g)
    targets = torch.rand(4 * batch, 2000, generator=g)
    net = PaperCNN(cnn_cfg, 2000).to(memory_format=torch.channels_last).train()
    opt = make_adam(list(net.parameters()), 1e-3, 0.0)
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        sel = torch.randint(0, len(images), (batch,), generator=g)
        x = preprocess(images[sel], train=True, crop=cnn_cfg.crop).contiguous(memory_format=torch.channels_last)
        loss = (net(x) - targets[sel]).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


@torch.inference_mode()
def bench_inference(cnn_cfg: CNNConfig, batch: int, repeats: int) -> float:
    """Images/s of the StructuredNet predictor (uint8 images -> mm) in eval mode."""
    ae = PoseAutoencoder(AEConfig(), 200.0)
    net = StructuredNet(PaperCNN(cnn_cfg, ae.latent_dim), ae.decoder(), PoseNormalizer())
    predictor = PosePredictor(net.to(memory_format=torch.channels_last)).eval()
    images = torch.randint(0, 256, (batch, 3, cnn_cfg.in_size, cnn_cfg.in_size), dtype=torch.uint8)
    for _ in range(3):
        predictor(images)
    start = time.perf_counter()
    for _ in range(repeats):
        predictor(images)
    return repeats * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="image side S (px); the crop is 112/128 of it")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each arm; the best counts")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the Lightning arm")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    L.seed_everything(0, verbose=False)
    cnn_cfg = CNNConfig(in_size=args.size, crop=default_crop(args.size))
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_store(Path(tmp), args.size, args.batch * (args.steps + args.warmup + 1))
        for _ in range(args.repeats):  # alternate, so that a busy spell of the machine hits both arms
            bare.append(bench_bare(cnn_cfg, args.batch, args.steps, args.warmup))
            ours.append(bench_lightning(root, cnn_cfg, args.batch, args.steps, args.warmup, args.workers))
    print(f"training, {args.size} px (crop {cnn_cfg.crop}), batch {args.batch}, {args.threads} threads, "
          f"best of {args.repeats}:")  # fmt: skip
    print(f"  bare PyTorch loop, in-memory tensors : {max(bare):8.1f} img/s  (runs: {_rates(bare)})")
    print(f"  Lightning fit_stage + store DataModule: {max(ours):8.1f} img/s  (runs: {_rates(ours)})")
    print(f"  ratio                                 : {max(ours) / max(bare):8.3f} (target >= 0.9)")
    for batch in (1, 64):
        rate = bench_inference(cnn_cfg, batch, repeats=max(3, 192 // batch))
        print(f"inference, batch {batch:3d}: {rate:8.1f} img/s")


def _rates(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
