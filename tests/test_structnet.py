"""StructNet (Li, Zhang & Chan, ICCV 2015): the loss-augmented search, the margins, learning a toy problem,
exact resume, the candidate set through safetensors, and the rejection of bad inputs."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import Dataset

from structpose.errors import ConfigError, InputError
from structpose.metrics import mean_pose_baseline, mpjpe
from structpose.models import structnet as sn
from structpose.models.cnn import CNNConfig, preprocess
from structpose.models.normalize import PoseNormalizer
from structpose.models.structnet import (
    StructNet,
    StructNetConfig,
    choose_top_a,
    default_top_a_grid,
    margin_loss,
    most_violated,
    mpjpe_matrix,
    top_a_errors,
)
from structpose.skeleton import H36M
from structpose.train.config import StageConfig, TrainerConfig
from structpose.train.data import PoseImageDataModule
from structpose.train.engine import LAST, WEIGHTS, fit_stage
from structpose.train.export import PosePredictor, load_weights, save_weights
from structpose.train.structnet_module import StructNetModule

RUN = TrainerConfig(accelerator="cpu", devices=1, progress_bar=False, threads=1)
SIZE = 16
# the smallest trunk that works: 14 px crops -> 6 -> 2 -> 1 px maps; conv2 + conv3 features: 32 + 8 numbers
CNN = CNNConfig(in_size=SIZE, crop=14, channels=(4, 8, 8), kernels=(3, 3, 1), fc=(8,), dropout=0.0)
TINY = StructNetConfig(embed_dim=16, image_hidden=(32,), pose_hidden=(32,), n_candidates=48, n_hard=4)
COLOURS = np.array([(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 220)], dtype=np.float64)


# ---- a toy problem: 4 pose clusters, each image's colour says which ------------------------------------
def _centres(rng: np.random.Generator) -> np.ndarray:
    """(4, 17, 3) mm: random skeletons (bones ~150 mm), root at 0."""
    out = np.zeros((len(COLOURS), 17, 3))
    for j, p in enumerate(H36M.parents):
        if p >= 0:
            out[:, j] = out[:, p] + rng.normal(0, 150, (len(COLOURS), 3))
    return out


def _toy(n: int, rng: np.random.Generator, centres: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples: uint8 images (n, 3, S, S) of their cluster's colour plus noise, poses (n, 17, 3) mm
    (the cluster's centre plus 10 mm joint noise, root at 0)."""
    k = rng.integers(0, len(centres), n)
    poses = centres[k] + rng.normal(0, 10, (n, 17, 3))
    poses -= poses[:, :1]
    images = COLOURS[k][:, :, None, None] + rng.normal(0, 20, (n, 3, SIZE, SIZE))
    images = np.clip(images, 0, 255).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(poses.astype(np.float32))


class _Pairs(Dataset):
    def __init__(self, images: torch.Tensor, poses: torch.Tensor) -> None:
        self.images, self.poses = images, poses

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "pose3d": self.poses[i]}


def _net(train_poses: torch.Tensor, cfg: StructNetConfig = TINY, seed: int = 0) -> StructNet:
    torch.manual_seed(seed)
    return StructNet(CNN, PoseNormalizer.from_poses(train_poses), cfg)


