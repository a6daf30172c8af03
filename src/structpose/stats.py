"""Paired statistics for comparing two methods A and B on one test set, over several training seeds.

Two sources of uncertainty, two intervals, both PAIRED (A and B are always compared on the same seed and
the same test frames):

* :func:`paired_over_seeds` — training randomness, the test set held fixed: the per-seed differences
  ``d_s = A_s - B_s`` (or ratios ``r_s = A_s / B_s``) of a scalar metric (e.g. the mean-over-actions MPJPE
  in mm), their mean and the Student-t interval ``mean ± t_{(1+level)/2, n-1} * sd / sqrt(n)``. With one
  seed the interval is undefined (NaN) and the difference is "unresolved (one seed)".
* :func:`bootstrap_paired` — test-set sampling, the seeds held fixed: a percentile bootstrap that resamples
  test SEQUENCES (clusters of correlated frames) with replacement, the same resample for A, B and every
  seed; inside a replicate the statistic of each seed is computed and the seeds' statistics are averaged.

A difference is *resolved* when its interval excludes the null value (0 for a difference, 1 for a ratio);
:func:`describe` writes the one sentence a report carries. The t quantile (:func:`t_quantile`) is computed
here (regularised incomplete beta by continued fraction, inverted by bisection): no scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from structpose.errors import InputError
from structpose.metrics import per_action

Kind = Literal["difference", "ratio"]
_KINDS = ("difference", "ratio")


# --------------------------------------------------------------------------------------- Student t quantile
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-16
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)`` for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _t_upper_tail(t: float, df: float) -> float:
    """``P(T > t)`` for t >= 0, T Student-t with ``df`` degrees of freedom."""
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of the Student t-distribution with ``df`` degrees of freedom.

    Solves ``P(T > t) = 1 - p`` by bisection on the exact tail (regularised incomplete beta); accurate to
    about 1e-12 relative. E.g. ``t_quantile(0.975, 4) = 2.776``, ``t_quantile(0.975, 2) = 4.303``.

    Args:
        p: probability, 0 < p < 1.
        df: degrees of freedom, > 0 (a positive real works too).

    Returns:
        t such that ``P(T <= t) = p``; negative for p < 0.5.
    """
    if not (0.0 < p < 1.0):
        raise InputError(f"p must lie strictly between 0 and 1, got {p}")
    if not (math.isfinite(df) and df > 0):
        raise InputError(f"df must be a positive number, got {df}")
    if p < 0.5:
        return -_t_upper_quantile(p, float(df))
    return _t_upper_quantile(1.0 - p, float(df))


@functools.lru_cache(maxsize=256)
def _t_upper_quantile(q: float, df: float) -> float:
    """The t > 0 with ``P(T > t) = q`` for 0 < q <= 0.5, by bisection (cached: the CI of every comparison asks)."""
    if q >= 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while _t_upper_tail(hi, df) > q:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):  # ~45 halvings reach the tolerance; the cap only guards against a stuck loop
        if hi - lo <= 1e-13 * hi:
            break
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _t_upper_tail(mid, df) > q else (lo, mid)
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------------------- shared checks
def _null(kind: str) -> float:
    return 1.0 if kind == "ratio" else 0.0


def _check_kind(kind: str) -> None:
    if kind not in _KINDS:
        raise InputError(f"kind must be 'difference' or 'ratio', got {kind!r}")


def _check_level(level: float) -> None:
    if not (0.0 < level < 1.0):
        raise InputError(f"level must lie strictly between 0 and 1, got {level}")


