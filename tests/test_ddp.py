"""Two-process DDP on CPU (gloo) through Lightning: both ranks end with identical weights.

The test runs this file as a script in a subprocess; Lightning's ``strategy="ddp"`` launcher then starts
the second rank by running the same command again (as ``torchrun`` would), so pytest itself never forks.
Each rank saves its weights after two stages: greedy pre-training of the AE's second layer (the first
layer's parameters are then unused, and DDP must not wait for their gradients) and the StructuredNet.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SAMPLES = 96


class _ToyImages(torch.utils.data.Dataset):
    """Seeded random 32 px images and poses, the same in every process."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (SAMPLES, 3, 32, 32), dtype=torch.uint8, generator=g)
        self.poses = torch.randn(SAMPLES, 17, 3, generator=g) * 200

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "pose3d": self.poses[i]}


def _ddp_main(out: Path) -> None:
    """Runs in each rank: two stages with 2-process DDP, then this rank's initial and final weights and the
    batches it trained on (their pose sums) -> ``out/rank{r}.pt``."""
    import copy

    import torch.distributed as dist
    from lightning.pytorch.callbacks import Callback

    from structpose.models.autoencoder import PoseAutoencoder
    from structpose.models.cnn import PaperCNN
    from structpose.models.normalize import PoseNormalizer
    from structpose.models.structured import StructuredNet
    from structpose.train.ae_module import AEModule
    from structpose.train.config import StageConfig, TrainerConfig, load_config
    from structpose.train.data import PoseDataModule, PoseImageDataModule
    from structpose.train.engine import fit_stage
    from structpose.train.image_module import ImageRegressionModule

    torch.set_num_threads(1)
    cfg = load_config("tiny")
    run = TrainerConfig(accelerator="cpu", devices=2, strategy="ddp", progress_bar=False)
    data = _ToyImages()
    norm = PoseNormalizer.from_poses(data.poses)
    torch.manual_seed(0)
    ae = PoseAutoencoder(cfg.ae, norm.scale_mm)
    net = StructuredNet(PaperCNN(cfg.cnn, ae.latent_dim), ae.decoder(), norm)
    initial = copy.deepcopy(net.state_dict())
    seen: list[float] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen.append(float(batch["pose3d"].sum()))

    stage = StageConfig(epochs=2, batch_size=16, lr=1e-3, schedule="cosine")
    fit_stage(AEModule(ae, norm, layer=1), PoseDataModule(data.poses.numpy(), None, batch_size=16), stage,
              out, "ae_pretrain1", trainer_cfg=run)  # fmt: skip
    images = PoseImageDataModule(data, None, None, batch_size=16, num_workers=0)
    fit_stage(ImageRegressionModule(net, "pose", norm, cfg.cnn.crop), images, stage, out, "ours", trainer_cfg=run,
              callbacks=[Record()])  # fmt: skip
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.save({"world": world, "initial": initial, "state": net.state_dict(), "seen": seen}, out / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    # bit-exact is sound: all-reduce gives both ranks the same gradient bits; the updates are elementwise
    assert all(torch.equal(first[k], second[k]) for k in first)
    trained = [k for k in first if not torch.equal(first[k], ranks[0]["initial"][k])]
    assert set(first) - set(trained) == {"normalizer.mean", "normalizer.scale"}  # every parameter trained
    # each rank trained on its own half: 96 samples / 2 ranks / 16 per batch = 3 batches an epoch
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 6 and ranks[0]["seen"] != ranks[1]["seen"]
    assert (tmp_path / "ours" / "model.safetensors").is_file() and (tmp_path / "ours" / "last.ckpt").is_file()


if __name__ == "__main__":
    _ddp_main(Path(sys.argv[1]))
