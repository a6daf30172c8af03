"""HOG features and the LinKDE baseline (structpose.models.features, structpose.models.linkde)."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from structpose.errors import ConfigError, FormatError, InputError
from structpose.metrics import mpjpe
from structpose.models.features import default_cell, hog, hog_dim, hog_histograms, l1_histograms
from structpose.models.linkde import (
    IONESCU,
    KNN,
    VARIANTS,
    Chi2FeatureMap,
    LinKDE,
    LinKDEConfig,
    PoseObjective,
    RandomFourierFeatures,
    chi2_distance,
    lbfgs_preimage,
    median_gamma,
    preimage_objective,
    select_config,
)
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


# ------------------------------------------------------------------------- exp-chi2 LinKDE (Ionescu)


def _histograms(n: int, dim: int, seed: int) -> torch.Tensor:
    """(n, dim) float64 L1-normalised histograms: uniform and sparse Dirichlet(0.3) rows, half each."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.uniform(size=(n - n // 2, dim)), rng.dirichlet(np.full(dim, 0.3), n // 2)])
    return torch.from_numpy(rows / rows.sum(1, keepdims=True))


def test_l1_histograms_normalise_hog_and_refuse_negative_entries():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    images[2] = 77  # a constant image: an all-zero descriptor stays all-zero
    out = hog_histograms(images)
    assert out.shape == (3, hog_dim(64)) and out.dtype == np.float32
    np.testing.assert_allclose(out[:2].sum(1), 1.0, rtol=1e-5)
    assert not out[2].any()
    np.testing.assert_allclose(l1_histograms(out), out, rtol=1e-6)  # idempotent
    with pytest.raises(InputError, match=r"non-negative: entry \(1, 2\) is -0.5"):
        l1_histograms(np.array([[1.0, 2.0, 0.0], [0.0, 1.0, -0.5]]))


def test_chi2_distance_is_the_additive_kernel_metric():
    # exact identities: chi2(a, b) = K(a, a) + K(b, b) - 2 K(a, b) with K(a, a) = sum(a); for L1-normalised
    # histograms chi2 = 2 - 2 K, so chi2 lies in [0, 2]
    h = _histograms(12, 30, seed=0)
    h[0, :5] = 0  # empty bins: 0/0 counts 0
    a, b = h[:, None], h[None]
    kernel = torch.where(a + b > 0, 2 * a * b / (a + b).clamp(min=1e-300), 0.0).sum(-1)
    chi2 = chi2_distance(h, h)
    np.testing.assert_allclose(chi2, h.sum(1)[:, None] + h.sum(1) - 2 * kernel, rtol=0, atol=1e-12)
    h[0] /= h[0].sum()
    kernel = torch.where(a + b > 0, 2 * a * b / (a + b).clamp(min=1e-300), 0.0).sum(-1)
    chi2 = chi2_distance(h, h)
    np.testing.assert_allclose(chi2, 2 - 2 * kernel, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chi2.diagonal(), 0, atol=1e-15)
    assert float(chi2.max()) <= 2


@pytest.mark.parametrize(("steps", "worst", "mean"), [(1, 0.12, 0.03), (2, 0.03, 0.007), (3, 0.015, 0.004)])
def test_chi2_map_squared_distance_approximates_the_chi2_distance(steps, worst, mean):
    # Relative error of ||psi(a) - psi(b)||^2 against chi2(a, b) over the 1225 pairs, measured (default
    # periods; max / mean): n = 1: 10% / 2.6%, n = 2: 2.5% / 0.6%, n = 3: 1.2% / 0.3%. The sparse Dirichlet
    # rows of 40 bins are a hard case (bins of very different sizes); on L1-normalised HOG of synthetic
    # crops the worst errors are 1.2%, 0.6%, 0.5%. The map samples the spectrum of the chi2 kernel at
    # 2n+1 points, so the error falls with n.
    h = _histograms(50, 40, seed=1)
    period = LinKDEConfig(chi2_steps=steps).period
    psi = Chi2FeatureMap(steps, period)(h)
    assert psi.shape == (50, 40 * (2 * steps + 1))
    iu = torch.triu_indices(50, 50, offset=1).unbind()
    error = (torch.cdist(psi, psi).square()[iu] / chi2_distance(h, h)[iu] - 1).abs()
    assert float(error.max()) < worst and float(error.mean()) < mean
    # exact: cos^2 + sin^2 = 1, so ||psi(a)||^2 = L (1 + 2 sum_j sech(pi j L)) sum(a), the kernel's estimate
    # of K(a, a) = sum(a) = 1 (biased; the biases cancel in the distance)
    norm = period * (1 + 2 * sum(1 / math.cosh(math.pi * j * period) for j in range(1, steps + 1)))
    np.testing.assert_allclose(psi.square().sum(1), norm, rtol=1e-12)


