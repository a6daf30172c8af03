"""Paired statistics: the t quantile, the t interval over seeds, the cluster bootstrap, the report sentence."""

import math

import numpy as np
import pytest

from structpose.errors import InputError
from structpose.metrics import per_action
from structpose.stats import (
    BootstrapCI,
    PairedSeeds,
    bootstrap_paired,
    describe,
    mean_over_groups,
    paired_over_seeds,
    t_quantile,
)

MINUS = "\u2212"


# --------------------------------------------------------------------------------------- t quantile
@pytest.mark.parametrize(
    ("df", "expected"), [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (29, 2.045), (1000, 1.962)]
)
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.9999])
def test_t_quantile_matches_closed_forms_for_one_and_two_degrees_of_freedom(p):
    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-10)  # Cauchy
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-10)


def test_t_quantile_is_symmetric_tends_to_the_normal_and_checks_its_arguments():
    assert t_quantile(0.5, 7) == 0.0
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4), rel=1e-12)
    assert t_quantile(0.95, 30) == pytest.approx(1.697, abs=5e-4)
    assert t_quantile(0.975, 10**7) == pytest.approx(1.959964, abs=1e-5)
    for p, df in [(0.0, 3), (1.0, 3), (-0.1, 3), (0.975, 0), (0.975, -2), (0.975, math.inf)]:
        with pytest.raises(InputError):
            t_quantile(p, df)


# --------------------------------------------------------------------------------------- over seeds
def test_paired_over_seeds_hand_example():
    res = paired_over_seeds([10, 12, 14], [9, 10, 11])  # d = [1, 2, 3]: mean 2, sd 1
    half = t_quantile(0.975, 2) / math.sqrt(3)
    assert res.per_seed == (1.0, 2.0, 3.0) and res.n == 3 and res.kind == "difference"
    assert res.mean == pytest.approx(2.0)
    assert (res.ci_low, res.ci_high) == pytest.approx((2 - half, 2 + half))
    assert res.ci_low == pytest.approx(2 - 4.303 / math.sqrt(3), abs=1e-3)
    assert not res.resolved  # [-0.48, 4.48] includes 0
    assert paired_over_seeds([10, 12, 14], [9.5, 11.2, 12.9]).resolved  # d = [0.5, 0.8, 1.1]


def test_paired_over_seeds_ratio_uses_per_seed_ratios():
    res = paired_over_seeds([45.0, 50.0, 55.0], [50.0, 50.0, 50.0], kind="ratio")
    assert res.per_seed == pytest.approx((0.9, 1.0, 1.1))
    assert res.mean == pytest.approx(1.0)
    assert res.ci_low < 1 < res.ci_high and not res.resolved
    shrunk = paired_over_seeds([45.0, 46.0, 44.0, 45.5, 44.5], [50.0] * 5, kind="ratio")
    assert shrunk.ci_high < 1 and shrunk.resolved


def test_one_seed_leaves_the_interval_undefined():
    res = paired_over_seeds([40.0], [42.0])
    assert res.mean == -2.0 and res.n == 1
    assert math.isnan(res.ci_low) and math.isnan(res.ci_high) and not res.resolved


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        ([1.0, 2.0], [1.0], "difference"),
        ([], [], "difference"),
        ([1.0, math.nan], [1.0, 2.0], "difference"),
        ([1.0, 2.0], [1.0, math.inf], "difference"),
        ([1.0, 2.0], [1.0, 0.0], "ratio"),
        ([1.0, 2.0], [1.0, -3.0], "ratio"),
        ([1.0, 2.0], [1.0, 2.0], "log"),
    ],
)
def test_paired_over_seeds_rejects_bad_inputs(a, b, kind):
    with pytest.raises(InputError):
        paired_over_seeds(a, b, kind=kind)


def test_t_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(123)
    true = -3.0
    b = rng.normal(50.0, 4.0, (2000, 5))
    a = b + true + rng.normal(0.0, 2.0, (2000, 5))  # 2000 experiments of n = 5 seeds
    results = [paired_over_seeds(ai, bi) for ai, bi in zip(a, b, strict=True)]
    covered = [r.ci_low <= true <= r.ci_high for r in results]
    assert 0.93 <= np.mean(covered) <= 0.97  # observed: 0.9535


