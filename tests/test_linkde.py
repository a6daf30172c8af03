"""HOG features and the LinKDE baseline (structpose.models.features, structpose.models.linkde)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from structpose.errors import ConfigError, FormatError, InputError
from structpose.metrics import mpjpe
from structpose.models.features import default_cell, hog, hog_dim
from structpose.models.linkde import LinKDE, LinKDEConfig, RandomFourierFeatures, median_gamma, select_config
from structpose.skeleton import root_relative

# ------------------------------------------------------------------------------------------------ HOG


def _blocks(descriptor: np.ndarray, size: int, bins: int = 9) -> np.ndarray:
    """(D,) -> (n, n, 4, bins): block row, block column, cell in block, orientation bin."""
    n = size // default_cell(size) - 1
    return descriptor.reshape(n, n, 4, bins)


def test_hog_dimensions_follow_the_formula():
    assert default_cell(128) == 8 and default_cell(64) == 4
    assert hog_dim(128) == hog_dim(64) == 15 * 15 * 4 * 9 == 8100
    assert hog_dim(64, cell=8, bins=6) == 7 * 7 * 4 * 6
    assert hog_dim(70, cell=8) == 7 * 7 * 4 * 9  # the 6 px beyond the last whole cell are dropped
    for size, cell, bins in [(64, None, 9), (32, None, 9), (70, 8, 9), (64, 8, 6)]:
        out = hog(np.zeros((2, size, size, 3), np.uint8), cell=cell, bins=bins)
        assert out.shape == (2, hog_dim(size, cell, bins)) and out.dtype == np.float32


def test_hog_of_a_constant_image_is_zero():
    assert not hog(np.full((2, 64, 64, 3), 77, np.uint8)).any()


def test_vertical_edge_votes_in_the_horizontal_gradient_bin():
    image = np.zeros((1, 64, 64, 3), np.uint8)
    image[:, :, 32:] = 200  # a vertical edge between columns 31 and 32: a purely horizontal gradient
    blocks = _blocks(hog(image)[0], 64)
    per_bin = blocks.sum((0, 1, 2))
    assert per_bin[0] > 0 and np.all(per_bin[1:] == 0)
    # only the blocks whose cells touch columns 31-32 (cells 7 and 8 of 4 px) see the edge
    energy = blocks.sum((0, 2, 3))  # per block column
    assert set(np.flatnonzero(energy)) == {6, 7, 8}
    # a horizontal edge votes at pi/2: half-way between the centres of bins 4 and 5 (of 9)
    per_bin = _blocks(hog(image.transpose(0, 2, 1, 3))[0], 64).sum((0, 1, 2))
    assert per_bin[4] == pytest.approx(per_bin[5]) and per_bin[4] > 0
    assert per_bin[[0, 1, 2, 3, 6, 7, 8]].sum() == 0


def test_hog_uses_the_strongest_colour_channel():
    grey = np.zeros((1, 64, 64, 3), np.uint8)
    grey[:, 10:40, 20:50] = 180
    red = grey.copy()
    red[..., 1:] = 0  # the same square in the red channel only
    np.testing.assert_array_equal(hog(red), hog(grey))


def test_hog_blocks_are_l2hys_normalised_and_contrast_invariant():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 128, (3, 64, 64, 3), dtype=np.uint8)
    out = hog(images)
    norms = np.linalg.norm(_blocks(out[0], 64).reshape(225, -1), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)
    # doubling the contrast changes nothing but the eps of the normalisation and float32 rounding (6e-8 seen)
    np.testing.assert_allclose(hog(images * 2), out, atol=1e-4)
    # each image is described independently; bit-exact is sound at another batch size: HOG is per-pixel
    # arithmetic, a sequential bincount and sums over one block's 36 bins, none of which mixes images
    np.testing.assert_array_equal(hog(images[1:2]), out[1:2])


# ----------------------------------------------------------------------------------- kernel pieces


def test_random_fourier_features_approximate_the_gaussian_kernel():
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(20, 5, generator=gen, dtype=torch.float64)
    gamma = 0.1
    rff = RandomFourierFeatures.sample(5, 20000, gamma, gen)
    approx = rff(points) @ rff(points).T
    exact = torch.exp(-gamma * torch.cdist(points, points).square()).float()
    assert float((approx - exact).abs().max()) < 0.03  # estimator std ~ 1/sqrt(2 d) = 0.005
    assert float((approx - exact).abs().mean()) < 0.01
    assert exact.min() < 0.2  # the test covers near and far pairs


def test_median_gamma_is_the_inverse_median_squared_distance():
    rows = torch.tensor([[0.0], [1.0], [2.0], [4.0]])  # squared distances 1, 4, 16, 1, 9, 4
    assert median_gamma(rows) == pytest.approx(1 / 4)


# ------------------------------------------------------------------------------------------ LinKDE


def _toy(n: int, seed: int, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, dim) and poses (n, 17, 3) mm: fixed nonlinear maps of a 3-D parameter in [-1, 1]^3."""
    maps = np.random.default_rng(123)  # the same maps for every split
    a, b = maps.normal(size=(3, dim)), maps.uniform(0, 2 * math.pi, dim)
    basis_to_pose = maps.normal(size=(6, 51)) * 150
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-1, 1, (n, 3))
    basis = np.concatenate([np.sin(math.pi * theta), np.cos(math.pi * theta)], 1)
    poses = (basis @ basis_to_pose).reshape(n, 17, 3)
    features = np.tanh(2 * theta @ a + b) + 0.05 * rng.normal(size=(n, dim))
    return features.astype(np.float32), poses.astype(np.float32)