class _Margins(Callback):
    """Records the module's margin loss at every training step."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.values.append(float(pl_module._train_parts["margin_loss"]))


# ---- pure functions -------------------------------------------------------------------------------------
def test_most_violated_is_the_argmax_of_the_augmented_scores() -> None:
    gen = torch.Generator().manual_seed(0)
    scores, delta = torch.randn(5, 7, generator=gen), torch.rand(5, 7, generator=gen)
    score_true = torch.randn(5, generator=gen)
    idx, violation = most_violated(scores, score_true, delta)
    for b in range(5):
        values = [float(scores[b, m] + delta[b, m]) for m in range(7)]
        best = max(range(7), key=lambda m: values[m])
        assert int(idx[b]) == best
        assert float(violation[b]) == pytest.approx(max(0.0, values[best] - float(score_true[b])), abs=1e-6)
    assert float(margin_loss(scores, score_true, delta)) == pytest.approx(float(violation.mean()), abs=1e-6)
    # a true pose that beats every candidate by more than its margin: no violation, no loss
    safe = (scores + delta).max(1).values + 0.5
    assert torch.equal(most_violated(scores, safe, delta)[1], torch.zeros(5))
    assert float(margin_loss(scores, safe, delta)) == 0.0


def test_margin_loss_gradient_reaches_only_the_most_violated_candidate() -> None:
    scores = torch.tensor([[0.0, 2.0, 1.0]], requires_grad=True)
    true = torch.tensor([0.5], requires_grad=True)
    margin_loss(scores, true, torch.tensor([[0.0, 0.1, 3.0]])).backward()  # augmented: 0, 2.1, 4 -> index 2
    assert scores.grad.tolist() == [[0.0, 0.0, 1.0]] and true.grad.tolist() == [-1.0]


def test_mpjpe_matrix_is_the_pairwise_mpjpe(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(1)
    true = 300 * torch.randn(4, 17, 3, generator=gen, dtype=torch.float64)  # not root-centred on purpose
    cand = 300 * torch.randn(6, 17, 3, generator=gen, dtype=torch.float64)
    expected = torch.stack([mpjpe(true, c.expand(4, 17, 3), reduce=False) for c in cand], 1)
    monkeypatch.setattr(sn, "_DELTA_ELEMS", 17 * 4 * 2)  # 2 candidates a step: the chunks join correctly
    got = mpjpe_matrix(true, cand)
    assert got.shape == (4, 6) and got.dtype == torch.float64
    # the same direct formula in float64, summed in another order: rounding of ~1e-13 mm on ~500 mm
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-9)
    assert float(mpjpe_matrix(true[:1], true[:1])) == 0.0


# ---- the network ----------------------------------------------------------------------------------------
def test_top_candidates_chunked_equals_a_full_ranking(monkeypatch: pytest.MonkeyPatch) -> None:
    poses = _toy(300, np.random.default_rng(0), _centres(np.random.default_rng(1)))[1]
    net = _net(poses).eval().set_candidates(poses)
    x = preprocess(_toy(5, np.random.default_rng(2), _centres(np.random.default_rng(1)))[0], train=False, crop=14)
    emb = net.encode(x)[0].detach()
    full = net.score(emb, net.embed_poses(poses).detach())
    monkeypatch.setattr(sn, "_EMBED_CHUNK", 64)  # 5 chunks with a running top-k
    net.set_candidates(poses)  # (drops the cached embeddings of the one-chunk pass)
    scores, idx = net.top_candidates(emb, 10)
    # float32 scores of one matmul against chunked matmuls: a few ulps of values ~1
    torch.testing.assert_close(scores, full.topk(10, dim=1).values, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(full.gather(1, idx), scores, rtol=1e-5, atol=1e-5)
    avg = net.poses_from_embedding(emb, "avg", top_a=10)
    torch.testing.assert_close(avg, poses[idx].mean(1))
    assert torch.equal(net.poses_from_embedding(emb, "max"), poses[idx[:, 0]])


def test_structnet_learns_a_toy_problem_max_and_avg_beat_the_mean_pose(tmp_path: Path) -> None:
    """Four pose clusters, told apart by the image's colour: fit_stage drives the margin loss down, and
    Max and Avg retrieval over the training poses beat the mean training pose on held-out samples."""
    rng, centres = np.random.default_rng(0), _centres(np.random.default_rng(1))
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = (_toy(n, rng, centres) for n in (512, 64, 64))
    L.seed_everything(0, verbose=False)
    net = _net(tr_y)
    module = StructNetModule(net, tr_y)
    dm = PoseImageDataModule(_Pairs(tr_x, tr_y), _Pairs(va_x, va_y), None, batch_size=32, num_workers=0)
    margins = _Margins()
    stage = StageConfig(epochs=14, batch_size=32, lr=3e-3)  # 16 steps an epoch: 224 steps
    fit_stage(module, dm, stage, tmp_path, "structnet", trainer_cfg=RUN, callbacks=[margins])

    assert len(margins.values) == 14 * 16
    first, last = np.mean(margins.values[:16]), np.mean(margins.values[-16:])
    assert last < 0.25 * first, (first, last)
    assert int(module.violation_counts.sum()) > 0 and torch.equal(net.candidates, tr_y)
    header = (tmp_path / "logs" / "structnet" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    for key in ("train/margin_loss_step", "train/violation_rate_step", "val/mpjpe_mm", "val/mpjpe_avg_mm"):
        assert key in header

    a = choose_top_a(net, _Pairs(va_x, va_y), grid=[1, 4, 16, 64])
    errors = top_a_errors(net, va_x, va_y, grid=[1, 4, 16, 64])
    assert a in errors and errors[a] == min(errors.values())
    net.set_top_a(a)
    baseline = mpjpe(mean_pose_baseline(tr_y, len(te_y)), te_y)
    for view in (net.with_mode("max"), net.with_mode("avg")):
        err = mpjpe(PosePredictor(view).eval()(te_x), te_y)
        assert err < 0.4 * baseline, (view.mode, err, baseline)  # ~20 mm against ~200 mm here


class _Killed(Exception):
    pass


class _CrashAt(Callback):
    """Records the epochs a run starts; kills it when epoch ``epoch`` starts (None: never)."""

    def __init__(self, epoch: int | None = None) -> None:
        self.epoch = epoch
        self.started: list[int] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise _Killed
        self.started.append(trainer.current_epoch)


def test_resume_gives_identical_weights_and_violation_counts(tmp_path: Path) -> None:
    """2 epochs at once == 1 epoch, a crash and a resume: the candidate draws (torch's RNG) and the counter
    of hard poses (a buffer of the checkpoint) continue exactly."""
    rng, centres = np.random.default_rng(3), _centres(np.random.default_rng(4))
    (tr_x, tr_y), (va_x, va_y) = _toy(128, rng, centres), _toy(32, rng, centres)
    stage = StageConfig(epochs=2, batch_size=32, lr=3e-3)

    def fresh() -> tuple[StructNetModule, PoseImageDataModule]:
        L.seed_everything(0, verbose=False)
        module = StructNetModule(_net(tr_y), tr_y)
        return module, PoseImageDataModule(_Pairs(tr_x, tr_y), _Pairs(va_x, va_y), None, 32, 0)

    whole, dm = fresh()
    fit_stage(whole, dm, stage, tmp_path / "a", "s", trainer_cfg=RUN)
    crashed, dm = fresh()
    with pytest.raises(_Killed):
        fit_stage(crashed, dm, stage, tmp_path / "b", "s", trainer_cfg=RUN, callbacks=[_CrashAt(1)])
    assert (tmp_path / "b" / "s" / LAST).is_file()
    resumed, dm = fresh()
    epochs = _CrashAt()
    fit_stage(resumed, dm, stage, tmp_path / "b", "s", resume=True, trainer_cfg=RUN, callbacks=[epochs])
    assert epochs.started == [1]  # it continued from the checkpoint; it did not start over
    # bit-exact is sound: the same batches, draws, thread count and kernels in both runs
    assert torch.equal(whole.violation_counts, resumed.violation_counts) and int(whole.violation_counts.sum()) > 0
    ref, got = whole.net.state_dict(), resumed.net.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert not torch.equal(whole.violation_counts, crashed.violation_counts)  # the second epoch counted too


def test_candidates_and_top_a_round_trip_through_safetensors(tmp_path: Path) -> None:
    rng, centres = np.random.default_rng(5), _centres(np.random.default_rng(6))
    images, poses = _toy(300, rng, centres)
    net = _net(poses, seed=1).eval().set_candidates(poses).set_top_a(7)
    x = preprocess(images[:6], train=False, crop=14)
    expected = {mode: net.with_mode(mode)(x) for mode in ("max", "avg")}
    path = save_weights(net, tmp_path / WEIGHTS)

    twin = StructNet(CNN, PoseNormalizer(), TINY).eval()  # other weights, no candidates
    twin.set_candidates(poses[:10])
    before = twin(x)  # caches the embeddings of its own weights and candidates
    load_weights(twin, path)
    assert torch.equal(twin.candidates, poses) and int(twin.avg_top_a) == 7 == twin.resolve_top_a()
    for mode, want in expected.items():
        # identical weights and inputs: equal up to float32 rounding (a fresh cache of the same embeddings)
        torch.testing.assert_close(twin.with_mode(mode)(x), want, rtol=0, atol=1e-4)
    assert not torch.allclose(before, expected["max"])  # the stale cache was not used
    view = load_weights(StructNet(CNN, PoseNormalizer(), TINY).with_mode("avg").eval(), path)  # as a loader would
    torch.testing.assert_close(view(x), expected["avg"], rtol=0, atol=1e-4)


def test_the_cached_candidate_embeddings_follow_a_fused_adam_step() -> None:
    """Fused Adam updates the weights without bumping their version counters: the cache must still see it."""
    poses = _toy(200, np.random.default_rng(11), _centres(np.random.default_rng(12)))[1]
    net = _net(poses).set_candidates(poses)
    cached = net.candidate_embeddings()
    assert net.candidate_embeddings() is cached  # unchanged weights: no recomputation
    opt = torch.optim.Adam(net.pose_embed.parameters(), lr=0.1, fused=True)
    net.embed_poses(poses[:8]).sum().backward()
    opt.step()
    torch.testing.assert_close(net.candidate_embeddings(), net.embed_poses(poses).detach())
    assert not torch.allclose(net.candidate_embeddings(), cached)


def test_mode_views_share_the_weights_and_differ_in_inference() -> None:
    poses = _toy(200, np.random.default_rng(7), _centres(np.random.default_rng(8)))[1]
    net = _net(poses).set_candidates(poses)
    avg = net.with_mode("avg", top_a=5)
    assert avg.mode == "avg" and net.mode == "max" and avg.top_a == 5
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(net.state_dict().values(), avg.state_dict().values(),
                                                            strict=True))  # fmt: skip
    assert list(net.state_dict()) == list(avg.state_dict())
    assert net.resolve_top_a() == 1 and net.resolve_top_a(500) == 200  # 0.5% of 200, rounded; clipped to N
    assert default_top_a_grid(100_000) == [125, 250, 500, 1000, 2000]
    assert default_top_a_grid(10) == [1, 2, 4]  # 0.5% of 10 rounds up to 1: the grid starts there


# ---- bad inputs -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: most_violated(torch.zeros(3, 4), torch.zeros(2), torch.zeros(3, 4)), "score_true"),
        (lambda: most_violated(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3, 5)), "delta"),
        (lambda: margin_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3)), "scores"),
        (lambda: mpjpe_matrix(torch.zeros(2, 17, 3), torch.zeros(3, 16, 3)), "17 joints"),
        (lambda: mpjpe_matrix(torch.zeros(2, 17), torch.zeros(3, 17, 3)), "true"),
        (lambda: StructNet.score(torch.zeros(2, 4), torch.zeros(3, 5)), "embeddings"),
    ],
)  # fmt: skip
def test_pure_functions_reject_bad_shapes(call, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()


def test_network_and_module_reject_bad_inputs() -> None:
    poses = _toy(20, np.random.default_rng(9), _centres(np.random.default_rng(10)))[1]
    net = _net(poses).eval()
    with pytest.raises(InputError, match="set_candidates"):
        net(torch.zeros(2, 3, 14, 14))
    with pytest.raises(InputError, match="candidates"):
        net.set_candidates(torch.zeros(5, 16, 3))
    with pytest.raises(InputError, match="finite"):
        net.set_candidates(torch.full((5, 17, 3), float("nan")))
    net.set_candidates(poses)
    with pytest.raises(InputError, match=r"\(B, 3, 14, 14\)"):
        net(torch.zeros(2, 3, 12, 12))
    with pytest.raises(InputError, match="mode"):
        net.with_mode("median")
    with pytest.raises(InputError, match="top_a"):
        net.with_mode("avg", top_a=0)
    with pytest.raises(InputError, match="train_poses"):
        StructNetModule(net, np.zeros((10, 16, 3)))
    with pytest.raises(InputError, match="StructNet"):
        StructNetModule(torch.nn.Linear(2, 2), poses)
    with pytest.raises(InputError, match="poses"):
        choose_top_a(net, torch.zeros(4, 3, SIZE, SIZE, dtype=torch.uint8))  # images without their poses
    with pytest.raises(ConfigError, match="concat_layers"):
        StructNet(CNN, PoseNormalizer(), StructNetConfig(concat_layers=(1, 3)))


@pytest.mark.parametrize(
    "override", [{"n_candidates": 0}, {"n_hard": -1}, {"delta_scale": 0.0}, {"delta_scale": float("inf")},
                 {"aux_weight": -1.0}, {"avg_fraction": 0.0}, {"avg_fraction": 1.5}, {"embed_dim": 0},
                 {"pose_hidden": (0,)}, {"concat_layers": ()}, {"concat_layers": (1, 1)},
                 {"embed_activation": "relu"}],
)  # fmt: skip
def test_config_rejects_bad_values(override: dict) -> None:
    with pytest.raises(ValueError):
        StructNetConfig(**override)