# --------------------------------------------------------------------------------------- bootstrap
def clustered(rng, n_seq=20, frames=10, n_actions=4, seeds=2):
    """Sequences of ``frames`` frames, each sequence in one action; B's errors (seeds, N) > 0 in mm."""
    clusters = np.repeat(np.arange(n_seq), frames)
    groups = np.array([f"action{c % n_actions}" for c in clusters])
    b = rng.gamma(4.0, 12.0, (seeds, clusters.size)) + 1.0
    return clusters, groups, b


def test_identical_methods_give_exactly_zero_and_one():
    clusters, groups, b = clustered(np.random.default_rng(0))
    diff = bootstrap_paired(b, b.copy(), clusters, groups, n_boot=300)
    assert (diff.estimate, diff.ci_low, diff.ci_high) == (0.0, 0.0, 0.0) and not diff.resolved
    ratio = bootstrap_paired(b, b.copy(), clusters, groups, kind="ratio", n_boot=300)
    assert (ratio.estimate, ratio.ci_low, ratio.ci_high) == (1.0, 1.0, 1.0) and not ratio.resolved


def test_a_constant_shift_gives_a_degenerate_interval():
    clusters, groups, b = clustered(np.random.default_rng(1))
    res = bootstrap_paired(b + 5.0, b, clusters, groups, n_boot=300)
    assert (res.estimate, res.ci_low, res.ci_high) == pytest.approx((5.0, 5.0, 5.0), abs=1e-9)
    assert res.resolved and res.n_clusters == 20 and res.n_seeds == 2 and res.n_boot == 300


def test_estimate_follows_per_action_semantics():
    rng = np.random.default_rng(2)
    clusters, groups, b = clustered(rng, n_seq=12, frames=7, n_actions=3, seeds=3)
    keep = np.ones(clusters.size, bool)
    keep[:5] = False  # unequal action sizes, so the mean over actions differs from the mean over frames
    clusters, groups, b = clusters[keep], groups[keep], b[:, keep]
    a = b + rng.normal(2.0, 3.0, b.shape) * (groups == "action1")
    want = np.mean([per_action(a[s], groups)["mean"] - per_action(b[s], groups)["mean"] for s in range(3)])
    assert bootstrap_paired(a, b, clusters, groups, n_boot=10).estimate == pytest.approx(want, rel=1e-12)
    assert mean_over_groups(a[0], groups) == per_action(a[0], groups)["mean"]
    plain = np.mean(a.mean(1) - b.mean(1))
    assert bootstrap_paired(a, b, clusters, None, n_boot=10).estimate == pytest.approx(plain, rel=1e-12)
    assert abs(plain - want) > 1e-3
    ratio = np.mean([per_action(a[s], groups)["mean"] / per_action(b[s], groups)["mean"] for s in range(3)])
    assert bootstrap_paired(a, b, clusters, groups, kind="ratio", n_boot=10).estimate == pytest.approx(ratio)


def slow_bootstrap(a, b, clusters, groups, kind, n_boot, level, seed):
    """The documented resampling spelt out: draw sequences, gather their frames, per_action per seed."""
    labels = np.unique(clusters)
    draws = np.random.default_rng(seed).integers(0, labels.size, size=(n_boot, labels.size))
    values = []
    for row in draws:
        frames = np.concatenate([np.flatnonzero(clusters == labels[k]) for k in row])
        per_seed = []
        for s in range(a.shape[0]):
            m_a, m_b = (per_action(e[s, frames], groups[frames])["mean"] for e in (a, b))
            per_seed.append(m_a / m_b if kind == "ratio" else m_a - m_b)
        values.append(np.mean(per_seed))
    return np.quantile(values, [(1 - level) / 2, (1 + level) / 2]), draws, labels