def test_exp_chi2_random_features_approximate_the_exact_kernel():
    # phi_x = Gaussian random Fourier features on the chi2 map psi: phi(a) . phi(b) estimates
    # exp(-gamma ||psi(a) - psi(b)||^2) ~ exp(-gamma chi2(a, b)). Per Gram entry the estimator is a mean of
    # d terms 2 cos(w.a + b) cos(w.b + b) = cos(w.(a - b)) + cos(w.(a + b) + 2 b), of variance
    # 1/2 (1 + k(2 delta)) - k^2 + 1/2 <= 1: std <= 1/sqrt(d) = 0.0071 at d = 20000, mean |error| <= 0.8 std =
    # 0.0057; the chi2 map (n = 3) adds a bias of 0.001 on average (0.0024 at most, measured against the
    # exact map). Measured: mean |error| 0.0057 (max 0.024) at 20000 features, 0.0154 at 2000 (ratio 2.7,
    # ~ sqrt(10) = 3.2 less the bias floor: the Monte Carlo error dominates).
    h = _histograms(50, 40, seed=2)
    chi2 = chi2_distance(h, h)
    gamma = 1.0 / float(chi2.median())
    exact = torch.exp(-gamma * chi2)
    chi2_map = Chi2FeatureMap(3, LinKDEConfig(chi2_steps=3).period)
    errors = {}
    for d in (2000, 20000):
        rff = RandomFourierFeatures.sample(40 * 7, d, gamma, torch.Generator().manual_seed(0))
        phi = rff.from_projection(chi2_map.project(h, rff._float64[0]))
        errors[d] = (phi @ phi.T - exact).abs()
    assert float(errors[20000].mean()) < 0.008 and float(errors[20000].max()) < 0.04  # ~ 5.6 std
    assert float(errors[2000].mean()) > 2 * float(errors[20000].mean())  # ~ 1/sqrt(d)
    assert float(exact.min()) < 0.3  # near and far pairs


CHI2_CONFIG = replace(CONFIG, input_kernel="exp_chi2", preimage="optimise")


@pytest.fixture(scope="module")
def chi2_toy(toy) -> dict[str, np.ndarray]:
    """The toy problem with non-negative features (``exp`` of the toy's), which LinKDE L1-normalises."""
    return {**toy, "x_train": np.exp(2 * toy["x_train"]), "x_test": np.exp(2 * toy["x_test"])}


@pytest.fixture(scope="module")
def chi2_fitted(chi2_toy) -> LinKDE:
    return LinKDE(CHI2_CONFIG).fit(chi2_toy["x_train"], chi2_toy["y_train"])


def test_pose_objective_gradient_matches_autograd(chi2_fitted, chi2_toy):
    phi_hat = chi2_fitted.predict_features(chi2_toy["x_test"][:6]).double()
    free = torch.from_numpy(chi2_toy["y_test"][:6].reshape(6, -1)[:, 3:]).double() + 20.0
    f, g = PoseObjective(chi2_fitted.phi_y, phi_hat)(free, torch.arange(6))
    free.requires_grad_(True)
    poses = torch.cat([torch.zeros(6, 3, dtype=torch.float64), free], 1)
    phi = torch.cos(poses @ chi2_fitted.phi_y._float64[0] + chi2_fitted.phi_y._float64[1]) * chi2_fitted.phi_y.scale
    (phi - phi_hat).square().sum().backward()
    np.testing.assert_allclose(f, (phi - phi_hat).square().sum(1).detach(), rtol=1e-12)
    np.testing.assert_allclose(g, free.grad, rtol=1e-9, atol=1e-15)