CONFIG = LinKDEConfig(input_features=1000, output_features=1000, ridge=1e-5, chunk=256)


@pytest.fixture(scope="module")
def toy() -> dict[str, np.ndarray]:
    x_train, y_train = _toy(400, seed=0)
    x_test, y_test = _toy(200, seed=1)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": root_relative(y_test)}


@pytest.fixture(scope="module")
def fitted(toy) -> LinKDE:
    return LinKDE(CONFIG).fit(toy["x_train"], toy["y_train"])


@pytest.mark.parametrize("config", [CONFIG, replace(CONFIG, preimage="best"), replace(CONFIG, mode="krr")])
def test_linkde_learns_a_toy_problem(toy, config):
    model = LinKDE(config).fit(toy["x_train"], toy["y_train"])
    pred = model.predict(toy["x_test"])
    assert pred.shape == toy["y_test"].shape and pred.dtype == np.float32
    np.testing.assert_array_equal(pred[:, 0], 0)  # root-relative
    mean_pose = np.broadcast_to(root_relative(toy["y_train"]).mean(0), pred.shape).copy()
    assert mpjpe(pred, toy["y_test"]) < 0.5 * mpjpe(mean_pose, toy["y_test"])


def test_ridge_solution_matches_a_direct_solve(toy):
    model = LinKDE(replace(CONFIG, ridge=1e-3, chunk=64)).fit(toy["x_train"], toy["y_train"])
    state = model.state_dict()

    def phi_x(x: np.ndarray) -> torch.Tensor:
        return model.phi_x(torch.from_numpy((x - state["feature_mean"]) / state["feature_std"]), torch.float64)

    fx, ft = phi_x(toy["x_train"]), model.phi_y(model.train_poses, torch.float64)
    fx_c, ft_c = fx - fx.mean(0), ft - ft.mean(0)
    gram = fx_c.T @ fx_c / len(fx) + 1e-3 * torch.eye(fx.shape[1], dtype=torch.float64)
    weight = torch.linalg.solve(gram, fx_c.T @ ft_c / len(fx))
    direct = (phi_x(toy["x_test"]) - fx.mean(0)) @ weight + ft.mean(0)
    assert float(direct.abs().max()) > 0.03
    # both solves are float64 (they agree to ~1e-12); the model's float32 W and b (its stored format) and
    # output put float32 rounding on values of <= 0.07: measured 4e-9, so 1e-7 leaves a 25x margin
    np.testing.assert_allclose(model.predict_features(toy["x_test"]), direct.float(), rtol=0, atol=1e-7)


def test_gammas_follow_the_median_heuristic_unless_given(toy, fitted):
    # 400 rows < median_samples: the heuristic sees all of them
    poses = torch.from_numpy(root_relative(toy["y_train"]).reshape(400, -1))
    assert fitted.output_gamma == pytest.approx(CONFIG.output_gamma_factor * median_gamma(poses))
    x = toy["x_train"]
    standardised = torch.from_numpy((x - x.mean(0)) / x.std(0))
    expected = CONFIG.input_gamma_factor * median_gamma(standardised)
    assert fitted.input_gamma == pytest.approx(expected, rel=1e-4)
    given = LinKDE(replace(CONFIG, input_gamma=0.01, output_gamma=1e-6)).fit(toy["x_train"], toy["y_train"])
    assert (given.input_gamma, given.output_gamma) == (0.01, 1e-6)


def test_preimage_of_a_training_pose_feature_is_that_pose(fitted):
    # exact equality is sound: the pose is copied, not computed, and the 4 rows' own float32 phi_y beat the
    # other candidates by their squared phi_y distance (>> float32 rounding), not by a near-tie
    index = torch.tensor([0, 17, 399, 123])
    own = fitted.phi_y(fitted.train_poses[index])
    best = LinKDE(replace(CONFIG, preimage="best")).load_state_dict(fitted.state_dict())
    assert torch.equal(best.preimage(own), fitted.train_poses[index])
    assert torch.equal(fitted.nearest_candidates(own, 8)[:, 0], index)


def test_running_top_k_matches_brute_force(fitted, toy):
    phi_hat = fitted.predict_features(toy["x_test"][:50])
    dist = torch.cdist(phi_hat.double(), fitted.phi_y(fitted.train_poses, torch.float64))  # (50, 400)
    brute = dist.topk(8, largest=False).values
    small_chunks = LinKDE(replace(CONFIG, chunk=5)).load_state_dict(fitted.state_dict())  # chunk < k
    for model in (fitted, small_chunks):
        index = model.nearest_candidates(phi_hat, 8)
        # Distances, not indices: the chunked float64 scores and cdist round differently (~1e-15), which
        # may swap two candidates only when they are tied to that level (both then are right). A wrong
        # pick costs at least the gap between neighbours, >= 1e-5 on these queries; so 1e-12 catches it.
        np.testing.assert_allclose(dist.gather(1, index), brute, rtol=0, atol=1e-12)