def _check_finite(name: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        raise InputError(f"{name} holds non-finite values")


def _excludes(low: float, high: float, null: float) -> bool:
    """Whether [low, high] lies strictly on one side of ``null`` (False for a NaN interval)."""
    return bool(low > null or high < null)


# --------------------------------------------------------------------------------------- across seeds
@dataclass(frozen=True)
class PairedSeeds:
    """Paired comparison over training seeds (:func:`paired_over_seeds`).

    Attributes:
        per_seed: the per-seed differences ``A_s - B_s`` (metric unit, e.g. mm) or ratios ``A_s / B_s``.
        mean: their mean.
        ci_low, ci_high: the Student-t interval over seeds; NaN with one seed.
        n: the number of seeds.
        kind: ``"difference"`` or ``"ratio"``.
        level: the confidence level of the interval (0.95).
    """

    per_seed: tuple[float, ...]
    mean: float
    ci_low: float
    ci_high: float
    n: int
    kind: Kind
    level: float = 0.95

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0 (difference) or 1 (ratio); always False with one seed."""
        return _excludes(self.ci_low, self.ci_high, _null(self.kind))


def paired_over_seeds(
    a: Sequence[float], b: Sequence[float], kind: Kind = "difference", level: float = 0.95
) -> PairedSeeds:
    """Mean and Student-t interval of the per-seed differences (or ratios) of A's and B's metric.

    Args:
        a: metric of method A per seed, (n,), e.g. the mean-over-actions MPJPE in mm of each seed.
        b: metric of method B for the same seeds in the same order, (n,).
        kind: ``"difference"`` (``d_s = a_s - b_s``, in the metric's unit) or ``"ratio"`` (``r_s = a_s / b_s``,
            needs every ``b_s > 0``).
        level: confidence level; the interval is ``mean ± t_{(1+level)/2, n-1} * sd / sqrt(n)`` with the
            sample standard deviation (ddof 1).

    Returns:
        A :class:`PairedSeeds`; with n = 1 its interval is NaN and it is not resolved.
    """
    _check_kind(kind)
    _check_level(level)
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.ndim != 1 or a_arr.shape != b_arr.shape:
        raise InputError(f"a and b must be two sequences of equal length, got shapes {a_arr.shape} and {b_arr.shape}")
    if a_arr.size < 1:
        raise InputError("at least one seed is needed")
    _check_finite("a", a_arr)
    _check_finite("b", b_arr)
    if kind == "ratio" and np.any(b_arr <= 0):
        raise InputError("a ratio needs every b > 0")
    per_seed = a_arr / b_arr if kind == "ratio" else a_arr - b_arr
    n, mean = per_seed.size, float(per_seed.mean())
    half = t_quantile((1.0 + level) / 2.0, n - 1) * float(per_seed.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return PairedSeeds(tuple(float(v) for v in per_seed), mean, mean - half, mean + half, n, kind, level)


# --------------------------------------------------------------------------------------- within seeds
@dataclass(frozen=True)
class BootstrapCI:
    """Paired cluster-bootstrap interval (:func:`bootstrap_paired`).

    Attributes:
        estimate: the statistic on the test set as given (the seeds' mean difference or ratio).
        ci_low, ci_high: the percentile interval over the bootstrap replicates.
        n_boot: the number of replicates.
        n_clusters: the number of test sequences resampled.
        kind: ``"difference"`` or ``"ratio"``.
        n_seeds: the number of seeds averaged inside each replicate.
        level: the confidence level (0.95).
    """

    estimate: float
    ci_low: float
    ci_high: float
    n_boot: int
    n_clusters: int
    kind: Kind
    n_seeds: int = 1
    level: float = 0.95

    @property
    def resolved(self) -> bool:
        """True when the interval excludes 0 (difference) or 1 (ratio)."""
        return _excludes(self.ci_low, self.ci_high, _null(self.kind))


def mean_over_groups(errors: np.ndarray, groups: np.ndarray) -> float:
    """The mean over groups of the per-group mean error: ``structpose.metrics.per_action(errors, groups)["mean"]``.

    Args:
        errors: per-frame errors (N,), e.g. MPJPE in mm.
        groups: a group (action) label per frame (N,).

    Returns:
        The mean of the per-group means, in the errors' unit.
    """
    return per_action(errors, groups)["mean"]


def _as_seed_rows(name: str, errors: np.ndarray) -> np.ndarray:
    arr = np.asarray(errors, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{name} must be (N,) or (S, N) per-frame errors with S, N >= 1, got shape {arr.shape}")
    _check_finite(name, arr)
    return arr


def _labels(name: str, labels: np.ndarray, n: int) -> np.ndarray:
    """Integer codes 0..K-1 of ``labels`` (N,), in the order of ``np.unique``."""
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise InputError(f"{name} must hold one label per frame, shape ({n},), got {arr.shape}")
    return np.unique(arr, return_inverse=True)[1].reshape(n)


def _check_bootstrap_inputs(a: np.ndarray, b: np.ndarray, kind: str, n_boot: int, level: float) -> None:
    _check_kind(kind)
    _check_level(level)
    if a.shape != b.shape:
        raise InputError(f"errors_a and errors_b must have the same shape, got {a.shape} and {b.shape}")
    if kind == "ratio" and np.any(b <= 0):
        raise InputError("a ratio needs every error of B > 0")
    if not (isinstance(n_boot, int | np.integer) and n_boot >= 1):
        raise InputError(f"n_boot must be a positive integer, got {n_boot!r}")


def _cell_sums(
    a: np.ndarray, b: np.ndarray, cluster: np.ndarray, group: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per (cluster, group) cell: error sums (C, 2 S G) of A's then B's seeds, and frame counts (C, G)."""
    n_cells = shape[0] * shape[1]
    cell = cluster * shape[1] + group  # (N,)
    rows = np.concatenate([a, b])  # (2S, N)
    idx = (np.arange(rows.shape[0])[:, None] * n_cells + cell[None]).ravel()
    sums = np.bincount(idx, weights=rows.ravel(), minlength=rows.shape[0] * n_cells)
    sums = sums.reshape(rows.shape[0], shape[0], shape[1]).transpose(1, 0, 2).reshape(shape[0], -1)
    counts = np.bincount(cell, minlength=n_cells).reshape(shape).astype(np.float64)
    return sums, counts


def _statistic(weights: np.ndarray, sums: np.ndarray, counts: np.ndarray, n_seeds: int, kind: str) -> np.ndarray:
    """The statistic for each row of cluster ``weights`` (R, C): per seed and method the mean over the groups
    present of the per-group weighted mean error; per seed A - B or A / B; then the mean over seeds. (R,)."""
    n_frames = weights @ counts  # (R, G)
    present = n_frames > 0
    means = (weights @ sums).reshape(len(weights), 2 * n_seeds, -1) / np.where(present, n_frames, 1.0)[:, None]
    metric = (means * present[:, None]).sum(-1) / present.sum(-1)[:, None]  # (R, 2S)
    m_a, m_b = metric[:, :n_seeds], metric[:, n_seeds:]
    return (m_a / m_b if kind == "ratio" else m_a - m_b).mean(-1)


def _resample_counts(rng: np.random.Generator, n_boot: int, n_clusters: int) -> np.ndarray:
    """(n_boot, n_clusters) times each cluster is drawn: replicate r draws ``rng.integers(0, C, (n_boot, C))[r]``."""
    draws = rng.integers(0, n_clusters, size=(n_boot, n_clusters))
    offsets = (np.arange(n_boot)[:, None] * n_clusters + draws).ravel()
    return np.bincount(offsets, minlength=n_boot * n_clusters).reshape(n_boot, n_clusters).astype(np.float64)


def bootstrap_paired(
    errors_a: np.ndarray,
    errors_b: np.ndarray,
    clusters: np.ndarray,
    groups: np.ndarray | None = None,
    kind: Kind = "difference",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> BootstrapCI:
    """Paired percentile bootstrap over test sequences of the difference (or ratio) of A's and B's metric.

    Each replicate draws C of the C sequences with replacement (``rng.integers(0, C, (n_boot, C))`` with
    ``rng = np.random.default_rng(seed)``, sequence k being the k-th label of ``np.unique(clusters)``) and
    keeps all frames of each drawn sequence, as many times as it was drawn; the same draw serves A, B and
    every seed. On the resampled frames each seed's metric is, with ``groups``, the mean over groups
    (actions) of the per-group mean error, as ``structpose.metrics.per_action(...)["mean"]`` — a group whose
    sequences were all left out is skipped, the mean runs over the groups present — and without groups the
    mean over frames. Per seed the statistic is ``metric_A - metric_B`` (or ``metric_A / metric_B``); the
    replicate's value is the mean over seeds. Vectorised: per-(sequence, group) error sums and frame counts,
    then one matrix product with the (n_boot, C) draw counts.

    Args:
        errors_a: per-frame errors of A, (S, N) for S seeds or (N,) for one, e.g. MPJPE in mm.
        errors_b: per-frame errors of B, same shape, the same N test frames in the same order.
        clusters: test-sequence label per frame, (N,); at least 2 distinct sequences.
        groups: action label per frame, (N,), or None for the plain mean over frames.
        kind: ``"difference"`` or ``"ratio"`` (needs every error of B > 0).
        n_boot: number of bootstrap replicates.
        level: confidence level of the percentile interval.
        seed: seed of the numpy Generator drawing the resamples.

    Returns:
        A :class:`BootstrapCI`: the estimate on the test set as given and the percentile interval.
    """
    a, b = _as_seed_rows("errors_a", errors_a), _as_seed_rows("errors_b", errors_b)
    _check_bootstrap_inputs(a, b, kind, n_boot, level)
    n_seeds, n = a.shape
    cluster = _labels("clusters", clusters, n)
    group = np.zeros(n, dtype=np.intp) if groups is None else _labels("groups", groups, n)
    shape = (int(cluster.max()) + 1, int(group.max()) + 1)
    if shape[0] < 2:
        raise InputError("the bootstrap needs at least 2 test sequences (clusters)")
    sums, counts = _cell_sums(a, b, cluster, group, shape)
    estimate = float(_statistic(np.ones((1, shape[0])), sums, counts, n_seeds, kind)[0])
    weights = _resample_counts(np.random.default_rng(seed), n_boot, shape[0])
    replicates = _statistic(weights, sums, counts, n_seeds, kind)
    low, high = np.quantile(replicates, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return BootstrapCI(estimate, float(low), float(high), n_boot, shape[0], kind, n_seeds, level)


# --------------------------------------------------------------------------------------- the report sentence
def _num(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals and a true minus sign; no "-0.0"."""
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0.0 else text.replace("-", "\u2212")


def _verdict(resolved: bool, value: float, kind: str, name_a: str) -> str:
    if not resolved:
        return f"not resolved (the CI includes {_null(kind):g})"
    return f"resolved, {name_a} is {'lower' if value < _null(kind) else 'higher'}"


def describe(name_a: str, name_b: str, seeds: PairedSeeds, boot: BootstrapCI | None = None, unit: str = "mm") -> str:
    """One plain sentence for a report: the paired difference (or ratio) of A and B, its CI and verdict.

    E.g. ``"OURS-FT − CNN = −3.1 mm, 95% CI [−5.0, −1.2] over 5 seeds: resolved, OURS-FT is lower."``; with
    ``boot`` a clause follows with the test-sequence bootstrap interval and its own verdict. The verdict over
    seeds is the headline; with one seed it is "unresolved (one seed)" whatever the bootstrap says (the
    bootstrap holds the trained networks fixed). Differences print 1 decimal and ``unit``; ratios 3 decimals,
    no unit.

    Args:
        name_a, name_b: the methods' names, A first (``seeds`` holds A - B or A / B).
        seeds: the result of :func:`paired_over_seeds`.
        boot: the result of :func:`bootstrap_paired` of the same kind, or None.
        unit: the metric's unit, shown with differences.

    Returns:
        The sentence, ending with a full stop.
    """
    if boot is not None and boot.kind != seeds.kind:
        raise InputError(f"seeds is a {seeds.kind} but boot a {boot.kind}")
    ratio = seeds.kind == "ratio"
    digits, suffix = (3, "") if ratio else (1, f" {unit}" if unit else "")
    pct = f"{100 * seeds.level:g}% CI"
    head = f"{name_a} {'/' if ratio else chr(0x2212)} {name_b} = {_num(seeds.mean, digits)}{suffix}"
    if seeds.n == 1:
        text = f"{head} over 1 seed: unresolved (one seed)"
    else:
        ci = f"[{_num(seeds.ci_low, digits)}, {_num(seeds.ci_high, digits)}]"
        text = f"{head}, {pct} {ci} over {seeds.n} seeds: {_verdict(seeds.resolved, seeds.mean, seeds.kind, name_a)}"
    if boot is not None:
        ci = f"[{_num(boot.ci_low, digits)}, {_num(boot.ci_high, digits)}]"
        text += (
            f"; test-sequence bootstrap ({boot.n_boot} resamples of {boot.n_clusters} sequences) "
            f"{100 * boot.level:g}% CI {ci}: {_verdict(boot.resolved, boot.estimate, boot.kind, name_a)}"
        )
    return text + "."