@pytest.mark.parametrize("kind", ["difference", "ratio"])
def test_vectorised_bootstrap_matches_an_explicit_loop(kind):
    rng = np.random.default_rng(3)
    clusters = np.array(list("aaabbcccddeeef"))  # 6 sequences of unequal length
    groups = np.array(["walk"] * 5 + ["sit"] * 3 + ["eat"] * 5 + ["pose"])  # "pose" lives in sequence f only
    b = rng.gamma(4.0, 10.0, (2, clusters.size)) + 1.0
    a = b * rng.uniform(0.7, 1.2, b.shape)
    for level in (0.5, 0.9, 0.95):
        want, draws, labels = slow_bootstrap(a, b, clusters, groups, kind, 60, level, seed=7)
        got = bootstrap_paired(a, b, clusters, groups, kind=kind, n_boot=60, level=level, seed=7)
        assert (got.ci_low, got.ci_high) == pytest.approx(tuple(want), rel=1e-12, abs=1e-12)
    lost = ~np.any(draws == np.flatnonzero(labels == "f")[0], axis=1)
    assert lost.any()  # some replicates lost the action "pose": the mean ran over the actions present


def test_resampling_is_by_sequence_not_by_frame():
    clusters = np.repeat(np.arange(20), 50)
    b = np.random.default_rng(4).gamma(4.0, 10.0, clusters.size)
    a = b + 20.0 * (clusters == 0)  # all of the difference sits in one sequence of twenty
    by_sequence = bootstrap_paired(a, b, clusters, n_boot=1000)
    by_frame = bootstrap_paired(a, b, np.arange(clusters.size), n_boot=1000)
    assert by_sequence.estimate == pytest.approx(1.0) and by_frame.estimate == pytest.approx(1.0)
    assert by_sequence.ci_low == 0.0 and not by_sequence.resolved  # sequence 0 left out in >2.5% of draws
    assert by_frame.resolved
    assert by_sequence.ci_high - by_sequence.ci_low > 3 * (by_frame.ci_high - by_frame.ci_low)


def test_the_seed_fixes_the_draws():
    clusters, groups, b = clustered(np.random.default_rng(5))
    a = b + np.random.default_rng(6).normal(1.0, 5.0, b.shape)
    first, again = (bootstrap_paired(a, b, clusters, groups, n_boot=200, seed=11) for _ in range(2))
    other = bootstrap_paired(a, b, clusters, groups, n_boot=200, seed=12)
    assert first == again
    assert other.estimate == first.estimate and (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)
    assert other.ci_low == pytest.approx(first.ci_low, abs=1.0)


def test_bootstrap_covers_a_known_difference_on_clustered_data():
    rng = np.random.default_rng(8)
    true, by_sequence, by_frame = -2.0, [], []
    for _ in range(200):
        clusters, groups, b = clustered(rng, n_seq=30, frames=8, n_actions=3, seeds=2)
        seq_effect = rng.normal(0.0, 3.0, 30)[clusters]  # correlated within a sequence, shared by the seeds
        a = b + true + seq_effect + rng.normal(0.0, 2.0, b.shape)
        for labels, hits in ((clusters, by_sequence), (np.arange(clusters.size), by_frame)):
            res = bootstrap_paired(a, b, labels, groups, n_boot=300, seed=int(rng.integers(1 << 31)))
            hits.append(res.ci_low <= true <= res.ci_high)
    assert 0.88 <= np.mean(by_sequence) <= 0.99  # observed: 0.925
    # frames of a sequence are not independent: a per-frame bootstrap is far too narrow
    assert np.mean(by_frame) < 0.75  # observed: 0.625


@pytest.mark.parametrize(
    "change",
    [
        lambda a, b, c, g: (a, b[:, :-1], c, g),  # shapes differ
        lambda a, b, c, g: (a.ravel(), b.ravel(), c, g),  # clusters no longer one per frame
        lambda a, b, c, g: (a, b, c, g[:-1]),
        lambda a, b, c, g: (np.where(a > 60, np.nan, a), b, c, g),
        lambda a, b, c, g: (a, b, np.zeros_like(c), g),  # one sequence only
        lambda a, b, c, g: (a[:, :0], b[:, :0], c[:0], g[:0]),
        lambda a, b, c, g: (a[None], b[None], c, g),
    ],
)
def test_bootstrap_rejects_bad_inputs(change):
    clusters, groups, b = clustered(np.random.default_rng(9))
    with pytest.raises(InputError):
        bootstrap_paired(*change(b + 1.0, b, clusters, groups), n_boot=10)


