"""The run-folder layout, the one resume rule, stage reuse across settings, and the methods registry."""

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import make_store

from structpose.errors import ConfigError, InputError
from structpose.train.config import load_config
from structpose.train.data import load_splits
from structpose.train.layout import (
    SELECTION,
    WEIGHTS,
    RunLayout,
    SeedLayout,
    adopt,
    finished,
    resume_or_fit,
    stage_rank,
)
from structpose.train.methods import load_method
from structpose.train.pipeline import predict, stage_inputs, train_all


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), n_train=192, n_test=32)


def test_the_resume_rule_loads_a_finished_stage_and_fits_any_other(tmp_path: Path) -> None:
    calls: list[str] = []

    def fit(d: Path) -> str:
        calls.append("fit")
        d.mkdir(parents=True, exist_ok=True)
        (d / WEIGHTS).write_bytes(b"w")
        return "fitted"

    def load(d: Path) -> str:
        calls.append("load")
        return "loaded"

    stage = tmp_path / "s"
    assert resume_or_fit(stage, True, load, fit) == "fitted"  # nothing there: fitted even when resuming
    assert resume_or_fit(stage, True, load, fit) == "loaded"
    assert resume_or_fit(stage, False, load, fit) == "fitted"  # a new run never loads
    # a fitted method is finished only with its selection too (the weights alone: interrupted after them)
    assert not finished(stage, fitted=True) and resume_or_fit(stage, True, load, fit, fitted=True) == "fitted"
    (stage / SELECTION).write_text("{}")
    assert resume_or_fit(stage, True, load, fit, fitted=True) == "loaded"
    assert calls == ["fit", "load", "fit", "fit", "load"]


def test_adopt_makes_a_finished_copy(tmp_path: Path) -> None:
    src, dst = tmp_path / "a" / "linkde", tmp_path / "b" / "linkde"
    src.mkdir(parents=True)
    (src / WEIGHTS).write_bytes(b"weights")
    (src / SELECTION).write_text('{"chosen": {}}')
    (src / "last.ckpt").write_bytes(b"not adopted")
    adopt(src, dst)
    assert finished(dst, fitted=True) and (dst / WEIGHTS).read_bytes() == b"weights"
    assert not (dst / "last.ckpt").exists() and not list(dst.glob(".*tmp"))


def test_run_layout_names_seeds_in_seed_order(tmp_path: Path) -> None:
    run = RunLayout(tmp_path)
    for s in (10, 2, 0):
        run.seed(s).root.mkdir()
    (tmp_path / "seedX").mkdir()  # not a seed folder
    assert [f.root.name for f in run.seeds()] == ["seed0", "seed2", "seed10"]
    assert run.ablation("lam0", 3).root == tmp_path / "ablations" / "lam0" / "seed3"
    assert SeedLayout(tmp_path).weights("direct") == tmp_path / "direct" / WEIGHTS


def test_stage_inputs_say_what_a_setting_changes(store: Path) -> None:
    base = load_config("tiny", [f"data.root={store}"])
    lam = load_config("tiny", [f"data.root={store}", "ae.lam=1"])
    fewer = load_config("tiny", [f"data.root={store}", "data.train_fraction=0.5"])
    poses = load_config("tiny", [f"data.root={store}", "data.ae_poses=library"])
    assert stage_inputs(base, "direct") == stage_inputs(lam, "direct")  # the prior does not touch the CNN
    assert stage_inputs(base, "latent") != stage_inputs(lam, "latent")
    assert stage_inputs(base, "direct") != stage_inputs(fewer, "direct")
    assert stage_inputs(base, "direct") == stage_inputs(poses, "direct")  # the AE's poses are its own
    assert stage_inputs(base, "ae_finetune") != stage_inputs(poses, "ae_finetune")
    other_seed = load_config("tiny", [f"data.root={store}", "trainer.seed=1"])
    assert stage_inputs(base, "direct") != stage_inputs(other_seed, "direct")


