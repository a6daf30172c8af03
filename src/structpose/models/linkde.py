"""LinKDE: the kernel dependency estimation baseline of Ionescu et al., "Human3.6M" (TPAMI 2014), two variants.

Kernel dependency estimation (Cortes et al., ICML 2005) regresses, with kernel ridge regression, from a kernel
feature map of the input to a kernel feature map of the output, then maps the predicted output feature back to
a pose (the pre-image). LinKDE makes both feature maps explicit and finite with random Fourier features
(Rahimi & Recht, NIPS 2007), so training is linear in the number of samples N. :data:`VARIANTS` holds the two
configurations the pipeline runs:

* ``linkde`` = :data:`IONESCU`: exponentiated chi-squared kernel on L1-normalised HOG histograms, Gaussian
  kernel on poses, pre-image by optimisation, as in Ionescu et al. (what was confirmed: below);
* ``linkde_knn`` = :data:`KNN` (the :class:`LinKDEConfig` defaults, structpose's LinKDE before v0.3):
  Gaussian kernel on standardised HOG, pre-image = mean of the 8 nearest training poses.

1. Input map ``phi_x`` (N, d_x), ``input_kernel="gaussian"``: features ``x`` (N, D) are standardised per
   dimension with the training mean and std, then ``phi_x(x) = sqrt(2 / d_x) cos(x Omega_x + b_x)`` with
   ``Omega_x ~ N(0, 2 gamma_x)`` (D, d_x) and ``b_x ~ U[0, 2 pi)``, so ``phi_x(a) . phi_x(b) ~=
   exp(-gamma_x ||a - b||^2)``.
2. ``input_kernel="exp_chi2"``: ``k(a, b) = exp(-gamma_x chi2(a, b))``, ``chi2(a, b) = sum_i (a_i - b_i)^2 /
   (a_i + b_i)`` (0/0 = 0), on histograms: each row is divided by its sum (the features must be
   non-negative, :class:`~structpose.errors.InputError` otherwise; an all-zero row stays zero), so passing
   :func:`~structpose.models.features.hog` or :func:`~structpose.models.features.hog_histograms` gives the
   same model. With the additive chi2 kernel ``K(a, b) = sum_i 2 a_i b_i / (a_i + b_i)``, exactly
   ``chi2(a, b) = K(a, a) + K(b, b) - 2 K(a, b)`` and ``K(a, a) = sum_i a_i``, so for L1-normalised rows
   ``chi2 = 2 - 2 K`` (in [0, 2]). An explicit map ``psi`` with ``psi(a) . psi(b) ~= K(a, b)`` therefore gives
   ``||psi(a) - psi(b)||^2 ~= chi2(a, b)``, and Gaussian random features on ``psi`` (step 1 without the
   standardiser, ``Omega_x`` of shape (D (2 n + 1), d_x)) give ``exp(-gamma_x chi2)``. ``psi`` is Vedaldi &
   Zisserman's map (:class:`Chi2FeatureMap`: ``2 n + 1`` numbers per bin, ``n = chi2_steps``, sampling period
   ``L = chi2_period``), chosen over the random Fourier features of Li, Ionescu & Sminchisescu (DAGM 2010)
   because those approximate a different kernel, the multiplicative "skewed" chi2 ``prod_i 2 sqrt((a_i + c)
   (b_i + c)) / (a_i + b_i + 2 c)``, not ``exp(-gamma chi2)``; and the authors' own code builds its
   ``exp_chi2`` features exactly this way, an explicit chi2 map followed by Gaussian random features (below).
   The default ``n = 1`` (3 numbers per bin) with ``L = 1.0`` was measured, not taken from VZ or scikit-learn
   (whose L = 0.5 for 3 numbers per bin fits the kernel value and under-estimates chi2 distances by ~24%):
   on L1-normalised HOG of synthetic 56 and 64 px crops the ratio ``||psi(a) - psi(b)||^2 / chi2(a, b)`` over
   pairs is 1.002 +- 0.003 (range 0.990-1.012; n = 2 with L = 0.75: 0.998 +- 0.001; n = 3, L = 0.6:
   0.997 +- 0.0005); on uniform and sparse Dirichlet(0.3) histograms of 500 bins 0.97-1.06 (n = 1),
   0.99-1.01 (n = 2). That error is well below the Monte Carlo error of the Gaussian features (std ~
   1/sqrt(2 d_x) = 0.016 per kernel value at d_x = 2000), so more steps buy little at 1.67x (n = 2) the cost
   and the stored size of ``Omega_x`` (D (2 n + 1) x d_x float32: 146 MB at n = 1 for 56 px crops, D = 6084).
3. Output map: poses are made root-relative, flattened to 51 numbers in mm and mapped alike to ``phi_y(y)``
   (N, d_y) for a Gaussian kernel of width ``gamma_y`` (1/mm^2).
4. Ridge regression ``phi_y ~= phi_x W + c`` minimising ``mean_i ||phi_y(y_i) - phi_x(x_i) W - c||^2 +
   ridge ||W||_F^2``: the (d_x, d_x) normal equations on centred features are accumulated over chunks of
   ``chunk`` samples, so N = 100k fits in memory, and solved by Cholesky. Since ``||phi_x||^2 ~= 1``, this is
   kernel ridge regression with the regulariser ``N * ridge`` in the usual ``sum_i loss_i + lambda ||f||^2``
   form. In kde mode the same factorisation also solves the regression of the pose itself (``krr_weight``,
   ``krr_bias``; the start of the optimised pre-image, as the original code's ``W_init``).
5. Pre-image. The candidates are the training poses, ranked by ``||phi_y(y_i) - phi_hat||^2`` (computed as
   ``||phi_y(y_i)||^2 - 2 phi_y(y_i) . phi_hat``, dropping the common ``||phi_hat||^2``: a matrix product
   over chunks of candidates and queries with a running top-k; the candidates' ``phi_y`` are recomputed
   per chunk rather than stored, N x d_y floats). ``preimage="best"`` returns the best candidate (so a
   training pose's own ``phi_y`` gives that pose back exactly); ``preimage="knn"`` returns the plain mean of
   the ``knn`` best, which averages out the error of any single neighbour (5.6 mm better than ``"best"`` on
   held-out data with the Gaussian input kernel). With that kernel two alternatives were tried and dropped:
   weighting the k best by ``softmax(-||phi_y(y_i) - phi_hat||^2 / tau)`` is within +-0.8 mm of the plain
   mean; refining by gradient descent on ``||phi_y(y) - phi_hat||^2`` (100 Adam steps) converged to the same
   point from the best candidate or the 8-mean, 2 mm WORSE than the 8-mean (126.2 against 124.2 mm).
   ``preimage="optimise"`` (Ionescu) minimises ``f(y) = ||phi_y(y) - phi_hat||^2`` over the 48 non-root
   coordinates (the root stays at 0) by batched L-BFGS (:func:`lbfgs_preimage`: memory 8, backtracking
   Armijo line search, analytic gradient checked against autograd in the tests, at most ``preimage_steps``
   = 50 iterations, a problem stops when an accepted step lowers ``f`` by less than 1e-9 of it), from the
   ``preimage_starts`` best candidates and the pose regression's prediction; the start that ends with the
   lowest ``f`` wins, so the result is never worse in ``f`` than the best candidate. The optimum is a free
   51-D point that need not keep bone lengths.

Kernel widths: ``None`` selects ``gamma = factor / median ||a - b||^2`` over the pairs of a random subset of
``median_samples`` training rows (standardised features, ``psi`` of the histograms, or poses in mm), a scaled
median heuristic; for exp_chi2 the median is of ``||psi(a) - psi(b)||^2`` (the distance the random features
see, ~= chi2), so ``gamma_x times median = factor`` holds for the kernel actually used.

What the original LinKDE does, as confirmed (the paper's text itself was not available to read): from the
Human3.6M code release (``Release-v1.1/H36MBL``: ``H36MBLKde.m``, ``H36MBasicConfig.m``,
``H36MHoGFeature.m``, and ``LinearKDERegressor_Data2.m``, read in a public copy) and the authors' ``randfeat``
library (Li & Ionescu; ``InitExplicitKernel.m``, ``rf_init.m``, ``rf_sample.m``, ``rf_featurize.m``):

* "the KDE method of Cortes by a linear approximation based on random fourier features"; input kernel
  ``exp_chi2`` with parameter 1.7 and 15000 features, output kernel ``rbf`` with parameter 1e-6 on
  root-relative 3-D joint positions and 4000 features, features divided by ``sqrt(Napp)`` (our
  ``sqrt(2 / d)`` scaling);
* ``exp_chi2`` features = an explicit chi2 map (there: the Chebyshev map of Li, Lebanon & Sminchisescu,
  CVPR 2012, 5 numbers per bin; Vedaldi-Zisserman fixed-interval sampling is the library's other option),
  then ``sqrt(2) cos(F Omega + 2 pi beta)`` with ``Omega ~ sqrt(param) N(0, 1)``, i.e. ``exp(-param / 2
  ||F(a) - F(b)||^2)``;
* the input: a background-masked pyramid HOG (9 orientations over 180 degrees, 3 pyramid levels),
  L1-normalised per descriptor; here the project's dense HOG of the crop, L1-normalised likewise;
* the regression: ``(H + lambda I)^-1 Phi_x^T Phi_y`` on sums (not means) with the bias as a regularised
  constant feature, ``lambda = 1e-4`` (mean-form ridge ``1e-4 / N``); the pose regression ``W_init`` with
  ``lambda = 0.5``;
* the pre-image: minFunc quasi-Newton (L-BFGS), at most 50 iterations, tolerances 1e-8, started from the
  ``W_init`` pose prediction, on ``1 - 2 phi_y(y) . Wx`` with an analytic gradient.

Not confirmed or different here: the TPAMI text (hyper-parameters, how they were chosen) and Li et al.'s
DAGM paper were not read (the skewed chi2 kernel is known from scikit-learn's ``SkewedChi2Sampler``
documentation, the VZ map's formula from scikit-learn's ``AdditiveChi2Sampler`` source, the same as
:class:`Chi2FeatureMap`); the Chebyshev chi2 map is not reproduced (VZ instead: a documented closed form with
no parameters fitted to the data); the kernel widths and the ridge are selected on validation around the
median heuristic (:func:`select_config`, :data:`EXP_CHI2_GRID`) rather than the original fixed values, which
belong to other features, joints and N; 2000 + 2000 random features instead of 15000 + 4000 (CPU cost); the
objective keeps ``||phi_y(y)||^2`` (for the exact kernel it is 1, for ``d_y`` random features it varies by
``O(1 / sqrt(d_y))``: the full norm is what the candidates are ranked by, too); the starts add the best
training candidates to the regression's pose, whose ridge is the same ``ridge``; the bias is not regularised.

Cost, measured on 2 shared and busy CPU cores (load ~4) with synthetic non-negative histograms of D = 6084
(56 px crops), 18000 training and 2000 validation samples: for :data:`IONESCU` with the 27-point
:data:`EXP_CHI2_GRID`, :func:`select_config` 159 s, the final fit 34 s, ``predict`` 19 s per 5000 queries
(~4 ms each: the input projection, the candidate search and the L-BFGS, which converges in ~9 iterations);
for :data:`KNN` with :data:`SELECTION_GRID` (12 points) 46 s, 17 s and 11 s. The pre-image optimisation runs
on one thread (:func:`_one_thread`): split over two busy cores, its many small operations were 10-30x slower.

``mode="krr"`` is the plain kernel ridge regression baseline for comparison: the same ``phi_x`` and ridge
regression, but of the flattened root-relative pose itself (mm), with no output kernel and no pre-image.

All randomness (the Fourier frequencies and phases, the median subset) comes from ``seed``: a fit is
deterministic. Computations run in torch on the CPU. The parameters are float32 (what :meth:`LinKDE.state_dict`
stores); the features of a chunk, the feature statistics, the normal equations, the ranking scores and the
pre-image optimisation are float64. A float32 matrix product's rounding depends on its shape (the kernel picks
its blocking by the number of rows), so float32 features would make a fit depend on ``chunk`` at the 1e-7
level, amplified by the conditioning of the normal equations; in float64 the fit and the pre-image ranking
agree across chunk sizes (and thread counts, CPUs) up to float64 rounding, and the float32 results (``W``,
``phi_hat``) to within one unit in the last place of their largest values.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from structpose.errors import ConfigError, FormatError, InputError
from structpose.metrics import mpjpe
from structpose.skeleton import NUM_JOINTS, root_relative

_POSE_DIM = 3 * NUM_JOINTS
_INPUT_KERNELS = ("gaussian", "exp_chi2")
_PREIMAGES = ("best", "knn", "optimise")
#: Default sampling period L of the chi2 map per ``chi2_steps`` n: the L whose ``||psi(a) - psi(b)||^2``
#: is closest to the exact chi2 distance on L1-normalised histograms (measured, see the module docstring).
_CHI2_PERIODS = {1: 1.0, 2: 0.75, 3: 0.6}
_LBFGS_MEMORY = 8  # curvature pairs kept per problem
_ARMIJO = 1e-4  # sufficient-decrease constant of the backtracking line search
_BACKTRACKS = 10  # step halvings tried before a line search gives up (a factor 1e-3)
_TOLERANCE = 1e-9  # relative decrease of the objective below which a pre-image problem has converged
_PREIMAGE_BLOCK = 512  # pre-image problems optimised at once: (512, d_y) float64 temporaries


@dataclass
class LinKDEConfig:
    """LinKDE hyper-parameters (see the module docstring for the method and :data:`VARIANTS`).

    ``input_kernel``: ``"gaussian"`` (``exp(-gamma ||a - b||^2)`` on standardised features) or ``"exp_chi2"``
    (``exp(-gamma chi2(a, b))`` on the L1-normalised, non-negative features, Ionescu et al.).
    ``chi2_steps`` / ``chi2_period``: the ``n`` and ``L`` of the explicit chi2 map (``2 n + 1`` numbers per
    histogram bin; ``None``: the measured default for ``n``), exp_chi2 only.
    ``input_features`` / ``output_features``: number of random Fourier features ``d_x`` / ``d_y``.
    ``input_gamma`` / ``output_gamma``: kernel widths, on image features (unit-free) / on root-relative poses
    (1/mm^2). ``None``: the median heuristic ``gamma = factor / median ||a - b||^2`` with
    ``input_gamma_factor`` / ``output_gamma_factor`` (for exp_chi2 the distance is ``||psi(a) - psi(b)||^2``,
    the chi2 distance as the random features see it).
    ``ridge``: weight of ``||W||_F^2`` against the MEAN squared feature error (so it does not grow with N).
    ``mode``: ``"kde"`` (LinKDE) or ``"krr"`` (regress the pose itself from ``phi_x``).
    ``preimage``: ``"best"`` (the nearest training pose in ``phi_y`` space), ``"knn"`` (the mean of the ``knn``
    nearest) or ``"optimise"`` (L-BFGS on ``||phi_y(y) - phi_hat||^2`` from ``preimage_starts`` nearest
    training poses and, with ``preimage_krr_start``, the kernel ridge regression pose; ``preimage_steps``
    iterations; the start that ends lowest wins). ``median_samples``: rows used by the median heuristic.
    ``chunk``: rows processed at once (memory ~ ``chunk * max(D', d_x, chunk)`` float64 numbers, ``D' = D``
    or ``D (2 n + 1)``). ``seed``: seeds all randomness.

    The defaults are the Gaussian-kernel, 8-NN variant (``linkde-knn``), so configs saved before the
    exp_chi2 kernel existed load unchanged; :data:`IONESCU` is the variant of the paper. :func:`select_config`
    picks the kernel widths and the ridge on a VALIDATION split. Never tune them on the test split.
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
    input_kernel: str = "gaussian"
    chi2_steps: int = 1
    chi2_period: float | None = None
    preimage_starts: int = 1
    preimage_krr_start: bool = True
    preimage_steps: int = 50

    def __post_init__(self) -> None:
        choices = {"mode": ("kde", "krr"), "preimage": _PREIMAGES, "input_kernel": _INPUT_KERNELS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"LinKDE {name} must be one of {allowed}, got {getattr(self, name)!r}")
        counts = {"input_features": 1, "output_features": 1, "knn": 1, "median_samples": 2, "chunk": 1,
                  "chi2_steps": 1, "preimage_starts": 0, "preimage_steps": 0}  # fmt: skip
        for name, least in counts.items():
            if getattr(self, name) < least:
                raise ConfigError(f"LinKDE {name} must be at least {least}, got {getattr(self, name)}")
        names = ("input_gamma", "output_gamma", "input_gamma_factor", "output_gamma_factor", "ridge", "chi2_period")
        for name in names:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"LinKDE {name} must be positive, got {value}")
        if self.chi2_period is None and self.chi2_steps not in _CHI2_PERIODS:
            raise ConfigError(f"LinKDE chi2_steps={self.chi2_steps} has no default chi2_period: give one")
        if self.preimage_starts == 0 and not self.preimage_krr_start:
            raise ConfigError("LinKDE preimage_starts=0 needs preimage_krr_start: the optimisation has no start")

    @property
    def period(self) -> float:
        """The chi2 map's sampling period ``L`` in use, rounded to float32 (as :meth:`LinKDE.state_dict` stores it)."""
        period = self.chi2_period if self.chi2_period is not None else _CHI2_PERIODS[self.chi2_steps]
        return float(np.float32(period))


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