def test_bootstrap_rejects_bad_options():
    clusters, groups, b = clustered(np.random.default_rng(10))
    for options in [{"kind": "ratio"}, {"kind": "log"}, {"n_boot": 0}, {"level": 1.0}]:
        b_used = b - 100.0 if options.get("kind") == "ratio" else b  # ratio: non-positive errors of B
        with pytest.raises(InputError):
            bootstrap_paired(b + 1.0, b_used, clusters, groups, **options)


# --------------------------------------------------------------------------------------- the sentence
def seeds_result(mean, low, high, n=5, kind="difference"):
    return PairedSeeds((mean,) * n, mean, low, high, n, kind)


def test_describe_a_resolved_and_an_unresolved_difference():
    text = describe("OURS-FT", "CNN", seeds_result(-3.1, -5.0, -1.2))
    want = "OURS-FT − CNN = −3.1 mm, 95% CI [−5.0, −1.2] over 5 seeds: resolved, OURS-FT is lower."
    assert text == want.replace("−", MINUS)
    text = describe("OURS-FT", "CNN", seeds_result(-0.4, -2.0, 1.1))
    assert text.endswith(f"[{MINUS}2.0, 1.1] over 5 seeds: not resolved (the CI includes 0).")
    assert "resolved, OURS-FT is higher." in describe("OURS-FT", "CNN", seeds_result(2.0, 0.5, 3.5))


def test_describe_a_ratio_and_the_bootstrap_clause():
    resolved = seeds_result(0.934, 0.901, 0.967, kind="ratio")
    boot = BootstrapCI(0.934, 0.92, 1.01, 2000, 100, "ratio", 5)
    text = describe("OURS-FT", "CNN", resolved, boot)
    assert text.startswith("OURS-FT / CNN = 0.934, 95% CI [0.901, 0.967] over 5 seeds: resolved, OURS-FT is lower;")
    assert text.endswith("(2000 resamples of 100 sequences) 95% CI [0.920, 1.010]: not resolved (the CI includes 1).")
    assert "not resolved (the CI includes 1)." in describe("A", "B", seeds_result(1.02, 0.98, 1.06, kind="ratio"))
    assert "over 3 seeds: resolved, A is higher." in describe("A", "B", seeds_result(1.1, 1.05, 1.15, 3, "ratio"))
    with pytest.raises(InputError):
        describe("A", "B", seeds_result(-1.0, -2.0, 0.0), boot)


def test_describe_one_seed_is_unresolved_whatever_the_bootstrap_says():
    one = paired_over_seeds([40.0], [43.2])
    boot = BootstrapCI(-3.2, -4.0, -2.5, 2000, 100, "difference")
    text = describe("OURS-FT", "CNN", one, boot, unit="px")
    assert text.startswith(f"OURS-FT {MINUS} CNN = {MINUS}3.2 px over 1 seed: unresolved (one seed); ")
    assert text.endswith(f"95% CI [{MINUS}4.0, {MINUS}2.5]: resolved, OURS-FT is lower.")


def test_the_sentence_of_a_real_comparison():
    rng = np.random.default_rng(12)
    clusters, groups, b = clustered(rng, n_seq=40, frames=10, n_actions=5, seeds=3)
    a = b - 4.0 + rng.normal(0.0, 3.0, b.shape)
    means = [[mean_over_groups(e[s], groups) for s in range(3)] for e in (a, b)]
    text = describe("OURS-FT", "CNN", paired_over_seeds(*means), bootstrap_paired(a, b, clusters, groups))
    assert text.count("resolved, OURS-FT is lower") == 2 and "not resolved" not in text
