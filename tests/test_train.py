"""The training engine: each stage learns, resume is exact, configs round-trip, the pipeline and exports work."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from structpose.data.store import StoreWriter, shard_path
from structpose.metrics import mpjpe
from structpose.models.autoencoder import PoseAutoencoder
from structpose.models.cnn import PaperCNN
from structpose.models.normalize import PoseNormalizer
from structpose.models.structured import DirectCNN, StructuredNet
from structpose.skeleton import H36M
from structpose.train.ae_module import AEModule
from structpose.train.config import ExperimentConfig, StageConfig, TrainerConfig, load_config
from structpose.train.data import PoseDataModule, PoseImageDataModule, load_splits, split_train_val
from structpose.train.engine import LAST, WEIGHTS, fit_stage
from structpose.train.export import PosePredictor, export_onnx, load_weights
from structpose.train.image_module import ImageRegressionModule
from structpose.train.pipeline import predict, train_all

RUN = TrainerConfig(accelerator="cpu", devices=1, progress_bar=False)
SIZE = 32


# ---- a tiny learnable dataset: poses from a 2-factor linear model, images of their joints as blobs ------
def _poses(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 17, 3) root-relative poses in mm: a rest pose plus 2 random deformation modes."""
    rest = np.zeros((17, 3))
    for j, p in enumerate(H36M.parents):
        if p >= 0:
            rest[j] = rest[p] + rng.normal(0, 150, 3)
    basis = rng.normal(0, 200, (2, 17, 3))
    basis[:, 0] = 0
    poses = rest + np.einsum("nk,kjd->njd", rng.normal(size=(n, 2)), basis)
    return (poses - poses[:, :1]).astype(np.float32)


def _render(poses: np.ndarray) -> np.ndarray:
    """Orthographic x-y projection of each joint as a Gaussian blob in channel ``j % 3``: (n, S, S, 3) uint8."""
    pix = SIZE / 2 + poses[..., :2] / 1000.0 * (SIZE / 2.5)  # (n, 17, 2)
    grid = np.arange(SIZE) + 0.5
    gx = np.exp(-0.5 * ((grid[None, None, :] - pix[..., 0:1]) / 1.5) ** 2)  # (n, 17, S)
    gy = np.exp(-0.5 * ((grid[None, None, :] - pix[..., 1:2]) / 1.5) ** 2)
    blobs = gy[..., :, None] * gx[..., None, :]  # (n, 17, S, S)
    images = np.zeros((len(poses), SIZE, SIZE, 3))
    for j in range(17):
        images[..., j % 3] += blobs[:, j]
    return (255 * np.clip(images, 0, 1)).astype(np.uint8)


