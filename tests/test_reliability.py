"""Bad input and failing training never cost data or give a wrong answer: each finding of the reliability
probe (issue 7) as a regression test."""

from __future__ import annotations

from pathlib import Path

import h5py
import lightning as L
import numpy as np
import pytest
import torch
from test_train import _Crash, _Killed, _poses, make_store

from structpose.data.dataset import PoseImageDataset
from structpose.data.store import StoreError, shard_path
from structpose.errors import InputError, TrainingError
from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.normalize import PoseNormalizer
from structpose.train.ae_module import AEModule
from structpose.train.config import StageConfig, TrainerConfig, load_config
from structpose.train.data import PoseDataModule
from structpose.train.engine import LAST, WEIGHTS, fit_stage

RUN = TrainerConfig(accelerator="cpu", devices=1, progress_bar=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), n_train=96, n_test=16)


def _ae_stage(lr: float = 1e-3, epochs: int = 2) -> tuple[AEModule, PoseDataModule, StageConfig]:
    poses = _poses(96, np.random.default_rng(0))
    norm = PoseNormalizer.from_poses(poses)
    L.seed_everything(0, verbose=False)
    ae = PoseAutoencoder(load_config("tiny").ae, norm.scale_mm)
    return (
        AEModule(ae, norm),
        PoseDataModule(poses, poses[:16], batch_size=32),
        StageConfig(epochs=epochs, batch_size=32, lr=lr),
    )


def test_nan_poses_in_a_store_are_refused_when_it_is_opened(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for split in ("train", "test"):
        (bad / shard_path(bad, split).name).write_bytes(shard_path(store, split).read_bytes())
    with h5py.File(shard_path(bad, "train"), "r+") as f:
        f["poses3d"][5, 3, 1] = np.nan
    with pytest.raises(StoreError, match=r"train\.h5: poses3d holds non-finite values.*sample 5"):
        PoseImageDataset(bad, "train")
    PoseImageDataset(bad, "test")  # the other split is fine


def test_nan_training_poses_are_an_error_not_an_assert() -> None:
    poses = _poses(8, np.random.default_rng(0))
    poses[3, 2, 0] = np.inf
    with pytest.raises(InputError, match="1 training poses hold NaN/inf.*sample 3"):
        PoseNormalizer.from_poses(poses)


def test_a_diverging_stage_stops_naming_stage_step_and_cause(tmp_path: Path) -> None:
    module, data, stage = _ae_stage(lr=1e10, epochs=3)
    with pytest.raises(TrainingError, match=r"stage 'ae', step \d+: .*(diverged|non-finite).*lr"):
        fit_stage(module, data, stage, tmp_path, "ae", trainer_cfg=RUN)
    assert not (tmp_path / "ae" / WEIGHTS).exists()
    last = tmp_path / "ae" / LAST
    if last.exists():  # an epoch that ended finite may be kept; never a non-finite one
        state = torch.load(last, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_a_truncated_checkpoint_is_named_and_the_stage_starts_again(tmp_path: Path) -> None:
    whole, data, stage = _ae_stage()
    fit_stage(whole, data, stage, tmp_path / "a", "ae", trainer_cfg=RUN)
    crashed, data, stage = _ae_stage()
    with pytest.raises(_Killed):
        fit_stage(crashed, data, stage, tmp_path / "b", "ae", trainer_cfg=RUN, callbacks=[_Crash(at=1)])
    last = tmp_path / "b" / "ae" / LAST
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a full disk cut it short
    resumed, data, stage = _ae_stage()
    epochs = _Crash()
    with pytest.warns(UserWarning, match=r"last\.ckpt: damaged or unsafe checkpoint.*starts again"):
        fit_stage(resumed, data, stage, tmp_path / "b", "ae", resume=True, trainer_cfg=RUN, callbacks=[epochs])
    assert epochs.started == [0, 1] and (tmp_path / "b" / "ae" / f"{LAST}.damaged").is_file()
    # same seed, same batches, same thread count: the restarted stage is the uninterrupted one
    ref, got = whole.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
