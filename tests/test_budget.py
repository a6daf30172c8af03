"""Equal budgets: both CNN arms take the same optimizer steps on the same learning-rate curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_train import make_store

from structpose.report import read_metrics_csv
from structpose.train.config import load_config, preset_names
from structpose.train.pipeline import train_all


def _lr_per_step(run: Path, stage: str) -> list[float]:
    (log,) = (run / "logs" / stage).glob("version_*/metrics.csv")
    return [lr for _, lr in read_metrics_csv(log)["lr-Adam"]]


@pytest.mark.slow
def test_ours_and_the_direct_cnn_follow_one_learning_rate_curve(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store", n_train=128, n_test=16)
    train_all(load_config("tiny", [f"data.root={store}"]), tmp_path / "run")
    ours = _lr_per_step(tmp_path / "run", "latent") + _lr_per_step(tmp_path / "run", "finetune")
    direct = _lr_per_step(tmp_path / "run", "direct")
    assert len(ours) == len(direct) > 4  # the same number of optimizer steps
    np.testing.assert_allclose(ours, direct, rtol=1e-12)  # the same schedule, step for step
    assert len(set(np.round(direct, 12))) > 2  # and it is a schedule (warm restarts), not a constant


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_gives_both_arms_one_budget_and_one_learning_rate(preset: str) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # config.check_equal_budget warns when the arms' lr or schedule differ
        load_config(preset)
    with pytest.warns(UserWarning, match="not trained alike"):  # the check this test relies on does fire
        load_config(preset, ["direct.lr=1e-5"])