def make_store(root: Path, n_train: int = 384, n_test: int = 64, seed: int = 0) -> Path:
    """A dataset directory with ``train.h5`` and ``test.h5`` of the toy problem above (16-frame sequences)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        poses = _poses(n, np.random.default_rng(seed)) if split == "train" else _poses(n_train + n, rng)[-n:]
        seq = [f"seq{i // 16}" for i in range(n)]
        with StoreWriter(shard_path(root, split), SIZE, attrs={"split": split}) as w:
            w.append(images=_render(poses), poses3d=poses, joints2d=np.zeros((n, 17, 2)), intrinsics=np.zeros((n, 9)),
                     boxes=np.zeros((n, 4)), root_cam=np.zeros((n, 3)), subject=[f"S{i % 3}" for i in range(n)],
                     action=["walk"] * n, sequence=seq, frame=np.arange(n), camera_id=["c0"] * n)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def cfg(store: Path) -> ExperimentConfig:
    return load_config("tiny", [f"data.root={store}"])


@pytest.fixture(scope="module")
def splits(cfg: ExperimentConfig):
    return load_splits(cfg.data, cfg.cnn.in_size)


def _eval_loss(module, batch: dict) -> float:
    module.eval()
    with torch.no_grad():
        return float(module.step(batch, train=False)[0])


def _first_batch(dm: L.LightningDataModule) -> dict:
    return next(iter(dm.train_dataloader()))


# ---- configuration --------------------------------------------------------------------------------------
def test_presets_load_and_overrides_apply() -> None:
    quick = load_config("quick")
    assert quick.cnn.in_size == 64 and quick.cnn.crop == 56
    paper = load_config("paper")
    assert (paper.cnn.in_size, paper.cnn.crop, paper.latent.lr, paper.latent.batch_size) == (128, 112, 1e-3, 128)
    with pytest.warns(UserWarning, match="not trained alike"):  # latent's lr alone: allowed, but flagged
        overrides = ["latent.lr=1e-4", "ae.lam=0", "ae.hidden=[32]", "ae.noise_mm=[10]", "trainer.seed=3"]
        cfg = load_config("tiny", overrides)
    assert cfg.latent.lr == 1e-4 and isinstance(cfg.latent.lr, float)
    assert cfg.ae.lam == 0.0 and cfg.ae.hidden == (32,) and cfg.ae.noise_mm == (10.0,)
    assert cfg.trainer.seed == 3 and cfg.finetune.lr == load_config("tiny").finetune.lr


def test_config_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_config("quick", ["direct.lr=5e-4", "latent.lr=5e-4", "finetune.lr=5e-4", "data.train_fraction=0.5"])
    path = tmp_path / "resolved.yaml"
    cfg.to_yaml(path)
    assert load_config(str(path)) == cfg


@pytest.mark.parametrize("override", ["finetune.lr=1e-4", "latent.epochs=3"])
def test_config_warns_when_the_cnn_arms_are_not_trained_alike(override: str) -> None:
    extra = ["direct.epochs=4"] if override.startswith("latent.epochs") else []
    with pytest.warns(UserWarning, match="not trained alike|does not restart"):
        load_config("tiny", [override, "latent.restart_period=2", "finetune.restart_period=2",
                             "direct.restart_period=2", *extra])  # fmt: skip


@pytest.mark.parametrize(
    "override, message",
    [("latent.lrr=1", "unknown keys"), ("latent.lr=fast", "not a number"), ("trainer.precision=16", "one of"),
     ("direct.epochs=1", "same budget"), ("nokey", "key=value"), ("cnn.crop=64", "crop 64"),
     ("ae.noise_mm=[1, 2, 3]", "noise std per layer")],
)  # fmt: skip
def test_config_rejects_bad_overrides(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config("tiny", [override])


# ---- data -----------------------------------------------------------------------------------------------
def test_validation_is_whole_sequences_of_the_train_split(splits, store: Path) -> None:
    train_seq = set(zip(splits.train.subject, splits.train.sequence, strict=True))
    val_seq = set(zip(splits.val.subject, splits.val.sequence, strict=True))
    assert train_seq and val_seq and not train_seq & val_seq
    assert len(splits.train) + len(splits.val) == 384 and len(splits.test) == 64
    assert 0.2 <= len(splits.val) / 384 <= 0.4
    groups = np.repeat(np.arange(20), 10)
    tr, va = split_train_val(groups, 0.1, 0.5, seed=1)
    assert len(va) == 20 and len(tr) == 90 and not set(tr) & set(va)
    assert np.array_equal(tr, split_train_val(groups, 0.1, 0.5, seed=1)[0])


# ---- each stage learns ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_three_stages_of_ours_each_learn(splits, cfg: ExperimentConfig, tmp_path: Path) -> None:
    """AE (greedy layer 0, layer 1, then the whole) -> CNN onto the frozen AE's code -> fine-tuning of the
    StructuredNet: each stage lowers its own loss (noise-free, on fixed training data) clearly."""
    L.seed_everything(0, verbose=False)
    norm = PoseNormalizer.from_poses(splits.train.poses3d)
    ae = PoseAutoencoder(cfg.ae, norm.scale_mm)
    poses = PoseDataModule.from_splits(splits, 16)
    all_poses = {"pose3d": torch.from_numpy(splits.train.poses3d)}
    for name, layer, lr, factor in (("pre0", 0, 3e-3, 0.2), ("pre1", 1, 3e-3, 0.2), ("ae", None, 1e-3, 0.9)):
        module = AEModule(ae, norm, layer=layer)
        before = _eval_loss(module, all_poses)
        fit_stage(module, poses, StageConfig(epochs=8, batch_size=16, lr=lr), tmp_path, name, trainer_cfg=RUN)
        assert _eval_loss(module, all_poses) < factor * before, name
        assert all(p.requires_grad for p in ae.parameters())  # frozen only while a stage fits
    metrics = (tmp_path / "logs" / "ae" / "version_0" / "metrics.csv").read_text()
    assert "val/mpjpe_mm" in metrics and "val/contractive" in metrics and "train/loss_epoch" in metrics
    assert (tmp_path / "ae" / LAST).is_file() and (tmp_path / "ae" / WEIGHTS).is_file()

    images = PoseImageDataModule.from_splits(splits, 32, num_workers=0)
    batch = _first_batch(images)
    ae_before = copy.deepcopy(ae.state_dict())
    cnn = PaperCNN(cfg.cnn, ae.latent_dim)
    latent = ImageRegressionModule(cnn, "latent", norm, cfg.cnn.crop, ae)
    before = _eval_loss(latent, batch)
    fit_stage(latent, images, StageConfig(epochs=6, batch_size=32, lr=5e-3), tmp_path, "latent", trainer_cfg=RUN)
    assert _eval_loss(latent, batch) < 0.6 * before
    assert all(torch.equal(v, ae.state_dict()[k]) for k, v in ae_before.items())  # the AE gave targets only

    ours = ImageRegressionModule(StructuredNet(cnn, ae.decoder(), norm), "pose", norm, cfg.cnn.crop)
    before = _eval_loss(ours, batch)
    fit_stage(ours, images, StageConfig(epochs=6, batch_size=32, lr=1e-3), tmp_path, "finetune", trainer_cfg=RUN)
    assert _eval_loss(ours, batch) < 0.8 * before
    assert not torch.equal(ae.layers[0].enc.weight, ae_before["layers.0.enc.weight"])  # the decoder's (tied)


class _Threads(Callback):
    """Records torch's intra-op thread count at each training step."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        self.seen.append(torch.get_num_threads())