def test_preimage_optimisation_never_raises_the_objective(chi2_fitted, chi2_toy):
    phi_hat = chi2_fitted.predict_features(chi2_toy["x_test"]).double()
    start = chi2_fitted.train_poses[chi2_fitted.nearest_candidates(phi_hat, 2)].reshape(-1, 51).double()
    target = phi_hat.repeat_interleave(2, 0)
    fun = PoseObjective(chi2_fitted.phi_y, target)
    f0 = fun(start[:, 3:], torch.arange(len(start)))[0]
    end, f = lbfgs_preimage(fun, start[:, 3:], steps=30, h0=1 / (4 * chi2_fitted.output_gamma))
    # monotone by construction (only steps that pass the Armijo test are taken): <= exactly
    assert bool((f <= f0).all()) and float((f < f0).float().mean()) > 0.9
    # f is the objective at the end points (recomputed in a batch of another shape: rounding may differ)
    np.testing.assert_allclose(f, fun(end, torch.arange(len(end)))[0], rtol=1e-14)
    np.testing.assert_allclose(preimage_objective(chi2_fitted.phi_y, start, target), f0, rtol=1e-12)
    # the target of a training pose's own (float64) phi_y: that pose is a global minimum (f = 0 and a zero
    # gradient, up to float64 rounding), where the optimiser does not move beyond float32 resolution
    index = torch.tensor([0, 17, 399])
    own = chi2_fitted.phi_y(chi2_fitted.train_poses[index], torch.float64)
    poses, value = chi2_fitted.optimise_preimage(own)
    assert torch.equal(poses, chi2_fitted.train_poses[index]) and float(value.max()) < 1e-25


def test_optimised_preimage_beats_its_starting_candidate_on_a_toy_problem(chi2_toy, chi2_fitted):
    pred = chi2_fitted.predict(chi2_toy["x_test"])
    assert pred.shape == chi2_toy["y_test"].shape and pred.dtype == np.float32
    np.testing.assert_array_equal(pred[:, 0], 0)  # root-relative
    best = LinKDE(replace(CHI2_CONFIG, preimage="best")).load_state_dict(chi2_fitted.state_dict())
    start = best.predict(chi2_toy["x_test"])
    flat = torch.from_numpy(pred.reshape(len(pred), -1))
    phi_hat = chi2_fitted.predict_features(chi2_toy["x_test"])
    # never a higher objective than the best candidate (one of its starts): exact up to the float32 poses
    objective = preimage_objective(chi2_fitted.phi_y, flat, phi_hat)
    start_objective = preimage_objective(chi2_fitted.phi_y, torch.from_numpy(start.reshape(len(pred), -1)), phi_hat)
    assert bool((objective <= start_objective + 1e-9).all())
    # measured: 111 mm against 190 mm for the best candidate (159 mm for the 8-NN mean, 634 mm for the mean
    # training pose); both starts of a query (best candidate, pose regression) end at the same point here,
    # within 0.04 mm: a single basin
    mean_pose = np.broadcast_to(root_relative(chi2_toy["y_train"]).mean(0), pred.shape).copy()
    assert mpjpe(pred, chi2_toy["y_test"]) < 0.9 * mpjpe(start, chi2_toy["y_test"])
    assert mpjpe(pred, chi2_toy["y_test"]) < 0.5 * mpjpe(mean_pose, chi2_toy["y_test"])