def _float32_ulp(a: np.ndarray | torch.Tensor) -> float:
    """One unit in the last place of float32 at the largest magnitude in ``a``."""
    return 2.0**-23 * float(np.abs(np.asarray(a)).max())


def test_fit_does_not_depend_on_the_chunk_size(fitted, toy):
    other = LinKDE(replace(CONFIG, chunk=37)).fit(toy["x_train"], toy["y_train"])
    state, reference = other.state_dict(), fitted.state_dict()
    # The chunked sums are float64: the two fits agree to float64 rounding (W to ~1e-13, although W is
    # ill-conditioned at this small ridge, cond ~ 6e3). Rounded to float32, a few values may therefore
    # differ by one ulp of the largest value (2 allowed), never more; float32 products of chunks differed
    # by 2.5e-4 of max |W|, i.e. ~2000 ulps.
    for name in reference:
        atol = 2 * _float32_ulp(reference[name])
        np.testing.assert_allclose(state[name], reference[name], rtol=0, atol=atol, err_msg=name)
    phi_hat = fitted.predict_features(toy["x_test"])
    assert float(phi_hat.abs().max()) > 0.1
    np.testing.assert_allclose(other.predict_features(toy["x_test"]), phi_hat, rtol=0, atol=2 * _float32_ulp(phi_hat))
    # The same picks give the same 8-pose means, up to their summation order (~1e-4 mm); a pick swapped
    # by rounding would move a pose by tens of mm, but needs an 8th/9th neighbour gap below the ~1e-8
    # score change above: the smallest gap on these queries is 3e-4.
    np.testing.assert_allclose(other.predict(toy["x_test"]), fitted.predict(toy["x_test"]), rtol=0, atol=1e-3)


def test_fit_is_deterministic_given_the_seed(fitted, toy):
    again = LinKDE(CONFIG).fit(toy["x_train"], toy["y_train"])
    np.testing.assert_array_equal(again.predict(toy["x_test"]), fitted.predict(toy["x_test"]))
    other = LinKDE(replace(CONFIG, seed=1)).fit(toy["x_train"], toy["y_train"])
    assert not np.array_equal(other.state_dict()["input_omega"], fitted.state_dict()["input_omega"])


@pytest.mark.parametrize("mode", ["kde", "krr"])
def test_state_dict_round_trip_through_safetensors(toy, tmp_path, mode):
    config = replace(CONFIG, mode=mode)
    model = LinKDE(config).fit(toy["x_train"], toy["y_train"])
    state = model.state_dict()
    assert all(a.dtype == np.float32 for a in state.values())
    assert ("train_poses" in state) == (mode == "kde")
    save_file(state, str(tmp_path / "linkde.safetensors"))
    loaded = LinKDE(config).load_state_dict(load_file(str(tmp_path / "linkde.safetensors")))
    np.testing.assert_array_equal(loaded.predict(toy["x_test"]), model.predict(toy["x_test"]))
    assert loaded.input_gamma == pytest.approx(model.input_gamma, rel=1e-6)


def test_bad_config_features_and_state_are_refused(fitted, toy):
    """Exceptions, not asserts: the checks hold under ``python -O`` too."""
    with pytest.raises(ConfigError, match="ridge"):
        LinKDEConfig(ridge=0.0)
    with pytest.raises(ConfigError, match="mode"):
        LinKDEConfig(mode="svm")
    with pytest.raises(RuntimeError, match="fit"):
        LinKDE(CONFIG).predict(toy["x_test"])
    with pytest.raises(InputError, match=r"\(M, 64\)"):
        fitted.predict(toy["x_test"][:, :10])
    state = fitted.state_dict()
    state["weight"] = state["weight"][:5]
    with pytest.raises(FormatError, match="'weight' has shape"):
        LinKDE(CONFIG).load_state_dict(state)
    del state["weight"]
    with pytest.raises(FormatError, match="keys"):
        LinKDE(CONFIG).load_state_dict(state)


def test_select_config_picks_the_lowest_validation_error(toy):
    x_val, y_val = _toy(100, seed=2)  # a validation set, never the test set
    grid = {"output_gamma_factor": (0.01, 1.0), "ridge": (1e-5,)}
    best, scores = select_config(toy["x_train"], toy["y_train"], x_val, y_val, base=CONFIG, grid=grid)
    assert [s for s, _ in scores] == [{"output_gamma_factor": 0.01, "ridge": 1e-5},
                                      {"output_gamma_factor": 1.0, "ridge": 1e-5}]  # fmt: skip
    errors = [e for _, e in scores]
    assert errors[1] < errors[0]  # a far too wide pose kernel cannot tell poses apart
    assert best.output_gamma_factor == 1.0 and best.input_features == CONFIG.input_features