def test_direct_cnn_learns_in_bf16_channels_last(splits, cfg: ExperimentConfig, tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    norm = PoseNormalizer.from_poses(splits.train.poses3d)
    module = ImageRegressionModule(DirectCNN(PaperCNN(cfg.cnn, 51), norm), "pose", norm, cfg.cnn.crop,
                                   channels_last=True)  # fmt: skip
    dm = PoseImageDataModule.from_splits(splits, 32, num_workers=0)
    batch = _first_batch(dm)
    before = _eval_loss(module, batch)
    run = TrainerConfig(accelerator="cpu", devices=1, progress_bar=False, precision="bf16-mixed", threads=1)
    stage = StageConfig(epochs=8, batch_size=32, lr=5e-3, schedule="cosine")
    threads = _Threads()
    torch.set_num_threads(2)  # (conftest restores its own setting after the test)
    fit_stage(module, dm, stage, tmp_path, "direct", trainer_cfg=run, callbacks=[threads])
    assert set(threads.seen) == {1} and torch.get_num_threads() == 2  # run.threads, then restored
    torch.set_num_threads(1)
    assert _eval_loss(module, batch) < 0.8 * before
    assert module.net.cnn.features[0].weight.is_contiguous(memory_format=torch.channels_last)


# ---- resume ---------------------------------------------------------------------------------------------
class _Killed(Exception):
    pass


class _Crash(Callback):
    """Records the epochs a run starts; kills the run when epoch ``at`` starts (after the previous epoch's
    checkpoint was written)."""

    def __init__(self, at: int | None = None) -> None:
        self.at = at
        self.started: list[int] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.at:
            raise _Killed
        self.started.append(trainer.current_epoch)


def test_resume_gives_identical_weights(splits, cfg: ExperimentConfig, tmp_path: Path) -> None:
    """2 epochs in one go == 1 epoch, a crash, and a resume: random crops, dropout, shuffling, Adam
    moments and the warm-restart schedule all continue exactly (two DataLoader workers)."""
    norm = PoseNormalizer.from_poses(splits.train.poses3d)
    stage = StageConfig(epochs=2, batch_size=32, schedule="cosine_restarts", restart_period=1)

    def fresh() -> tuple[ImageRegressionModule, PoseImageDataModule]:
        L.seed_everything(0, verbose=False)
        module = ImageRegressionModule(DirectCNN(PaperCNN(cfg.cnn, 51), norm), "pose", norm, cfg.cnn.crop,
                                       channels_last=True)  # fmt: skip
        return module, PoseImageDataModule.from_splits(splits, 32, num_workers=2)

    whole, dm = fresh()
    fit_stage(whole, dm, stage, tmp_path / "a", "s", trainer_cfg=RUN)

    crashed, dm = fresh()
    with pytest.raises(_Killed):
        fit_stage(crashed, dm, stage, tmp_path / "b", "s", trainer_cfg=RUN, callbacks=[_Crash(at=1)])
    assert (tmp_path / "b" / "s" / LAST).is_file() and not (tmp_path / "b" / "s" / WEIGHTS).exists()
    resumed, dm = fresh()  # a new process would rebuild everything from scratch
    epochs = _Crash()
    fit_stage(resumed, dm, stage, tmp_path / "b", "s", resume=True, trainer_cfg=RUN, callbacks=[epochs])
    assert epochs.started == [1]  # it continued; it did not start over

    ref, got = whole.net.state_dict(), resumed.net.state_dict()
    # bit-exact is sound: both runs take the same batches at the same batch size, thread count and kernels
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not torch.equal(ref["cnn.head.7.weight"], crashed.net.state_dict()["cnn.head.7.weight"])


# ---- pipeline and exports -------------------------------------------------------------------------------
def test_pipeline_trains_three_predictors_and_resumes(cfg: ExperimentConfig, splits, tmp_path: Path) -> None:
    models = train_all(cfg, tmp_path)
    assert set(models) == {"ours_noft", "ours", "cnn", "structnet_max", "structnet_avg"}
    assert isinstance(models["ours"], StructuredNet) and isinstance(models["cnn"], DirectCNN)
    preds = {name: predict(m, splits.test, batch_size=20) for name, m in models.items()}
    for p in preds.values():
        assert p.shape == (64, 17, 3) and np.isfinite(p).all()
    assert not np.allclose(preds["ours_noft"], preds["ours"])  # fine-tuning changed the network
    for name in ("ae_pretrain0", "ae_pretrain1", "ae_finetune", "latent", "finetune", "direct", "structnet"):
        assert (tmp_path / name / WEIGHTS).is_file()
    (tmp_path / "direct" / WEIGHTS).unlink()  # killed after the last checkpoint, before the weights were written
    again = train_all(cfg, tmp_path, resume=True)  # loads the finished stages, completes "direct" from last.ckpt
    for name in models:
        # bit-exact is sound only like with like: the same batch size (another one may pick other kernel
        # blockings, with other float32 rounding), the same memory format (channels_last) and thread count
        assert np.array_equal(predict(again[name], splits.test, batch_size=20), preds[name])
    with pytest.raises(ValueError, match="differs"):
        train_all(load_config("tiny", [f"data.root={cfg.data.root}", "ae.lam=0.5"]), tmp_path, resume=True)


def test_safetensors_and_onnx_round_trip(cfg: ExperimentConfig, splits, tmp_path: Path) -> None:
    from onnx.reference import ReferenceEvaluator

    L.seed_everything(1, verbose=False)
    norm = PoseNormalizer.from_poses(splits.train.poses3d)
    ae = PoseAutoencoder(cfg.ae, norm.scale_mm)
    net = StructuredNet(PaperCNN(cfg.cnn, ae.latent_dim), ae.decoder(), norm).eval()
    module = ImageRegressionModule(net, "pose", norm, cfg.cnn.crop)
    fit_stage(module, PoseImageDataModule.from_splits(splits, 32, 0), StageConfig(epochs=1, batch_size=32),
              tmp_path, "export", trainer_cfg=RUN)  # fmt: skip
    net.eval()
    images = torch.from_numpy(np.stack([splits.test[i]["image"].numpy() for i in range(5)]))
    expected = PosePredictor(net)(images).detach()

    L.seed_everything(2, verbose=False)
    ae2 = PoseAutoencoder(cfg.ae, 1.0)
    twin = StructuredNet(PaperCNN(cfg.cnn, ae2.latent_dim), ae2.decoder(), PoseNormalizer()).eval()
    load_weights(twin, tmp_path / "export" / WEIGHTS)
    assert torch.equal(PosePredictor(twin)(images).detach(), expected)  # same weights, images, batch and kernels

    path = export_onnx(net, tmp_path / "ours.onnx", SIZE)
    (out,) = ReferenceEvaluator(str(path)).run(None, {"images": images.numpy()})
    assert out.shape == (5, 17, 3)
    # another implementation (onnx's numpy reference convolutions: other summation orders) in float32 on
    # poses of ~700 mm: 1.5e-5 mm apart here; 1e-2 mm still catches any wrong layer, crop or normalisation
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-2)  # mm


