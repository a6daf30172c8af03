"""LinKDE: the kernel dependency estimation baseline of Ionescu et al., "Human3.6M" (TPAMI 2014).

Kernel dependency estimation regresses, with kernel ridge regression, from a kernel feature map of the
input to a kernel feature map of the output, then maps the predicted output feature back to a pose (the
pre-image). LinKDE makes both feature maps explicit and finite with random Fourier features (Rahimi &
Recht, NIPS 2007), so training is linear in the number of samples N:

1. Input features ``x`` (N, D) (e.g. :func:`structpose.models.features.hog`) are standardised per
   dimension with the training mean and std, then mapped to ``phi_x(x) = sqrt(2 / d_x) cos(x Omega_x + b_x)``
   (N, d_x) with ``Omega_x ~ N(0, 2 gamma_x)`` (D, d_x) and ``b_x ~ U[0, 2 pi)``, so that
   ``phi_x(a) . phi_x(b) ~= exp(-gamma_x ||a - b||^2)``, a Gaussian kernel.
2. Poses are made root-relative, flattened to 51 numbers in mm and mapped alike to ``phi_y(y)`` (N, d_y)
   for a Gaussian kernel of width ``gamma_y`` (1/mm^2).
3. Ridge regression ``phi_y ~= phi_x W + c`` minimising ``mean_i ||phi_y(y_i) - phi_x(x_i) W - c||^2 +
   ridge ||W||_F^2``: the (d_x, d_x) normal equations on centred features are accumulated over chunks of
   ``chunk`` samples, so N = 100k fits in memory, and solved by Cholesky. Since
   ``||phi_x||^2 ~= 1``, this is kernel ridge regression with the regulariser ``N * ridge`` in the usual
   ``sum_i loss_i + lambda ||f||^2`` form.
4. Pre-image: the candidates are the training poses, ranked by ``||phi_y(y_i) - phi_hat||^2`` (computed as
   ``||phi_y(y_i)||^2 - 2 phi_y(y_i) . phi_hat``, dropping the common ``||phi_hat||^2``: a matrix product
   over chunks of candidates and queries with a running top-k; the candidates' ``phi_y`` are recomputed
   per chunk rather than stored, N x d_y floats). ``preimage="best"`` returns the best candidate (so a
   training pose's own ``phi_y`` gives that pose back exactly); ``preimage="knn"`` (the default) returns
   the plain mean of the ``knn`` best, which averages out the error of any single neighbour (5.6 mm
   better than ``"best"`` on held-out data, see :class:`LinKDEConfig`). Two alternatives were tried and
   dropped: weighting the k best by ``softmax(-||phi_y(y_i) - phi_hat||^2 / tau)`` is within +-0.8 mm of
   the plain mean; refining by gradient descent on ``||phi_y(y) - phi_hat||^2`` w.r.t. the pose ``y``
   (torch autograd, 100 Adam steps) converges to the same point from the best candidate or the 8-mean,
   2 mm WORSE than the 8-mean (126.2 against 124.2 mm), at ~100x the cost, and to a free 51-D point that
   need not keep bone lengths.

Kernel widths: ``None`` selects ``gamma = factor / median ||a - b||^2`` over the pairs of a random subset
of ``median_samples`` training rows (standardised features, or poses in mm), a scaled median heuristic.

``mode="krr"`` is the plain kernel ridge regression baseline for comparison: the same ``phi_x`` and ridge
regression, but of the flattened root-relative pose itself (mm), with no output kernel and no pre-image.

All randomness (the Fourier frequencies and phases, the median subset) comes from ``seed``: a fit is
deterministic. Computations run in torch on the CPU. The parameters are float32 (what :meth:`LinKDE.state_dict`
stores); the features of a chunk, the feature statistics, the normal equations and the ranking scores are
float64. A float32 matrix product's rounding depends on its shape (the kernel picks its blocking by the
number of rows), so float32 features would make a fit depend on ``chunk`` at the 1e-7 level, amplified by the
conditioning of the normal equations; in float64 the fit and the pre-image ranking agree across chunk sizes
(and thread counts, CPUs) up to float64 rounding, and the float32 results (``W``, ``phi_hat``) to within one
unit in the last place of their largest values.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from structpose.errors import ConfigError, FormatError, InputError
from structpose.metrics import mpjpe
from structpose.skeleton import NUM_JOINTS, root_relative

_POSE_DIM = 3 * NUM_JOINTS


@dataclass
class LinKDEConfig:
    """LinKDE hyper-parameters (see the module docstring for the method).

    ``input_features`` / ``output_features``: number of random Fourier features ``d_x`` / ``d_y``.
    ``input_gamma`` / ``output_gamma``: Gaussian kernel widths, ``k(a, b) = exp(-gamma ||a - b||^2)``, on
    standardised image features (unit-free) / on root-relative poses (1/mm^2). ``None``: the median
    heuristic ``gamma = factor / median ||a - b||^2`` with ``input_gamma_factor`` / ``output_gamma_factor``.
    ``ridge``: weight of ``||W||_F^2`` against the MEAN squared feature error (so it does not grow with N).
    ``mode``: ``"kde"`` (LinKDE) or ``"krr"`` (regress the pose itself from ``phi_x``).
    ``preimage``: ``"best"`` (the nearest training pose in ``phi_y`` space) or ``"knn"`` (the mean of the
    ``knn`` nearest). ``median_samples``: rows used by the median heuristic. ``chunk``: rows processed at
    once (memory ~ ``chunk * max(D, d_x, chunk)`` float64 numbers). ``seed``: seeds all randomness.

    The defaults are a priori choices (median heuristic with factor 1, a mild ridge, the mean of the 8
    nearest training poses as pre-image); :func:`select_config` picks the kernel widths and the ridge on
    a VALIDATION split, which is what ``structpose reproduce`` does. Never tune them on the test split.
    """

    input_features: int = 2000
    output_features: int = 2000
    input_gamma: float | None = None
    output_gamma: float | None = None
    input_gamma_factor: float = 1.0
    output_gamma_factor: float = 1.0
    ridge: float = 1e-4
    mode: str = "kde"
    preimage: str = "knn"
    knn: int = 8
    median_samples: int = 1000
    chunk: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("kde", "krr"):
            raise ConfigError(f"LinKDE mode must be 'kde' or 'krr', got {self.mode!r}")
        if self.preimage not in ("best", "knn"):
            raise ConfigError(f"LinKDE preimage must be 'best' or 'knn', got {self.preimage!r}")
        counts = {"input_features": 1, "output_features": 1, "knn": 1, "median_samples": 2, "chunk": 1}
        for name, least in counts.items():
            if getattr(self, name) < least:
                raise ConfigError(f"LinKDE {name} must be at least {least}, got {getattr(self, name)}")
        for name in ("input_gamma", "output_gamma", "input_gamma_factor", "output_gamma_factor", "ridge"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"LinKDE {name} must be positive, got {value}")


def median_gamma(rows: torch.Tensor) -> float:
    """``1 / median ||a - b||^2`` over all pairs of distinct rows of ``rows`` (n, D)."""
    rows = rows.double()
    sq = torch.cdist(rows, rows).square()
    pairs = sq[torch.triu_indices(len(rows), len(rows), offset=1).unbind()]
    median = float(pairs.median())
    if not median > 0:
        raise InputError("the median squared distance is zero: too many identical rows for the median heuristic")
    return 1.0 / median


def _gamma(given: float | None, factor: float, rows: torch.Tensor) -> float:
    """``given``, or else ``factor`` times the median heuristic on ``rows`` (n, D)."""
    return given if given is not None else factor * median_gamma(rows)


class RandomFourierFeatures:
    """``phi(v) = sqrt(2 / d) cos(v Omega + b)``: ``phi(a) . phi(b)`` estimates ``exp(-gamma ||a - b||^2)``.

    ``omega``: (D, d) frequencies, drawn ``N(0, 2 gamma)``; ``phase``: (d,) offsets, drawn ``U[0, 2 pi)``;
    both held as float32 (the stored parameters), and as their exact float64 copies for float64 features.
    """

    def __init__(self, omega: torch.Tensor, phase: torch.Tensor):
        if omega.ndim != 2 or phase.shape != (omega.shape[1],):
            raise InputError(f"Fourier features need omega (D, d) and phase (d,), got {omega.shape}, {phase.shape}")
        self.omega = omega.float()
        self.phase = phase.float()
        self._float64 = (self.omega.double(), self.phase.double())

    @classmethod
    def sample(cls, dim: int, features: int, gamma: float, gen: torch.Generator) -> RandomFourierFeatures:
        """Features for a Gaussian kernel of width ``gamma`` on ``dim``-dimensional inputs."""
        omega = torch.randn(dim, features, generator=gen, dtype=torch.float64) * math.sqrt(2 * gamma)
        phase = torch.rand(features, generator=gen, dtype=torch.float64) * (2 * math.pi)
        return cls(omega, phase)

    def __call__(self, v: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(N, D) -> (N, d), computed and returned in ``dtype`` (float32 or float64)."""
        omega, phase = self._float64 if dtype == torch.float64 else (self.omega.to(dtype), self.phase.to(dtype))
        return torch.cos(v.to(dtype) @ omega + phase) * math.sqrt(2 / omega.shape[1])