# ------------------------------------------------------------------------------------- feature maps
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

    @property
    def scale(self) -> float:
        """``sqrt(2 / d)``."""
        return math.sqrt(2 / self.omega.shape[1])

    def __call__(self, v: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(N, D) -> (N, d), computed and returned in ``dtype`` (float32 or float64)."""
        omega, phase = self._float64 if dtype == torch.float64 else (self.omega.to(dtype), self.phase.to(dtype))
        return torch.cos(v.to(dtype) @ omega + phase) * self.scale

    def from_projection(self, projection: torch.Tensor) -> torch.Tensor:
        """``phi`` (N, d) float64 from a float64 projection ``v Omega`` (N, d) computed elsewhere."""
        return torch.cos(projection + self._float64[1]) * self.scale


class Chi2FeatureMap:
    """Vedaldi & Zisserman's explicit map for the additive chi2 kernel ``K(a, b) = sum_i 2 a_i b_i / (a_i + b_i)``.

    Per histogram bin ``x >= 0`` it gives ``2 n + 1`` numbers, ``sqrt(x L)`` and, for ``j = 1..n``,
    ``sqrt(2 x L sech(pi j L)) cos(j L log x)`` and ``... sin(j L log x)`` (``0`` for ``x = 0``): a sampling
    with period ``L`` of the spectrum ``sech(pi w)`` of ``2 sqrt(xy) / (x + y) = sech(log(x / y) / 2)``, so
    ``psi(a) . psi(b) ~= K(a, b)`` and ``||psi(a) - psi(b)||^2 ~= K(a, a) + K(b, b) - 2 K(a, b) = chi2(a, b)``.
    The numbers are laid out block by block, ``[sqrt(x L) for all D bins, cos_1 for all bins, sin_1, ...]``.
    """

    def __init__(self, steps: int, period: float):
        if steps < 1 or not period > 0:
            raise InputError(f"the chi2 map needs steps >= 1 and period > 0, got {steps}, {period}")
        self.steps, self.period = int(steps), float(period)

    @property
    def per_bin(self) -> int:
        """Numbers per histogram bin, ``2 n + 1``."""
        return 2 * self.steps + 1

    def blocks(self, hist: torch.Tensor) -> Iterator[torch.Tensor]:
        """The ``2 n + 1`` blocks (N, D) float64 of ``psi`` for non-negative ``hist`` (N, D)."""
        hist = hist.double()
        root = torch.sqrt(hist * self.period)
        log = torch.log(hist.clamp(min=torch.finfo(torch.float64).tiny))  # finite; times root = 0 where hist = 0
        yield root
        for j in range(1, self.steps + 1):
            amplitude = root * math.sqrt(2 / math.cosh(math.pi * j * self.period))
            yield amplitude * torch.cos(j * self.period * log)
            yield amplitude * torch.sin(j * self.period * log)

    def __call__(self, hist: torch.Tensor) -> torch.Tensor:
        """``psi(hist)`` (N, D (2 n + 1)) float64."""
        return torch.cat(list(self.blocks(hist)), 1)

    def project(self, hist: torch.Tensor, omega: torch.Tensor) -> torch.Tensor:
        """``psi(hist) @ omega`` (N, d) float64 for ``omega`` (D (2 n + 1), d) float64, one block at a time
        (never holds all of ``psi``)."""
        dim = hist.shape[1]
        out = None
        for b, block in enumerate(self.blocks(hist)):
            part = omega[b * dim : (b + 1) * dim]
            out = block @ part if out is None else out.addmm_(block, part)
        return out


def chi2_distance(a: Tensor, b: Tensor) -> Tensor:
    """The exact chi-squared distances ``chi2(a_i, b_j) = sum_k (a_ik - b_jk)^2 / (a_ik + b_jk)`` (0/0 = 0).

    Args:
        a: (n, D) non-negative rows (histograms).
        b: (m, D) non-negative rows.

    Returns:
        (n, m) float64. Holds an (n, m, D) array: for tests and small sets.
    """
    a, b = a.double()[:, None], b.double()[None]
    total = a + b
    return torch.where(total > 0, (a - b).square() / total.clamp(min=torch.finfo(torch.float64).tiny), 0.0).sum(-1)


def _l1_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of non-negative ``x`` (n, D) divided by their float64 sums (all-zero rows stay zero), float64;
    :func:`structpose.models.features.l1_histograms` in torch."""
    x = x.double()
    total = x.sum(1, keepdim=True)
    return torch.where(total > 0, x / total.clamp(min=torch.finfo(torch.float64).tiny), 0.0)


def _check_histograms(x: torch.Tensor) -> None:
    """Raise :class:`InputError` unless every entry of ``x`` is non-negative (and not NaN)."""
    bad = ~(x >= 0)
    if bad.any():
        row, col = (int(i) for i in bad.nonzero()[0])
        raise InputError(
            f"LinKDE input_kernel='exp_chi2' needs non-negative histograms (e.g. HOG): {int(bad.sum())} "
            f"negative or NaN feature entries, the first {float(x[row, col])} at row {row}, column {col}"
        )


# ------------------------------------------------------------------------------------------ pre-image
class PoseObjective:
    """``f(y) = ||phi_y(y) - phi_hat||^2`` of flat root-relative poses and its gradient, batched.

    ``target`` (P, d_y) float64 holds one ``phi_hat`` per problem. The root joint (the first 3 of the 51
    numbers) is 0 in every training pose and stays 0: the objective is a function of the other 48, and
    ``phi_y(y) = s cos(y Omega + b)`` gives ``grad f = -2 s (sin(y Omega + b) * (phi_y(y) - phi_hat)) Omega^T``.
    """

    def __init__(self, phi_y: RandomFourierFeatures, target: torch.Tensor):
        omega, self.phase = phi_y._float64
        self.omega = omega[3:]  # (48, d_y)
        self.scale = phi_y.scale
        self.target = target.double()

    def __call__(self, free: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective (p,) and gradient (p, 48) at the non-root coordinates ``free`` (p, 48) mm of problems ``rows``."""
        arg = torch.addmm(self.phase, free, self.omega)
        resid = torch.cos(arg).mul_(self.scale).sub_(self.target[rows])
        grad = (torch.sin(arg).mul_(resid)) @ self.omega.T
        return resid.square().sum(1), grad.mul_(-2 * self.scale)


def preimage_objective(phi_y: RandomFourierFeatures, poses: Tensor, phi_hat: Tensor) -> Tensor:
    """The pre-image objective ``||phi_y(y) - phi_hat||^2`` of poses, row by row.

    Args:
        phi_y: the output feature map.
        poses: (P, 51) flat root-relative poses, mm (the root, the first 3 numbers, is taken as 0).
        phi_hat: (P, d_y) regressed output features.

    Returns:
        (P,) float64.
    """
    return PoseObjective(phi_y, phi_hat)(poses.double()[:, 3:], torch.arange(len(poses)))[0]


def _two_loop(grad: Tensor, s: list[Tensor], y: list[Tensor], rho: Tensor, h0: Tensor) -> Tensor:
    """L-BFGS two-loop recursion, batched: ``H grad`` (p, n) from the pairs ``s[i]``, ``y[i]`` (p, n) each,
    oldest first, ``rho = 1 / (s . y)`` (p, m) (0 marks an empty slot, which then has no effect) and
    ``H0 = h0`` (p,)."""
    q = grad.clone()
    alphas = []
    for i in reversed(range(len(s))):
        alpha = rho[:, i] * (s[i] * q).sum(1)
        q -= alpha[:, None] * y[i]
        alphas.append(alpha)
    r = q * h0[:, None]
    for i, alpha in zip(range(len(s)), reversed(alphas), strict=True):
        beta = rho[:, i] * (y[i] * r).sum(1)
        r += s[i] * (alpha - beta)[:, None]
    return r


def _line_search(fun: PoseObjective, rows: torch.Tensor, v: torch.Tensor, f: torch.Tensor, g: torch.Tensor,
                 direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Backtracking (Armijo) line search along ``direction`` for each problem: step 1, halved until
    ``f(v + t d) <= f(v) + c t grad . d``. Returns the new ``v``, ``f``, ``g`` (the old ones where no step
    was accepted: never an increase) and a (p,) bool of the accepted problems."""
    slope = (g * direction).sum(1)
    v_new, f_new, g_new = v.clone(), f.clone(), g.clone()
    step = torch.ones(len(v), dtype=v.dtype)
    todo = torch.arange(len(v))
    accepted = torch.zeros(len(v), dtype=torch.bool)
    for _ in range(_BACKTRACKS):
        trial = v[todo] + step[todo, None] * direction[todo]
        f_trial, g_trial = fun(trial, rows[todo])
        ok = f_trial <= f[todo] + _ARMIJO * step[todo] * slope[todo].clamp(max=0)  # never an increase
        done = todo[ok]
        v_new[done], f_new[done], g_new[done] = trial[ok], f_trial[ok], g_trial[ok]
        accepted[done] = True
        todo = todo[~ok]
        if not len(todo):
            break
        step[todo] *= 0.5
    return v_new, f_new, g_new, accepted


def lbfgs_preimage(fun: PoseObjective, start: Tensor, steps: int, h0: float) -> tuple[Tensor, Tensor]:
    """Minimise ``fun`` independently for each of P problems by batched L-BFGS.

    Each iteration takes a two-loop direction (memory :data:`_LBFGS_MEMORY`, initial inverse Hessian ``h0``,
    then ``s.y / y.y`` of the latest pair) and a backtracking Armijo line search; a curvature pair is kept
    only if ``s.y > 0``. A problem whose line search fails drops its pairs (steepest descent next) and is
    finished when that fails too, or when a step lowers its objective by at most :data:`_TOLERANCE` of it
    (converged). Only steps that lower the objective are taken, so no result is worse than its start. Runs
    on one thread (:func:`_one_thread`).

    Args:
        fun: the batched objective and gradient (:class:`PoseObjective`) of the P problems.
        start: (P, 48) starting non-root coordinates, mm.
        steps: at most this many iterations.
        h0: initial inverse Hessian, mm^2 (``1 / (4 gamma_y)`` at a perfect match of the pose kernel).

    Returns:
        The end points (P, 48) mm and their objective (P,), float64.
    """
    with _one_thread():
        return _lbfgs(fun, start, steps, h0)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread inside (the process-wide setting is restored on exit).

    The pre-image optimisation is hundreds of small operations per iteration; split over threads, each waits
    for all of them, which on a shared machine costs a scheduler time slice when one is descheduled:
    measured on 2 busy cores, 2000 problems took 5-22 s on 2 threads and 0.6-0.8 s on 1. One thread also
    makes its rounding independent of the thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _lbfgs(fun: PoseObjective, start: Tensor, steps: int, h0: float) -> tuple[Tensor, Tensor]:
    """:func:`lbfgs_preimage`'s loop."""
    v = start.double().clone()
    rows = torch.arange(len(v))
    f, g = fun(v, rows)
    p, n, m = len(v), v.shape[1], _LBFGS_MEMORY
    s_hist = [torch.zeros(p, n, dtype=v.dtype) for _ in range(m)]
    y_hist = [torch.zeros(p, n, dtype=v.dtype) for _ in range(m)]
    rho, scale = torch.zeros(p, m, dtype=v.dtype), torch.full((p,), h0, dtype=v.dtype)
    failed = torch.zeros(p, dtype=torch.bool)
    live = rows
    for _ in range(steps):
        if not len(live):
            break
        direction = -_two_loop(g[live], [h[live] for h in s_hist], [h[live] for h in y_hist], rho[live], scale[live])
        v_new, f_new, g_new, ok = _line_search(fun, live, v[live], f[live], g[live], direction)
        s, y = v_new - v[live], g_new - g[live]
        sy = (s * y).sum(1)
        keep = ok & (sy > 0)
        idx = live[keep]
        for hist, new in ((s_hist, s[keep]), (y_hist, y[keep])):
            for i in range(m - 1):
                hist[i][idx] = hist[i + 1][idx]
            hist[m - 1][idx] = new
        rho[idx] = torch.cat([rho[idx, 1:], 1 / sy[keep, None]], 1)
        scale[idx] = sy[keep] / y[keep].square().sum(1)
        stalled = ok & (f[live] - f_new <= _TOLERANCE * f[live].abs())
        v[live], f[live], g[live] = v_new, f_new, g_new
        lost = live[~ok]
        finished = torch.cat([lost[failed[lost]], live[stalled]])
        failed[live] = ~ok
        rho[lost], scale[lost] = 0.0, h0
        live = live[~torch.isin(live, finished)]
    return v, f


# ------------------------------------------------------------------------------------------- the model
@dataclass
class _Moments:
    """Sums of one fit's normal equations (float64): ``n`` rows, ``phi_x`` sums (d_x,) and Gram (d_x, d_x),
    target sums (d_t,) and cross products (d_x, d_t), and in kde mode the same for the pose (51 columns)."""

    n: int
    sum_x: torch.Tensor
    xx: torch.Tensor
    sum_t: torch.Tensor
    xt: torch.Tensor
    sum_p: torch.Tensor | None = None
    xp: torch.Tensor | None = None


class LinKDE:
    """Kernel dependency estimation with random Fourier features (see the module docstring).

    ``fit(features (N, D), poses (N, 17, 3) mm)`` then ``predict(features (M, D)) -> (M, 17, 3)``
    root-relative poses in mm. :meth:`state_dict` / :meth:`load_state_dict` use plain numpy arrays.
    """

    def __init__(self, config: LinKDEConfig | None = None):
        self.config = config or LinKDEConfig()
        self.feature_mean: torch.Tensor | None = None  # (D,) gaussian only
        self.feature_std: torch.Tensor | None = None  # (D,) gaussian only
        self.chi2_map: Chi2FeatureMap | None = None  # exp_chi2 only
        self.input_gamma: float | None = None  # the kernel widths in use (resolved by fit)
        self.output_gamma: float | None = None  # kde only
        self.phi_x: RandomFourierFeatures | None = None
        self.phi_y: RandomFourierFeatures | None = None  # kde only
        self.weight: torch.Tensor | None = None  # (d_x, d_y) kde, (d_x, 51) krr
        self.bias: torch.Tensor | None = None  # (d_y,) kde, (51,) krr
        self.krr_weight: torch.Tensor | None = None  # (d_x, 51) kde: the pose regression, a pre-image start
        self.krr_bias: torch.Tensor | None = None  # (51,) kde
        self.train_poses: torch.Tensor | None = None  # (N, 51) mm, root-relative: pre-image candidates

    @property
    def input_dim(self) -> int:
        """``D``, the length of the image features this model takes."""
        if self.chi2_map is not None:
            return self.phi_x.omega.shape[0] // self.chi2_map.per_bin
        return len(self.feature_mean)

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, features: np.ndarray, poses: np.ndarray) -> LinKDE:
        """Fit to ``features`` (N, D) and ``poses`` (N, 17, 3) in mm (made root-relative here)."""
        x, y = self._fit_arrays(features, poses)
        gen, subset = self._generator(len(x))
        self._fit_input_map(x, subset, gen)
        self._fit_output_map(y, subset, gen)
        self._solve(self._moments(self._feature_chunks(x), y))
        return self

    def _fit_arrays(self, features: np.ndarray, poses: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (N, D) float32 and flat root-relative poses (N, 51) float32 mm, checked."""
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        poses = np.asarray(poses, dtype=np.float32)
        if x.ndim != 2 or poses.shape != (len(x), NUM_JOINTS, 3):
            raise InputError(f"LinKDE.fit needs features (N, D) and poses (N, 17, 3), got {x.shape}, {poses.shape}")
        if self.config.input_kernel == "exp_chi2":
            _check_histograms(x)
        return x, torch.from_numpy(root_relative(poses).reshape(len(x), _POSE_DIM))

    def _generator(self, n: int) -> tuple[torch.Generator, torch.Tensor]:
        """The seeded generator of a fit and the median heuristic's random subset of ``n`` rows (its first draw)."""
        gen = torch.Generator().manual_seed(self.config.seed)
        return gen, torch.randperm(n, generator=gen)[: self.config.median_samples]

    def _fit_input_map(self, x: torch.Tensor, subset: torch.Tensor, gen: torch.Generator) -> None:
        """The input side: the standardiser or the chi2 map, ``input_gamma`` and ``phi_x`` (drawn from ``gen``)."""
        cfg = self.config
        if cfg.input_kernel == "gaussian":
            self.feature_mean, self.feature_std = self._standardiser(x)
            rows = self._standardise(x[subset])
        else:
            self.chi2_map = Chi2FeatureMap(cfg.chi2_steps, cfg.period)
            rows = self.chi2_map(_l1_rows(x[subset]))
        self.input_gamma = _gamma(cfg.input_gamma, cfg.input_gamma_factor, rows)
        self.phi_x = RandomFourierFeatures.sample(rows.shape[1], cfg.input_features, self.input_gamma, gen)

    def _fit_output_map(self, y: torch.Tensor, subset: torch.Tensor, gen: torch.Generator) -> None:
        """The output side (kde): ``output_gamma``, ``phi_y`` (drawn from ``gen``) and the candidates."""
        cfg = self.config
        if cfg.mode == "kde":
            self.output_gamma = _gamma(cfg.output_gamma, cfg.output_gamma_factor, y[subset])
            self.phi_y = RandomFourierFeatures.sample(_POSE_DIM, cfg.output_features, self.output_gamma, gen)
            self.train_poses = y

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
        if self.chi2_map is None:
            return self.phi_x(self._standardise(x), torch.float64)
        return self.phi_x.from_projection(self.chi2_map.project(_l1_rows(x), self.phi_x._float64[0]))

    def _feature_chunks(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """``phi_x`` of ``x`` (n, D), ``chunk`` rows at a time."""
        return (self._features(x[start : start + self.config.chunk]) for start in range(0, len(x), self.config.chunk))

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        """The float64 regression targets of root-relative flat poses (n, 51) mm: ``phi_y`` (kde) or the pose."""
        return self.phi_y(y, torch.float64) if self.config.mode == "kde" else y.double()

    def _moments(self, fx_chunks: Iterable[torch.Tensor], y: torch.Tensor) -> _Moments:
        """Accumulate the normal equations from ``phi_x`` chunks (as :meth:`_feature_chunks`) and poses ``y``."""
        kde, sums = self.config.mode == "kde", None
        for start, fx in zip(range(0, len(y), self.config.chunk), fx_chunks, strict=True):
            block = y[start : start + self.config.chunk]
            ft = self._targets(block)
            parts = [fx.sum(0), fx.T @ fx, ft.sum(0), fx.T @ ft]
            if kde:
                parts += [block.double().sum(0), fx.T @ block.double()]
            sums = parts if sums is None else [a.add_(b) for a, b in zip(sums, parts, strict=True)]
        return _Moments(len(y), *sums)

    def _solve(self, m: _Moments) -> None:
        """Centred ridge solution (Cholesky, float64) of the moments ``m``; sets the float32 ``weight`` (d_x, d_t)
        and ``bias`` (d_t,), and in kde mode ``krr_weight`` (d_x, 51) and ``krr_bias`` (51,) alike."""
        mean_x = m.sum_x / m.n
        cov_xx = m.xx / m.n - torch.outer(mean_x, mean_x)
        cov_xx.diagonal().add_(self.config.ridge)
        factor = torch.linalg.cholesky(cov_xx)

        def solve(total: torch.Tensor, cross: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mean_t = total / m.n
            weight = torch.cholesky_solve(cross / m.n - torch.outer(mean_x, mean_t), factor)
            return weight.float(), (mean_t - mean_x @ weight).float()

        self.weight, self.bias = solve(m.sum_t, m.xt)
        if m.xp is not None:
            self.krr_weight, self.krr_bias = solve(m.sum_p, m.xp)

    # ------------------------------------------------------------------------------------------ predict
    def predict_features(self, features: np.ndarray) -> torch.Tensor:
        """Regressed targets of ``features`` (M, D), float32 (computed in float64): ``phi_hat`` (M, d_y) (kde)
        or flat poses (M, 51) mm (krr)."""
        return self._regress(self._feature_chunks(self._predict_array(features)))[0]

    def _predict_array(self, features: np.ndarray) -> torch.Tensor:
        self._check_fitted()
        return self._input_array(features)

    def _input_array(self, features: np.ndarray) -> torch.Tensor:
        """``features`` (M, D) as float32, checked against the fitted input side."""
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise InputError(f"LinKDE expects features (M, {self.input_dim}), got {tuple(x.shape)}")
        if self.chi2_map is not None:
            _check_histograms(x)
        return x

    def _regress(self, fx_chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``phi_x W + b`` (M, d_t) float32 from ``phi_x`` chunks, and the KRR poses (M, 51) float32 when the
        optimised pre-image starts from them (else ``None``)."""
        with_krr = self._uses_krr_start()
        out, krr = [], []
        weight, bias = self.weight.double(), self.bias.double()
        for fx in fx_chunks:
            out.append((fx @ weight + bias).float())
            if with_krr:
                krr.append((fx @ self.krr_weight.double() + self.krr_bias.double()).float())
        if not out:
            return torch.zeros(0, len(self.bias)), (torch.zeros(0, _POSE_DIM) if with_krr else None)
        return torch.cat(out), (torch.cat(krr) if with_krr else None)

    def _uses_krr_start(self) -> bool:
        cfg = self.config
        return cfg.mode == "kde" and cfg.preimage == "optimise" and cfg.preimage_krr_start

    def _check_fitted(self) -> None:
        if self.weight is None:
            raise RuntimeError("this LinKDE has no parameters: fit (or load_state_dict) first")

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Root-relative poses (M, 17, 3) float32 in mm for image features (M, D)."""
        out, krr = self._regress(self._feature_chunks(self._predict_array(features)))
        return self._poses(out, krr).reshape(-1, NUM_JOINTS, 3).numpy()

    def _poses(self, out: torch.Tensor, krr: torch.Tensor | None) -> torch.Tensor:
        """Flat poses (M, 51) mm from regressed targets ``out`` (and KRR poses ``krr``, the optimiser's start)."""
        return self.preimage(out, krr) if self.config.mode == "kde" else out

    def preimage(self, phi_hat: torch.Tensor, krr_poses: torch.Tensor | None = None) -> torch.Tensor:
        """Flat poses (M, 51) float32 mm for output features ``phi_hat`` (M, d_y): the nearest training pose
        (``"best"``), the mean of the ``knn`` nearest (``"knn"``) in ``phi_y`` space, or the optimised
        pre-image (``"optimise"``, :meth:`optimise_preimage`; ``krr_poses`` (M, 51) mm, if given, is one more
        start)."""
        if self.config.preimage == "optimise":
            return self.optimise_preimage(phi_hat, krr_poses)[0]
        k = 1 if self.config.preimage == "best" else min(self.config.knn, len(self.train_poses))
        index = self.nearest_candidates(phi_hat, k)
        return self.train_poses[index].mean(1)

    def optimise_preimage(self, phi_hat: Tensor, krr_poses: Tensor | None = None,
                          steps: int | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """The optimised pre-image: per query, the pose minimising ``||phi_y(y) - phi_hat||^2`` from its starts.

        The starts are the ``preimage_starts`` training poses nearest to ``phi_hat`` in ``phi_y`` space and the
        row of ``krr_poses`` if given; each runs L-BFGS (:func:`lbfgs_preimage`, root fixed at 0, initial
        inverse Hessian ``1 / (4 output_gamma)``, the exact-kernel curvature at a perfect match); the start
        that ends lowest wins. At most ``min(chunk, 512)`` problems (queries times starts) run at once.

        Args:
            phi_hat: (M, d_y) regressed output features.
            krr_poses: (M, 51) flat poses, mm, of the pose regression (one more start each), or ``None``.
            steps: L-BFGS iterations at most (default ``preimage_steps``; 0: the best start as it is).

        Returns:
            Flat root-relative poses (M, 51) float32, mm, and their objective (M,) float64.
        """
        cfg = self.config
        steps = cfg.preimage_steps if steps is None else steps
        k = min(cfg.preimage_starts, len(self.train_poses))
        phi_hat = phi_hat.double()
        starts = [self.train_poses[self.nearest_candidates(phi_hat, k)]] if k else []
        if krr_poses is not None:
            starts.append(krr_poses[:, None])
        start = torch.cat(starts, 1).double() if starts else torch.zeros(0, 1, _POSE_DIM, dtype=torch.float64)
        per_block = max(1, min(cfg.chunk, _PREIMAGE_BLOCK) // start.shape[1])
        parts = [self._optimise_block(phi_hat[q : q + per_block], start[q : q + per_block], steps)
                 for q in range(0, len(phi_hat), per_block)]  # fmt: skip
        if not parts:
            return torch.zeros(0, _POSE_DIM), torch.zeros(0, dtype=torch.float64)
        return torch.cat([p for p, _ in parts]), torch.cat([v for _, v in parts])

    def _optimise_block(self, target: Tensor, start: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        """Optimise the starts ``start`` (m, s, 51) of ``target`` (m, d_y); the best end of each row (m, 51)
        float32 and its objective (m,) float64."""
        m, s = start.shape[:2]
        fun = PoseObjective(self.phi_y, target.repeat_interleave(s, 0))
        h0 = 1 / (4 * float(np.float32(self.output_gamma)))  # as stored: a loaded model takes the same steps
        end, value = lbfgs_preimage(fun, start.reshape(m * s, _POSE_DIM)[:, 3:], steps, h0)
        pick = torch.arange(m) * s + value.reshape(m, s).argmin(1)
        return torch.cat([torch.zeros(m, 3, dtype=end.dtype), end[pick]], 1).float(), value[pick]

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

        The input side records the kernel: ``feature_mean``, ``feature_std`` (D,) for ``"gaussian"``, or
        ``chi2_map`` (2,) = ``[n, L]`` for ``"exp_chi2"``. Then ``input_gamma`` (1,), ``input_omega`` (D or
        D (2 n + 1), d_x), ``input_phase`` (d_x,); ``weight`` (d_x, d_y or 51), ``bias`` (d_y or 51,); for
        ``mode="kde"`` also ``output_gamma`` (1,), ``output_omega`` (51, d_y), ``output_phase`` (d_y,), the
        pre-image candidates ``train_poses`` (N, 51) mm and the pose regression ``krr_weight`` (d_x, 51),
        ``krr_bias`` (51,). The gammas are informative: the omegas already hold them.
        """
        self._check_fitted()
        if self.chi2_map is not None:
            tensors = {"chi2_map": torch.tensor([self.chi2_map.steps, self.chi2_map.period])}
        else:
            tensors = {"feature_mean": self.feature_mean, "feature_std": self.feature_std}
        tensors |= {
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
            if self.krr_weight is not None:
                tensors |= {"krr_weight": self.krr_weight, "krr_bias": self.krr_bias}
        return {name: t.float().numpy().copy() for name, t in tensors.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> LinKDE:
        """Restore a model saved by :meth:`state_dict` into this one (same ``config``); returns ``self``.

        States saved before the pose regression was stored (no ``krr_weight``) load too, except into a config
        whose optimised pre-image starts from it.
        """
        cfg = self.config
        t = {name: torch.from_numpy(np.array(a, dtype=np.float32)) for name, a in state.items()}
        self._check_state(t)
        if cfg.input_kernel == "exp_chi2":
            self.chi2_map = Chi2FeatureMap(int(t["chi2_map"][0]), float(t["chi2_map"][1]))
            self.feature_mean = self.feature_std = None
        else:
            self.feature_mean, self.feature_std, self.chi2_map = t["feature_mean"], t["feature_std"], None
        self.input_gamma = float(t["input_gamma"][0])
        self.phi_x = RandomFourierFeatures(t["input_omega"], t["input_phase"])
        self.weight, self.bias = t["weight"], t["bias"]
        if cfg.mode == "kde":
            self.output_gamma = float(t["output_gamma"][0])
            self.phi_y = RandomFourierFeatures(t["output_omega"], t["output_phase"])
            self.train_poses = t["train_poses"]
            self.krr_weight, self.krr_bias = t.get("krr_weight"), t.get("krr_bias")
        return self

    def _check_state(self, t: dict[str, torch.Tensor]) -> None:
        """Raise :class:`FormatError` unless ``t`` has the keys and shapes :meth:`state_dict` gives ``config``."""
        cfg = self.config
        kernel_keys = {"gaussian": {"feature_mean", "feature_std"}, "exp_chi2": {"chi2_map"}}
        saved = [kind for kind, keys in kernel_keys.items() if keys <= set(t)]
        if saved and cfg.input_kernel not in saved:
            raise FormatError(f"LinKDE state is of input_kernel {saved[0]!r}, the config says {cfg.input_kernel!r}")
        expected = kernel_keys[cfg.input_kernel] | {"input_gamma", "input_omega", "input_phase", "weight", "bias"}
        optional = set()
        if cfg.mode == "kde":
            expected |= {"output_gamma", "output_omega", "output_phase", "train_poses"}
            optional = {"krr_weight", "krr_bias"}
            if self._uses_krr_start():
                expected, optional = expected | optional, set()
        if not expected <= set(t) <= expected | optional or len(optional & set(t)) == 1:
            raise FormatError(
                f"LinKDE state keys {sorted(t)} != {sorted(expected)} (optional {sorted(optional)}) for mode "
                f"{cfg.mode!r}, input_kernel {cfg.input_kernel!r}, preimage {cfg.preimage!r}"
            )
        self._check_shapes(t)

    def _check_shapes(self, t: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        if cfg.input_kernel == "exp_chi2":
            chi2, wanted = t["chi2_map"].tolist(), [cfg.chi2_steps, cfg.period]
            if chi2 != wanted:
                raise FormatError(f"LinKDE state 'chi2_map' [n, L] = {chi2}, the config says {wanted}")
            steps = cfg.chi2_steps
            rows = len(t["input_omega"]) // (2 * steps + 1) * (2 * steps + 1)
        else:
            rows = len(t["feature_mean"])
        d_t = cfg.output_features if cfg.mode == "kde" else _POSE_DIM
        shapes = {"input_omega": (rows, cfg.input_features), "weight": (cfg.input_features, d_t), "bias": (d_t,)}
        if cfg.mode == "kde":
            shapes |= {
                "output_omega": (_POSE_DIM, cfg.output_features),
                "train_poses": (len(t["train_poses"]), _POSE_DIM),
            }
            if "krr_weight" in t:
                shapes |= {"krr_weight": (cfg.input_features, _POSE_DIM), "krr_bias": (_POSE_DIM,)}
        for name, shape in shapes.items():
            if tuple(t[name].shape) != shape:
                raise FormatError(f"LinKDE state {name!r} has shape {tuple(t[name].shape)}, expected {shape}")


# ------------------------------------------------------------------------------------------ variants
#: LinKDE as in Ionescu et al. (TPAMI 2014) as far as this project can follow it (module docstring):
#: exponentiated chi2 kernel on the L1-normalised HOG, Gaussian kernel on the poses, optimised pre-image.
IONESCU = LinKDEConfig(input_kernel="exp_chi2", chi2_steps=1, preimage="optimise", preimage_starts=1,
                       preimage_krr_start=True, preimage_steps=50)  # fmt: skip
#: The Gaussian-kernel variant with the 8-nearest-neighbour pre-image (structpose's LinKDE before v0.3).
KNN = LinKDEConfig(input_kernel="gaussian", preimage="knn", knn=8)
#: method key -> the base configuration of that variant (:func:`select_config` picks widths and ridge)
VARIANTS: dict[str, LinKDEConfig] = {"linkde": IONESCU, "linkde_knn": KNN}

#: The grid :func:`select_config` searches for the Gaussian kernel: kernel-width factors (image side, pose
#: side) and ridge.
SELECTION_GRID: dict[str, tuple[float, ...]] = {
    "input_gamma_factor": (0.25, 1.0),
    "output_gamma_factor": (1.0, 2.0, 4.0),
    "ridge": (1e-4, 1e-5),
}
#: The grid :func:`select_config` searches for the exp_chi2 kernel (see the module docstring for its cost).
EXP_CHI2_GRID: dict[str, tuple[float, ...]] = {
    "input_gamma_factor": (0.5, 1.0, 2.0),
    "output_gamma_factor": (0.5, 1.0, 2.0),
    "ridge": (1e-4, 1e-5, 1e-6),
}


def selection_grid(base: LinKDEConfig) -> dict[str, tuple[float, ...]]:
    """The default grid of :func:`select_config` for ``base``: by its input kernel."""
    return EXP_CHI2_GRID if base.input_kernel == "exp_chi2" else SELECTION_GRID


# ----------------------------------------------------------------------------------------- selection
#: Config fields that change only the output side, the ridge or the pre-image, nested in that order by
#: :func:`select_config`; any other field of a grid changes the input side.
_OUTPUT_KEYS = ("output_gamma", "output_gamma_factor", "output_features")
_RIDGE_KEYS = ("ridge",)
_PREIMAGE_KEYS = ("preimage", "knn", "preimage_starts", "preimage_krr_start", "preimage_steps")


def select_config(
    train_features: np.ndarray,
    train_poses: np.ndarray,
    val_features: np.ndarray,
    val_poses: np.ndarray,
    base: LinKDEConfig | None = None,
    grid: dict[str, tuple] | None = None,
    max_train: int = 6000,
    seed: int = 0,
) -> tuple[LinKDEConfig, list[tuple[dict, float]]]:
    """Pick the grid point with the lowest validation MPJPE (mm).

    Each candidate is fitted on at most ``max_train`` seeded random training samples (the choice, not the
    final fit, is what this costs) and predicts ``val_features``. The grid is searched nested: the input
    side (``phi_x`` of the training subset and of the validation set) once per setting of the input fields,
    the output side and normal equations once per output setting within it, one solve per ridge, one
    pre-image per pre-image setting (:data:`_OUTPUT_KEYS`); every score is that of
    ``LinKDE(replace(base, **setting)).fit(subset).predict(val)``, the same computations in the same order.

    Args:
        train_features: (N, D) training image features.
        train_poses: (N, 17, 3) training poses, mm.
        val_features: (M, D) validation image features (never the test split).
        val_poses: (M, 17, 3) validation poses, mm.
        base: the config the grid varies (default ``LinKDEConfig(seed=seed)``).
        grid: field -> values (default :func:`selection_grid` of ``base``).
        max_train: training samples each candidate is fitted on, at most.
        seed: draws that subset.

    Returns:
        The best config, and every ``(setting, validation MPJPE in mm)`` in ``itertools.product`` order of
        ``grid``.
    """
    base = base or LinKDEConfig(seed=seed)
    grid = grid or selection_grid(base)
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(len(train_features), size=min(max_train, len(train_features)), replace=False))
    truth = root_relative(np.asarray(val_poses, dtype=np.float32))
    levels = _levels(list(grid))
    found: dict[tuple, float] = {}
    for setting, pred in _grid_predictions(base, grid, levels, train_features[sub], train_poses[sub], val_features):
        found[tuple(setting[k] for k in grid)] = float(mpjpe(pred.reshape(-1, NUM_JOINTS, 3).numpy(), truth))
    scores = [(dict(zip(grid, values, strict=True)), found[values]) for values in itertools.product(*grid.values())]
    best = min(scores, key=lambda item: item[1])[0]
    return replace(base, **best), scores


def _levels(keys: list[str]) -> list[list[str]]:
    """Grid keys split into [input, output, ridge, pre-image] fields (see :data:`_OUTPUT_KEYS`)."""
    later = (_OUTPUT_KEYS, _RIDGE_KEYS, _PREIMAGE_KEYS)
    return [[k for k in keys if not any(k in group for group in later)]] + [[k for k in keys if k in g] for g in later]


def _settings(grid: dict[str, tuple], keys: list[str]) -> Iterator[dict]:
    return (dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys)))


def _grid_predictions(base: LinKDEConfig, grid: dict[str, tuple], levels: list[list[str]], x_sub: np.ndarray,
                      y_sub: np.ndarray, x_val: np.ndarray) -> Iterator[tuple[dict, torch.Tensor]]:  # fmt: skip
    """``(setting, flat validation poses)`` for every grid point, computed nested by ``levels``."""
    input_keys, output_keys, ridge_keys, preimage_keys = levels
    for s_in in _settings(grid, input_keys):
        model = LinKDE(replace(base, **s_in))
        x, y = model._fit_arrays(x_sub, y_sub)
        gen, subset = model._generator(len(x))
        model._fit_input_map(x, subset, gen)
        after_input = gen.get_state()
        fx = list(model._feature_chunks(x))
        fv = list(model._feature_chunks(model._input_array(x_val)))
        for s_out in _settings(grid, output_keys):
            model.config = replace(base, **s_in, **s_out)
            model._fit_output_map(y, subset, gen.set_state(after_input))
            moments = model._moments(fx, y)
            for s_ridge in _settings(grid, ridge_keys):
                solved = copy.copy(model)
                solved.config = replace(base, **s_in, **s_out, **s_ridge)
                solved._solve(moments)
                for s_pre in _settings(grid, preimage_keys):
                    fitted = copy.copy(solved)
                    fitted.config = replace(base, **s_in, **s_out, **s_ridge, **s_pre)
                    yield s_in | s_out | s_ridge | s_pre, fitted._poses(*fitted._regress(fv))