def test_a_setting_retrains_only_the_stages_it_changes(store: Path, tmp_path: Path) -> None:
    main = load_config("tiny", [f"data.root={store}"])
    splits = load_splits(main.data, main.cnn.in_size)
    first = train_all(main, tmp_path / "main", splits=splits)
    lam = load_config("tiny", [f"data.root={store}", "ae.lam=1"])
    second = train_all(lam, tmp_path / "lam", splits=splits, reuse=(SeedLayout(tmp_path / "main"),))
    direct = tmp_path / "lam" / "direct"
    assert finished(direct) and not (direct / "last.ckpt").exists()  # taken, not trained
    assert (tmp_path / "lam" / "latent" / "last.ckpt").is_file()  # the prior's stages were trained
    # like with like (same weights, batch, kernels): the shared CNN predicts exactly the same
    np.testing.assert_array_equal(predict(second["cnn"], splits.test), predict(first["cnn"], splits.test))
    assert not np.allclose(predict(second["ours"], splits.test), predict(first["ours"], splits.test))


def test_every_network_method_reloads_from_its_folder(store: Path, tmp_path: Path) -> None:
    cfg = load_config("tiny", [f"data.root={store}"])
    splits = load_splits(cfg.data, cfg.cnn.in_size)
    nets = train_all(cfg, tmp_path / "seed0", splits=splits)
    images = splits.test.images(np.arange(8))
    for key in ("ours", "ours_noft", "cnn"):
        method = load_method(tmp_path, key)  # a run folder: its first seed that has the stage
        # a freshly loaded (contiguous) net against the trained channels_last one: other float32 conv
        # kernels, a few ulps at ~1000 mm; 1e-2 mm still catches a wrong weight, decoder or normaliser
        np.testing.assert_allclose(method.predict(images), predict(nets[key], splits.test)[:8], rtol=0, atol=1e-2)
    with pytest.raises(InputError, match="unknown method"):
        load_method(tmp_path, "nope")
    with pytest.raises(FileNotFoundError, match="linkde"):
        load_method(tmp_path, "linkde")


def test_equal_steps_repeats_a_fraction_to_the_full_epoch(store: Path) -> None:
    full = load_splits(load_config("tiny", [f"data.root={store}"]).data, 32)
    part = load_splits(load_config("tiny", [f"data.root={store}", "data.train_fraction=0.25"]).data, 32)
    equal = load_splits(load_config("tiny", [f"data.root={store}", "data.train_fraction=0.25",
                                             "data.equal_steps=true"]).data, 32)  # fmt: skip
    assert len(equal.train) == len(full.train) and len(part.train) == round(0.25 * len(full.train))
    # the same subset, repeated: its distinct frames are the 25% subset's
    assert set(equal.train.frame.tolist()) == set(part.train.frame.tolist())
    np.testing.assert_array_equal(equal.val.frame, full.val.frame)  # validation untouched


def test_config_refuses_unknown_methods() -> None:
    with pytest.raises(ConfigError, match="methods"):
        load_config("tiny", ["methods=[ours,nonsense]"])


def test_noise_on_the_input_only_leaves_deeper_layers_clean() -> None:
    from structpose.models.autoencoder import AEConfig, PoseAutoencoder

    x = torch.randn(16, 51)
    for placement, noisy in (("input", False), ("every_layer", True)):
        torch.manual_seed(0)
        ae = PoseAutoencoder(AEConfig(hidden=(32, 32), noise_mm=(0.0, 500.0), noise=placement), scale_mm=100.0)
        clean, _ = ae.loss(x, train=False)
        trained, _ = ae.loss(x, train=True)
        assert bool(torch.isclose(clean, trained)) != noisy, placement


def test_a_resume_may_change_the_methods_but_nothing_else(tmp_path: Path) -> None:
    from structpose.train.layout import check_config

    cfg = load_config("tiny")
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())
    check_config(load_config("tiny", ["methods=[cnn,ours]"]).to_yaml(), tmp_path)  # adding/dropping methods: fine
    with pytest.raises(ConfigError, match="differs"):
        check_config(load_config("tiny", ["ae.lam=0.5"]).to_yaml(), tmp_path)
    (tmp_path / "config.yaml").write_text("{unreadable: [")
    with pytest.raises(ConfigError, match="differs"):
        check_config(cfg.to_yaml(), tmp_path)


def test_stage_rank_sorts_stage_folders_in_pipeline_order() -> None:
    names = ["linkde", "direct", "finetune", "ae_pretrain10", "latent", "ae_finetune", "ae_pretrain2", "other"]
    assert sorted(names, key=stage_rank) == ["ae_pretrain2", "ae_pretrain10", "ae_finetune", "latent", "finetune",
                                             "direct", "linkde", "other"]  # fmt: skip
