"""Test-time regimes: occluded and truncated views of a test set, deterministic and paired."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_train import make_store

from structpose.data.dataset import PoseImageDataset
from structpose.data.perturb import Occlusion, Truncation, _person_box


@pytest.fixture(scope="module")
def test_set(tmp_path_factory: pytest.TempPathFactory) -> PoseImageDataset:
    root = make_store(tmp_path_factory.mktemp("store"), n_train=16, n_test=40)
    return PoseImageDataset(root, "test")


def _joints_in_view(ds: PoseImageDataset) -> PoseImageDataset:
    """The toy store has zero 2D joints: give its samples a person box in the middle of the crop."""
    ds = ds.subset(np.arange(len(ds)))
    grid = np.stack(np.meshgrid(np.linspace(8, 24, 5), np.linspace(4, 28, 4)), -1).reshape(-1, 2)[:17]
    ds.joints2d = np.broadcast_to(np.concatenate([grid, grid[:-3]])[:17], (len(ds), 17, 2)).copy()
    return ds


JOINTS = np.concatenate([np.stack(np.meshgrid(np.linspace(8, 24, 5), np.linspace(4, 28, 4)), -1).reshape(-1, 2)])[:17]


@pytest.mark.parametrize("regime", [Occlusion(seed=3), Truncation(seed=3)])
def test_a_regime_damages_a_bounded_part_of_the_person_box(regime) -> None:
    n = 200
    clean = np.full((n, 32, 32, 3), 128, np.uint8)  # mid-grey: neither black (truncation) nor any fill colour
    bad = regime(clean, np.arange(n), np.broadcast_to(JOINTS, (n, 17, 2)))
    x0, y0, x1, y1 = (round(v) for v in _person_box(JOINTS, 32))
    changed = (clean != bad).any(-1)  # (n, S, S)
    inside = changed[:, y0:y1, x0:x1].mean((1, 2))
    assert (inside > 0.02).all() and inside.max() < 0.5 and 0.1 < inside.mean() < 0.35
    if isinstance(regime, Occlusion):  # the occluder is one rectangle: the crop outside the box is (nearly) clean
        outside = changed.sum((1, 2)) - changed[:, y0:y1, x0:x1].sum((1, 2))
        assert outside.mean() < 0.1 * (x1 - x0) * (y1 - y0)
    else:  # truncation: black from one crop edge inwards
        assert (bad[changed] == 0).all()
        edges = np.stack([changed[:, :, 0].any(1), changed[:, :, -1].any(1), changed[:, 0].any(1),
                          changed[:, -1].any(1)])  # fmt: skip
        assert edges.any(0).all()


def test_regimes_are_deterministic_per_sample_in_every_view(test_set) -> None:
    ds = _joints_in_view(test_set)
    a = ds.perturbed(Occlusion()).images([5, 7])
    b = ds.subset([7, 5]).perturbed(Occlusion()).images([1, 0])  # other positions, same samples
    np.testing.assert_array_equal(a, b)
    other = ds.perturbed(Occlusion(seed=1)).images([5, 7])
    assert not np.array_equal(a, other)
    items = ds.perturbed(Occlusion()).__getitems__([5])  # what the DataLoader sees
    np.testing.assert_array_equal(items[0]["image"].numpy().transpose(1, 2, 0), a[0])


def test_person_box_of_joints(tmp_path: Path) -> None:
    joints = np.array([[10.0, 5.0], [20.0, 25.0]] + [[15.0, 15.0]] * 15)
    assert _person_box(joints, 32) == pytest.approx((9.0, 3.0, 21.0, 27.0))