def test_action_filter_keeps_one_action_in_every_split(tmp_path: Path) -> None:
    """``data.actions`` (the one-model-per-action protocol) restricts train, validation and test alike."""
    n = 96
    poses = _poses(n, np.random.default_rng(3))
    actions = ["walk" if (i // 16) % 2 else "jump" for i in range(n)]
    for split in ("train", "test"):
        with StoreWriter(shard_path(tmp_path, split), SIZE) as w:
            w.append(images=_render(poses), poses3d=poses, joints2d=np.zeros((n, 17, 2)), intrinsics=np.zeros((n, 9)),
                     boxes=np.zeros((n, 4)), root_cam=np.zeros((n, 3)), subject=["S1"] * n, action=actions,
                     sequence=[f"s{i // 16}" for i in range(n)], frame=np.arange(n), camera_id=["c0"] * n)  # fmt: skip
    cfg = load_config("tiny", [f"data.root={tmp_path}", "data.actions=[jump]"])
    got = load_splits(cfg.data, SIZE)
    for ds in (got.train, got.val, got.test):
        assert len(ds) and set(ds.action) == {"jump"}
    assert len(got.train) + len(got.val) == 48 and len(got.test) == 48
    with pytest.raises(ValueError, match="no sample of the actions"):
        load_splits(load_config("tiny", [f"data.root={tmp_path}", "data.actions=[sit]"]).data, SIZE)


def test_a_stage_that_selects_best_keeps_the_weights_that_validated_best(splits, cfg, tmp_path: Path) -> None:
    """``select: best`` (the auto-encoder's choice): the weights written are those of the epoch of least
    validation MPJPE, also when the stage was killed and resumed after that epoch."""
    from structpose.report import read_metrics_csv

    norm = PoseNormalizer.from_poses(splits.train.poses3d)
    # a large constant rate makes the validation error wander: here it is least after the first epoch
    # (835 mm, 959 mm after the last), so keeping the last weights would fail the check below
    stage = StageConfig(epochs=6, batch_size=32, lr=0.3, select="best")
    poses = PoseDataModule.from_splits(splits, 32)

    def fresh() -> AEModule:
        L.seed_everything(0, verbose=False)
        return AEModule(PoseAutoencoder(cfg.ae, norm.scale_mm), norm)

    whole = fit_stage(fresh(), poses, stage, tmp_path / "a", "ae", trainer_cfg=RUN)
    logged = [
        v for _, v in read_metrics_csv(next((tmp_path / "a" / "logs" / "ae").glob("*/metrics.csv")))["val/mpjpe_mm"]
    ]
    assert len(logged) == 6
    val = torch.as_tensor(splits.val.poses3d)
    with torch.no_grad():
        kept = float(mpjpe(norm.denormalize(whole.net(norm.normalize(val))), val))
    # the kept network's error is the least logged one (float32 batch means against one mean: 1e-3 relative)
    assert kept == pytest.approx(min(logged), rel=1e-3)
    saved = load_weights(PoseAutoencoder(cfg.ae, norm.scale_mm), tmp_path / "a" / "ae" / WEIGHTS)
    assert _same(saved, whole.net)
    with pytest.raises(_Killed):
        fit_stage(fresh(), poses, stage, tmp_path / "b", "ae", trainer_cfg=RUN, callbacks=[_Crash(at=4)])
    resumed = fit_stage(fresh(), poses, stage, tmp_path / "b", "ae", resume=True, trainer_cfg=RUN)
    # bit-exact is sound: the same batches, batch size, threads and kernels in both runs
    assert _same(resumed.net, whole.net)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