class LinKDE:
    """Kernel dependency estimation with random Fourier features (see the module docstring).

    ``fit(features (N, D), poses (N, 17, 3) mm)`` then ``predict(features (M, D)) -> (M, 17, 3)``
    root-relative poses in mm. :meth:`state_dict` / :meth:`load_state_dict` use plain numpy arrays.
    """

    def __init__(self, config: LinKDEConfig | None = None):
        self.config = config or LinKDEConfig()
        self.feature_mean: torch.Tensor | None = None  # (D,)
        self.feature_std: torch.Tensor | None = None  # (D,)
        self.input_gamma: float | None = None  # the kernel widths in use (resolved by fit)
        self.output_gamma: float | None = None  # kde only
        self.phi_x: RandomFourierFeatures | None = None
        self.phi_y: RandomFourierFeatures | None = None  # kde only
        self.weight: torch.Tensor | None = None  # (d_x, d_y) kde, (d_x, 51) krr
        self.bias: torch.Tensor | None = None  # (d_y,) kde, (51,) krr
        self.train_poses: torch.Tensor | None = None  # (N, 51) mm, root-relative: pre-image candidates

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, features: np.ndarray, poses: np.ndarray) -> LinKDE:
        """Fit to ``features`` (N, D) and ``poses`` (N, 17, 3) in mm (made root-relative here)."""
        cfg = self.config
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        poses = np.asarray(poses, dtype=np.float32)
        if x.ndim != 2 or poses.shape != (len(x), NUM_JOINTS, 3):
            raise InputError(f"LinKDE.fit needs features (N, D) and poses (N, 17, 3), got {x.shape}, {poses.shape}")
        y = torch.from_numpy(root_relative(poses).reshape(len(x), _POSE_DIM))
        gen = torch.Generator().manual_seed(cfg.seed)
        subset = torch.randperm(len(x), generator=gen)[: cfg.median_samples]

        self.feature_mean, self.feature_std = self._standardiser(x)
        self.input_gamma = _gamma(cfg.input_gamma, cfg.input_gamma_factor, self._standardise(x[subset]))
        self.phi_x = RandomFourierFeatures.sample(x.shape[1], cfg.input_features, self.input_gamma, gen)
        if cfg.mode == "kde":
            self.output_gamma = _gamma(cfg.output_gamma, cfg.output_gamma_factor, y[subset])
            self.phi_y = RandomFourierFeatures.sample(_POSE_DIM, cfg.output_features, self.output_gamma, gen)
            self.train_poses = y
        self.weight, self.bias = self._ridge(x, y)
        return self

    def _standardiser(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension mean and std (D,) of ``x`` (N, D), accumulated in float64; a zero std becomes 1."""
        total = torch.zeros(x.shape[1], dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        for start in range(0, len(x), self.config.chunk):
            block = x[start : start + self.config.chunk].double()
            total += block.sum(0)
            total_sq += block.square().sum(0)
        mean = total / len(x)
        std = (total_sq / len(x) - mean.square()).clamp(min=0).sqrt()
        return mean.float(), torch.where(std > 1e-8 * (1 + mean.abs()), std, 1.0).float()

    def _standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feature_mean) / self.feature_std

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """``phi_x`` (n, d_x) float64 of raw image features ``x`` (n, D)."""
        return self.phi_x(self._standardise(x), torch.float64)

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        """The float64 regression targets of root-relative flat poses (n, 51) mm: ``phi_y`` (kde) or the pose."""
        return self.phi_y(y, torch.float64) if self.config.mode == "kde" else y.double()

    def _ridge(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve the centred ridge normal equations from ``phi_x(x)`` to the targets of ``y`` (chunked,
        float64); returns the float32 weight (d_x, d_t) and bias (d_t,)."""
        d_x = self.phi_x.omega.shape[1]
        d_t = self.phi_y.omega.shape[1] if self.config.mode == "kde" else _POSE_DIM
        sum_x = torch.zeros(d_x, dtype=torch.float64)
        sum_t = torch.zeros(d_t, dtype=torch.float64)
        xx = torch.zeros(d_x, d_x, dtype=torch.float64)
        xt = torch.zeros(d_x, d_t, dtype=torch.float64)
        for start in range(0, len(x), self.config.chunk):
            stop = start + self.config.chunk
            fx, ft = self._features(x[start:stop]), self._targets(y[start:stop])
            sum_x += fx.sum(0)
            sum_t += ft.sum(0)
            xx += fx.T @ fx
            xt += fx.T @ ft
        n = len(x)
        mean_x, mean_t = sum_x / n, sum_t / n
        cov_xx = xx / n - torch.outer(mean_x, mean_x)
        cov_xt = xt / n - torch.outer(mean_x, mean_t)
        cov_xx.diagonal().add_(self.config.ridge)
        weight = torch.cholesky_solve(cov_xt, torch.linalg.cholesky(cov_xx))
        return weight.float(), (mean_t - mean_x @ weight).float()

    # ------------------------------------------------------------------------------------------ predict
    def predict_features(self, features: np.ndarray) -> torch.Tensor:
        """Regressed targets of ``features`` (M, D), float32 (computed in float64): ``phi_hat`` (M, d_y) (kde)
        or flat poses (M, 51) mm (krr)."""
        self._check_fitted()
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != len(self.feature_mean):
            raise InputError(f"LinKDE expects features (M, {len(self.feature_mean)}), got {tuple(x.shape)}")
        weight, bias = self.weight.double(), self.bias.double()
        out = [
            (self._features(x[start : start + self.config.chunk]) @ weight + bias).float()
            for start in range(0, len(x), self.config.chunk)
        ]
        return torch.cat(out) if out else torch.zeros(0, len(self.bias))

    def _check_fitted(self) -> None:
        if self.weight is None:
            raise RuntimeError("this LinKDE has no parameters: fit (or load_state_dict) first")

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Root-relative poses (M, 17, 3) float32 in mm for image features (M, D)."""
        out = self.predict_features(features)
        if self.config.mode == "kde":
            out = self.preimage(out)
        return out.reshape(-1, NUM_JOINTS, 3).numpy()

    def preimage(self, phi_hat: torch.Tensor) -> torch.Tensor:
        """Flat poses (M, 51) mm for output features ``phi_hat`` (M, d_y): the nearest training pose
        (``"best"``) or the mean of the ``knn`` nearest (``"knn"``) in ``phi_y`` space."""
        k = 1 if self.config.preimage == "best" else min(self.config.knn, len(self.train_poses))
        index = self.nearest_candidates(phi_hat, k)
        return self.train_poses[index].mean(1)

    def nearest_candidates(self, phi_hat: torch.Tensor, k: int) -> torch.Tensor:
        """Indices (M, k) of the training poses whose ``phi_y`` is nearest to each row of ``phi_hat``
        (M, d_y), nearest first. ``||phi_hat||^2`` is the same for all candidates of a row: it is left out.
        The scores are float64, so the ranking does not depend on ``chunk`` beyond float64 rounding."""
        chunk = self.config.chunk
        phi_hat = phi_hat.double()
        best_score = torch.full((len(phi_hat), k), math.inf, dtype=torch.float64)
        best_index = torch.zeros((len(phi_hat), k), dtype=torch.long)
        for start in range(0, len(self.train_poses), chunk):
            cand = self.phi_y(self.train_poses[start : start + chunk], torch.float64)  # (c, d_y)
            cand_sq = cand.square().sum(1)
            for q in range(0, len(phi_hat), chunk):
                score = torch.addmm(cand_sq, phi_hat[q : q + chunk], cand.T, alpha=-2)  # (m, c)
                top = score.topk(min(k, len(cand)), dim=1, largest=False)
                score = torch.cat([best_score[q : q + chunk], top.values], 1)
                index = torch.cat([best_index[q : q + chunk], top.indices + start], 1)
                top = score.topk(k, dim=1, largest=False)
                best_score[q : q + chunk] = top.values
                best_index[q : q + chunk] = index.gather(1, top.indices)
        return best_index

    # ------------------------------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted model as float32 numpy arrays (e.g. for ``safetensors.numpy.save_file``).

        ``feature_mean``, ``feature_std`` (D,); ``input_gamma`` (1,), ``input_omega`` (D, d_x),
        ``input_phase`` (d_x,); ``weight`` (d_x, d_y or 51), ``bias`` (d_y or 51,); for ``mode="kde"`` also
        ``output_gamma`` (1,), ``output_omega`` (51, d_y), ``output_phase`` (d_y,) and the pre-image
        candidates ``train_poses`` (N, 51) mm. The gammas are informative: the omegas already hold them.
        """
        self._check_fitted()
        tensors = {
            "feature_mean": self.feature_mean,
            "feature_std": self.feature_std,
            "input_gamma": torch.tensor([self.input_gamma]),
            "input_omega": self.phi_x.omega,
            "input_phase": self.phi_x.phase,
            "weight": self.weight,
            "bias": self.bias,
        }
        if self.config.mode == "kde":
            tensors |= {
                "output_gamma": torch.tensor([self.output_gamma]),
                "output_omega": self.phi_y.omega,
                "output_phase": self.phi_y.phase,
                "train_poses": self.train_poses,
            }
        return {name: t.float().numpy().copy() for name, t in tensors.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> LinKDE:
        """Restore a model saved by :meth:`state_dict` into this one (same ``config``); returns ``self``."""
        cfg = self.config
        t = {name: torch.from_numpy(np.array(a, dtype=np.float32)) for name, a in state.items()}
        self._check_state(t)
        self.feature_mean, self.feature_std = t["feature_mean"], t["feature_std"]
        self.input_gamma = float(t["input_gamma"][0])
        self.phi_x = RandomFourierFeatures(t["input_omega"], t["input_phase"])
        self.weight, self.bias = t["weight"], t["bias"]
        if cfg.mode == "kde":
            self.output_gamma = float(t["output_gamma"][0])
            self.phi_y = RandomFourierFeatures(t["output_omega"], t["output_phase"])
            self.train_poses = t["train_poses"]
        return self

    def _check_state(self, t: dict[str, torch.Tensor]) -> None:
        """Raise :class:`FormatError` unless ``t`` has the keys and shapes :meth:`state_dict` gives ``config``."""
        cfg = self.config
        expected = {"feature_mean", "feature_std", "input_gamma", "input_omega", "input_phase", "weight", "bias"}
        if cfg.mode == "kde":
            expected |= {"output_gamma", "output_omega", "output_phase", "train_poses"}
        if set(t) != expected:
            raise FormatError(f"LinKDE state keys {sorted(t)} != {sorted(expected)} for mode {cfg.mode!r}")
        d_t = cfg.output_features if cfg.mode == "kde" else _POSE_DIM
        shapes = {
            "input_omega": (len(t["feature_mean"]), cfg.input_features),
            "weight": (cfg.input_features, d_t),
            "bias": (d_t,),
        }
        if cfg.mode == "kde":
            shapes |= {
                "output_omega": (_POSE_DIM, cfg.output_features),
                "train_poses": (len(t["train_poses"]), _POSE_DIM),
            }
        for name, shape in shapes.items():
            if tuple(t[name].shape) != shape:
                raise FormatError(f"LinKDE state {name!r} has shape {tuple(t[name].shape)}, expected {shape}")


#: The grid :func:`select_config` searches by default: kernel-width factors (image side, pose side) and ridge.
SELECTION_GRID: dict[str, tuple[float, ...]] = {
    "input_gamma_factor": (0.25, 1.0),
    "output_gamma_factor": (1.0, 2.0, 4.0),
    "ridge": (1e-4, 1e-5),
}


def select_config(
    train_features: np.ndarray,
    train_poses: np.ndarray,
    val_features: np.ndarray,
    val_poses: np.ndarray,
    base: LinKDEConfig | None = None,
    grid: dict[str, tuple[float, ...]] | None = None,
    max_train: int = 6000,
    seed: int = 0,
) -> tuple[LinKDEConfig, list[tuple[dict[str, float], float]]]:
    """Pick the grid point with the lowest validation MPJPE (mm). Features (N, D), poses (N, 17, 3) mm.

    Each candidate is fitted on at most ``max_train`` seeded random training samples (the choice, not the
    final fit, is what this costs); returns the best config and every ``(setting, val MPJPE)`` tried.
    """
    base = base or LinKDEConfig(seed=seed)
    grid = grid or SELECTION_GRID
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(len(train_features), size=min(max_train, len(train_features)), replace=False))
    x_sub, y_sub = train_features[sub], train_poses[sub]
    truth = root_relative(np.asarray(val_poses, dtype=np.float32))
    keys = list(grid)
    scores: list[tuple[dict[str, float], float]] = []
    for values in itertools.product(*(grid[k] for k in keys)):
        setting = dict(zip(keys, values, strict=True))
        pred = LinKDE(replace(base, **setting)).fit(x_sub, y_sub).predict(val_features)
        scores.append((setting, float(mpjpe(pred, truth))))
    best = min(scores, key=lambda item: item[1])[0]
    return replace(base, **best), scores
