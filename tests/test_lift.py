"""Lifting 2D keypoints to 3D: the inputs, the views, the stages, the released lifter and the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import structpose
from structpose.cli import main
from structpose.data.poselib import load_pose_library
from structpose.errors import ConfigError, FormatError, InputError
from structpose.lift.config import LiftConfig, load_lift_config
from structpose.lift.data import lift_splits, views
from structpose.lift.inputs import (
    DIRECT_JOINTS,
    LOWER_BODY,
    HipOffset,
    _hips_moved,
    augment,
    derived_visibility,
    lifter_input,
    observed_input,
)
from structpose.lift.release import export_lifter
from structpose.lift.run import reproduce_lift
from structpose.skeleton import H36M
from structpose.train.config import StageConfig

RNG = np.random.default_rng(0)
XY = RNG.uniform(100, 900, size=(6, 17, 2))


# ------------------------------------------------------------------------------------------- inputs
def test_lifter_input_removes_position_and_scale() -> None:
    vis = np.ones((6, 17), bool)
    a = lifter_input(XY, vis)
    b = lifter_input(XY * 2.5 + np.array([300.0, -40.0]), vis)
    assert a.shape == (6, 51)
    np.testing.assert_allclose(a, b, atol=1e-5)  # float32 outputs of float64 arithmetic
    xy = a.reshape(6, 17, 3)[..., :2]
    assert np.abs(xy).max() <= 1 + 1e-6 and np.isclose(np.abs(xy).max(axis=(1, 2)), 1).all()  # the longer side


def test_hidden_joints_are_zero_with_flag_zero_and_do_not_move_the_box() -> None:
    vis = np.ones((6, 17), bool)
    vis[:, 13] = False
    far = XY.copy()
    far[:, 13] = 1e6  # a hidden joint's coordinates are not used
    a, b = lifter_input(XY, vis), lifter_input(far, vis)
    np.testing.assert_array_equal(a, b)
    assert (a.reshape(6, 17, 3)[:, 13] == 0).all()
    assert (a.reshape(6, 17, 3)[:, 0, 2] == 1).all()


def test_numpy_and_torch_inputs_agree() -> None:
    vis = RNG.random((6, 17)) > 0.2
    a = lifter_input(XY, vis)
    b = lifter_input(torch.from_numpy(XY), torch.from_numpy(vis)).numpy()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_hip_offset_narrows_and_raises_the_hips_around_their_midpoint() -> None:
    r, l_, t = H36M.index("RHip"), H36M.index("LHip"), H36M.index("Thorax")
    same = _hips_moved(XY, 1.0, 0.0)
    np.testing.assert_allclose(same, XY)
    moved = _hips_moved(XY, 0.5, 0.1)
    mid = (XY[:, r] + XY[:, l_]) / 2
    np.testing.assert_allclose((moved[:, r] + moved[:, l_]) / 2, mid + 0.1 * (XY[:, t] - mid))
    np.testing.assert_allclose(np.linalg.norm(moved[:, r] - moved[:, l_], axis=-1),
                               0.5 * np.linalg.norm(XY[:, r] - XY[:, l_], axis=-1))  # fmt: skip
    untouched = [j for j in range(17) if j not in (r, l_)]
    np.testing.assert_array_equal(moved[:, untouched], XY[:, untouched])


def test_derived_joints_are_visible_only_when_their_sources_are() -> None:
    vis = np.ones((3, 17), bool)
    vis[0, H36M.index("LHip")] = False
    vis[1, H36M.index("RShoulder")] = False
    out = derived_visibility(vis)
    hip, spine, thorax = (H36M.index(n) for n in ("Hip", "Spine", "Thorax"))
    assert not out[0, hip] and not out[0, spine] and out[0, thorax]
    assert out[1, hip] and not out[1, spine] and not out[1, thorax]
    assert out[2].all()


def test_augmentation_follows_torch_seed_and_drops_at_the_asked_rate() -> None:
    x = torch.from_numpy(np.repeat(XY, 400, axis=0))
    torch.manual_seed(3)
    a = augment(x, HipOffset(), 10.0, 0.25)
    torch.manual_seed(3)
    b = augment(x, HipOffset(), 10.0, 0.25)
    torch.testing.assert_close(a, b)
    hidden = 1 - a.reshape(len(x), 17, 3)[:, list(DIRECT_JOINTS), 2].float().mean()
    assert abs(float(hidden) - 0.25) < 0.02
    flags = augment(x, HipOffset(), 0.0, 0.0, waist_up=0.3).reshape(len(x), 17, 3)[..., 2]
    cut = (flags[:, list(LOWER_BODY)] == 0).all(1)
    assert abs(float(cut.float().mean()) - 0.3) < 0.03 and (flags[cut][:, 0] == 0).all()  # Hip hidden with them
    assert (flags[~cut] == 1).all()


def test_the_waist_up_condition_hides_the_lower_body_only() -> None:
    flags = observed_input(XY, HipOffset(), waist_up=True).reshape(6, 17, 3)[..., 2]
    hidden = {H36M.names[j] for j in np.flatnonzero(flags[0] == 0)}
    assert hidden == {"Hip", "Spine", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot"}


def test_noise_conditions_are_seeded_and_noisier_inputs_differ_more() -> None:
    hips = HipOffset()
    exact = observed_input(XY, hips)
    n5 = observed_input(XY, hips, 5.0, rng=np.random.default_rng(1))
    n20 = observed_input(XY, hips, 20.0, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(n5, observed_input(XY, hips, 5.0, rng=np.random.default_rng(1)))
    assert 0 < np.abs(n5 - exact).mean() < np.abs(n20 - exact).mean()


# ------------------------------------------------------------------------------------------- views
def test_test_views_are_the_rendered_stores_test_samples(tmp_path) -> None:
    from structpose.data.dataset import PoseImageDataset
    from structpose.data.synth import _frames, resolve_preset, synthesize

    cfg = resolve_preset("tiny", renderer="capsule")  # capsule labels are the library poses (mesh: the body's)
    synthesize(tmp_path / "store", cfg, workers=0, preset="tiny")
    store = PoseImageDataset(tmp_path / "store", "test")
    lib = load_pose_library()
    v = views(lib, _frames(lib, "test", cfg.test_images, cfg.seed, cfg.protocol), cfg.seed, "test")
    np.testing.assert_allclose(v.poses3d, store.poses3d, atol=1e-3)  # mm, both float32 of the same float64
    np.testing.assert_array_equal(v.action, store.action.astype(str))


def test_splits_keep_validation_sequences_out_of_training() -> None:
    lib = load_pose_library()
    s = lift_splits(lib, "v2", 0, 0, {"train": 3000, "test": 100, "unseen": 20}, 0.1)
    assert set(s) == {"train", "val", "test", "unseen"}
    assert not set(s["train"].sequence) & set(s["val"].sequence)
    assert 0.05 < len(s["val"]) / (len(s["train"]) + len(s["val"])) < 0.3


# ------------------------------------------------------------------------------------------- config
def test_the_direct_lifter_gets_the_budget_of_the_two_structured_stages() -> None:
    with pytest.raises(ConfigError, match="direct.epochs"):
        LiftConfig(direct=StageConfig(epochs=3))
    cfg = load_lift_config("tiny", ["lifter.hidden=32"])
    assert cfg.lifter.hidden == 32 and cfg.direct.epochs == cfg.latent.epochs + cfg.finetune.epochs
    with pytest.raises(ConfigError, match="unknown keys"):
        load_lift_config("tiny", ["lifter.width=3"])


# ------------------------------------------------------------------------------------------- a run
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lift") / "run"
    reproduce_lift("tiny", out, ["data.train_views=4000", "direct.epochs=5", "latent.epochs=3", "finetune.epochs=2"],
                   seeds=2)  # fmt: skip
    return out


@pytest.mark.slow
def test_the_lifters_learn_and_the_report_has_the_tables(run: Path) -> None:
    results = json.loads((run / "results.json").read_text())
    exact = results["sets"]["exact"]
    floor = np.mean(exact["mean_pose"]["mpjpe"])
    for key in ("lift_direct", "lift_ours"):
        assert np.mean(exact[key]["mpjpe"]) < 0.8 * floor, key  # far better than the mean pose
    noisy = results["sets"]["noise20"]
    assert np.mean(noisy["lift_direct"]["mpjpe"]) > np.mean(exact["lift_direct"]["mpjpe"])
    assert len(exact["comparisons"]) == 2 and "CI" in exact["comparisons"][0]["sentence"]
    report = (run / "report.md").read_text()
    for title in ("Table 1 analogue", "Table 2 analogue", "2D noise", "hip offset", "Unseen motions"):
        assert title in report
    assert (run / "seed1" / "predictions.npz").is_file()
    assert (run / "lift_noise.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_resumed_run_loads_its_stages_and_predicts_the_same(run: Path, tmp_path) -> None:
    before = np.load(run / "seed0" / "predictions.npz")["exact/lift_ours"]
    stamp = (run / "seed0" / "direct" / "model.safetensors").stat().st_mtime_ns
    reproduce_lift("tiny", run, ["data.train_views=4000", "direct.epochs=5", "latent.epochs=3", "finetune.epochs=2"],
                   resume=True, seeds=2)  # fmt: skip
    assert (run / "seed0" / "direct" / "model.safetensors").stat().st_mtime_ns == stamp  # loaded, not retrained
    np.testing.assert_allclose(np.load(run / "seed0" / "predictions.npz")["exact/lift_ours"], before, atol=1e-4)
    with pytest.raises(ConfigError, match="differs"):
        reproduce_lift("tiny", run, ["data.train_views=5000"], resume=True, seeds=1)


@pytest.mark.slow
@pytest.mark.parametrize("key", ["lift_ours", "lift_direct", "lift_ours_noft"])
def test_a_released_lifter_predicts_what_the_run_predicted(run: Path, key: str, tmp_path) -> None:
    from structpose.lift.pipeline import evaluation_inputs
    from structpose.lift.run import test_sets

    folder = export_lifter(run, key, tmp_path / key)
    model = structpose.load(folder)
    card = json.loads((folder / "model.json").read_text())
    assert card["input"]["kind"] == "keypoints2d" and model.id == card["id"]
    cfg = load_lift_config(run / "config.yaml")
    lib = load_pose_library()
    s = lift_splits(lib, "v2", 0, 0, {"train": cfg.data.train_views, "test": cfg.data.test_views,
                                      "unseen": cfg.data.unseen_views}, cfg.data.val_fraction)  # fmt: skip
    assert set(test_sets(s, cfg)) >= {"exact", "noise20", "unseen"}
    x = evaluation_inputs(s["test"], cfg, "exact")
    from structpose.lift.pipeline import lift_poses
    from structpose.lift.release import load_lifter

    direct = lift_poses(load_lifter(folder, card).net, x)
    np.testing.assert_allclose(direct, np.load(run / "seed0" / "predictions.npz")[f"exact/{key}"], atol=1e-3)


@pytest.mark.slow
def test_the_lift_api_takes_keypoints_in_pixels_and_half_weights_are_close(run: Path, tmp_path) -> None:
    full = structpose.load(export_lifter(run, "lift_ours", tmp_path / "full"))
    half_folder = export_lifter(run, "lift_ours", tmp_path / "half", half=True)
    half = structpose.load(half_folder)
    size = lambda f: (f / "model.safetensors").stat().st_size  # noqa: E731
    assert size(half_folder) < 0.6 * size(tmp_path / "full")
    vis = np.ones((6, 17), bool)
    vis[0, 13] = False
    a, b = full.lift(XY, vis), half.lift(XY, vis)
    assert a.poses.shape == (6, 17, 3) and a.joint_names == H36M.names
    assert np.abs(a.poses - b.poses).max() < 5.0  # mm: float16 weights
    np.testing.assert_allclose(full.lift(XY[0]).poses, full.lift(XY[:1]).poses)  # one pose, or a batch of one
    with pytest.raises(InputError, match="expected keypoints"):
        full.lift(np.zeros((4, 16, 2)))


@pytest.mark.slow
def test_a_damaged_lifter_is_refused(run: Path, tmp_path) -> None:
    folder = export_lifter(run, "lift_direct", tmp_path / "m")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\x00" * 8
    weights.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="SHA-256"):
        structpose.load(folder)


@pytest.mark.slow
def test_cli_reproduce_input_keypoints2d_also_scores_a_stores_own_2d(tmp_path, capsys) -> None:
    from structpose.data.dataset import PoseImageDataset
    from structpose.data.synth import resolve_preset, synthesize

    store = tmp_path / "store"  # stands for an imported Human3.6M: a store with 2D joints and 3D poses
    synthesize(store, resolve_preset("tiny"), workers=0, preset="tiny")
    out = tmp_path / "r"
    assert main(["reproduce", "--input", "keypoints2d", "--preset", "tiny", "--out", str(out), "--data", str(store),
                 "--set", "data.train_views=600", "--set", "ae_finetune.epochs=1"]) == 0  # fmt: skip
    assert "report:" in capsys.readouterr().out
    assert (out / "models" / "lift_ours" / "model.json").is_file()
    results = json.loads((out / "results.json").read_text())
    assert len(results["sets"]["store"]["lift_direct"]["mpjpe"]) == 1
    assert f"The test split of {store.resolve()}" in (out / "report.md").read_text()
    preds = np.load(out / "seed0" / "predictions.npz")["store/lift_direct"]
    assert preds.shape == (len(PoseImageDataset(store, "test")), 17, 3)
    assert main(["reproduce", "--input", "keypoints2d", "--ablations", "--out", str(tmp_path / "s")]) == 1


def test_scarce_pairs_repeat_a_seeded_subset_to_the_steps_of_the_whole() -> None:
    from structpose.lift.pipeline import paired_views

    lib = load_pose_library()
    train = lift_splits(lib, "v2", 0, 0, {"train": 2000, "test": 10}, 0.1)["train"]
    assert paired_views(train, 1.0, 0) is train
    few = paired_views(train, 0.05, 0)
    assert len(few) == len(train)
    assert len(np.unique(few.frame)) <= round(0.05 * len(train))  # library frames of the kept views only
    np.testing.assert_array_equal(few.poses3d, paired_views(train, 0.05, 0).poses3d)  # seeded
    with pytest.raises(ConfigError, match="pair_fraction"):
        load_lift_config("tiny", ["data.pair_fraction=0"])