def test_exp_chi2_state_round_trip_through_safetensors(chi2_fitted, chi2_toy, tmp_path):
    state = chi2_fitted.state_dict()
    assert {"chi2_map", "krr_weight", "krr_bias"} <= set(state) and "feature_mean" not in state
    assert state["input_omega"].shape == (64 * 3, CHI2_CONFIG.input_features)
    save_file(state, str(tmp_path / "linkde.safetensors"))
    loaded = LinKDE(CHI2_CONFIG).load_state_dict(load_file(str(tmp_path / "linkde.safetensors")))
    # bit-exact: the model keeps in float32 what it stores (weights, omegas, the chi2 period) and rounds the
    # pose kernel width to float32 where the pre-image's initial step uses it, so both run the same numbers
    np.testing.assert_array_equal(loaded.predict(chi2_toy["x_test"]), chi2_fitted.predict(chi2_toy["x_test"]))
    # the saved kernel kind is checked against the config
    with pytest.raises(FormatError, match="input_kernel 'exp_chi2'.*says 'gaussian'"):
        LinKDE(replace(CHI2_CONFIG, input_kernel="gaussian")).load_state_dict(state)
    with pytest.raises(FormatError, match="chi2_map"):
        LinKDE(replace(CHI2_CONFIG, chi2_period=0.5)).load_state_dict(state)
    old = {k: v for k, v in state.items() if not k.startswith("krr")}  # saved before the KRR start existed
    LinKDE(replace(CHI2_CONFIG, preimage="knn")).load_state_dict(old)
    with pytest.raises(FormatError, match="keys"):
        LinKDE(CHI2_CONFIG).load_state_dict(old)


def test_exp_chi2_refuses_negative_histograms(chi2_toy, chi2_fitted):
    x = chi2_toy["x_train"].copy()
    x[3, 5] = -0.25
    with pytest.raises(InputError, match=r"non-negative histograms.*-0.25 at row 3, column 5"):
        LinKDE(CHI2_CONFIG).fit(x, chi2_toy["y_train"])
    with pytest.raises(InputError, match="non-negative"):
        chi2_fitted.predict(x[:10])
    x[3, 5] = np.nan
    with pytest.raises(InputError, match="negative or NaN"):
        chi2_fitted.predict(x[:10])
    with pytest.raises(ConfigError, match="input_kernel"):
        LinKDEConfig(input_kernel="chi2")
    with pytest.raises(ConfigError, match="preimage"):
        LinKDEConfig(preimage="mean")
    with pytest.raises(ConfigError, match="chi2_period"):
        LinKDEConfig(chi2_steps=5)


def test_the_two_variants():
    assert VARIANTS == {"linkde": IONESCU, "linkde_knn": KNN}
    assert (IONESCU.input_kernel, IONESCU.preimage, IONESCU.preimage_krr_start) == ("exp_chi2", "optimise", True)
    assert (KNN.input_kernel, KNN.preimage, KNN.knn) == ("gaussian", "knn", 8)
    assert KNN == LinKDEConfig()  # the defaults: configs saved before the exp-chi2 kernel load as before


def test_nested_selection_scores_are_those_of_plain_fits(chi2_toy):
    x_val, y_val = _toy(60, seed=2)
    x_val = np.exp(2 * x_val)
    base = replace(CHI2_CONFIG, input_features=300, output_features=300)
    grid = {"ridge": (1e-5,), "preimage_steps": (0, 20), "output_gamma_factor": (1.0, 2.0),
            "input_gamma_factor": (1.0, 2.0)}  # fmt: skip
    best, scores = select_config(chi2_toy["x_train"], chi2_toy["y_train"], x_val, y_val, base=base, grid=grid,
                                 max_train=400)  # fmt: skip
    assert [s for s, _ in scores] == [dict(zip(grid, v, strict=True)) for v in itertools.product(*grid.values())]
    truth = root_relative(y_val)
    for setting, score in scores:  # max_train >= N: the subset is the whole training set, in order
        model = LinKDE(replace(base, **setting)).fit(chi2_toy["x_train"], chi2_toy["y_train"])
        assert score == mpjpe(model.predict(x_val), truth), setting  # the same computations, so equal
    assert best == replace(base, **min(scores, key=lambda item: item[1])[0])
