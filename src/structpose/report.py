"""Result tables and figures of a run: the analogues of the paper's Table 1, Table 2 and Figure 2, with the
paired statistics that say whether a difference between two methods is resolved.

Everything here is a pure function of evaluation results (no training): :func:`write_report` takes a typed
:class:`RunSummary`, so a run folder can be re-reported.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from structpose.errors import InputError
from structpose.files import write_text
from structpose.metrics import center_on_root, limb_ratio_errors, mpjpe, per_action, pose_error
from structpose.stats import bootstrap_paired, describe, paired_over_seeds
from structpose.train.methods import METHODS

#: Display names of the methods, in the paper's row order; the reference rows last.
METHOD_NAMES: dict[str, str] = {k: m.label for k, m in METHODS.items()} | {
    "mean_pose": "*Mean training pose* (floor)",
    "oracle": "*Nearest training pose, oracle* (ceiling of retrieval)",
}
#: The paired comparisons every report makes: (A, B), read "A − B"; "LINKDE" is :func:`linkde_key`.
COMPARISONS: tuple[tuple[str, str], ...] = (("ours", "cnn"), ("ours_noft", "cnn"), ("cnn", "LINKDE"),
                                            ("ours", "structnet_avg"), ("ours", "structnet_max"))  # fmt: skip


def linkde_key(methods) -> str:
    """The LinKDE that stands for "LinKDE" in comparisons: Ionescu et al.'s when it ran, else the kNN one."""
    return "linkde" if "linkde" in methods or "linkde_knn" not in methods else "linkde_knn"


def comparisons(methods) -> list[tuple[str, str]]:
    """The pairs of :data:`COMPARISONS` both of whose methods are in ``methods``."""
    pairs = [tuple(linkde_key(methods) if k == "LINKDE" else k for k in pair) for pair in COMPARISONS]
    return [(a, b) for a, b in pairs if a in methods and b in methods]


#: The test sets a report may hold (beside the Table 1 test set), with their section titles.
TEST_SETS: dict[str, str] = {
    "unseen": "Unseen motions (no training frame of their action; not in the Table 1 mean)",
    "occluded": "Occlusion at test time (an occluder over 10–40% of the person box; same test poses)",
    "truncated": "Truncation at test time (the crop cut at an image border, 10–40% of the person box; same poses)",
}
#: The alignments of the tables: MPJPE (protocol #1), N-MPJPE (scale), P-MPJPE (protocol #2).
ALIGNMENTS: dict[str, str] = {"mpjpe": "none", "n_mpjpe": "scale", "p_mpjpe": "procrustes"}


@dataclass
class Evaluation:
    """Errors of one method on one test set (one seed). Units: mm; limb-ratio errors are unitless.

    ``per_action[metric]``: {action: mean error}; ``mean[metric]``: the mean over actions of those (as the
    paper averages), for ``metric`` in :data:`ALIGNMENTS`; ``errors[metric]``: (N,) per-frame errors.
    """

    per_action: dict[str, dict[str, float]]
    mean: dict[str, float]
    limb_ratio: dict[str, float]
    errors: dict[str, np.ndarray] = field(repr=False)


def evaluate(pred: np.ndarray, gt: np.ndarray, actions: np.ndarray) -> Evaluation:
    """Every metric of the tables for predictions ``pred`` and ground truth ``gt`` (N, 17, 3) mm, both
    re-centred on their root first (:data:`structpose.metrics.METRIC_CONVENTIONS`); ``actions`` (N,) str."""
    if not (pred.shape == gt.shape and pred.ndim == 3):
        raise InputError(f"expected predictions and ground truth of one shape (N, J, 3), got {pred.shape}, {gt.shape}")
    pred, gt = center_on_root(np.asarray(pred, np.float64)), center_on_root(np.asarray(gt, np.float64))
    errors = {name: pose_error(pred, gt, alignment=a, reduce=False) for name, a in ALIGNMENTS.items()}
    tables = {name: per_action(e, actions) for name, e in errors.items()}
    return Evaluation(
        per_action={n: {k: v for k, v in t.items() if k != "mean"} for n, t in tables.items()},
        mean={n: float(t["mean"]) for n, t in tables.items()},
        limb_ratio=limb_ratio_errors(pred, gt),
        errors=errors,
    )


def _fmt(x: float | None, spread: float | None = None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f} ± {spread:.{digits}f}" if spread is not None else f"{x:.{digits}f}"


def _ci(low: float, high: float, spec: str = "+.1f") -> str:
    """``[low, high]``, or "– (one seed)" where the interval is undefined (NaN: one seed has no spread)."""
    if math.isnan(low) or math.isnan(high):
        return "– (one seed)"
    return f"[{low:{spec}}, {high:{spec}}]"


def _agg(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std over seeds (std None for a single seed)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def table1(results: dict[str, list[Evaluation]]) -> str:
    """Markdown Table 1 analogue: MPJPE per action (rows: methods), the mean over actions, and N-MPJPE and
    P-MPJPE aggregated the same way (per action, then mean). Values: mean ± std over seeds."""
    actions = sorted({a for evals in results.values() for ev in evals for a in ev.per_action["mpjpe"]})
    head = "| Method | " + " | ".join(actions) + " | **Mean** | N-MPJPE | P-MPJPE |"
    lines = [head, "|" + "---|" * (len(actions) + 4)]
    for key, evals in results.items():
        cells = []
        for a in actions:
            vals = [ev.per_action["mpjpe"][a] for ev in evals if a in ev.per_action["mpjpe"]]
            cells.append(_fmt(*_agg(vals)) if vals else "–")
        mean, n, p = (_fmt(*_agg([ev.mean[m] for ev in evals])) for m in ("mpjpe", "n_mpjpe", "p_mpjpe"))
        lines.append(f"| {METHOD_NAMES.get(key, key)} | " + " | ".join(cells) + f" | **{mean}** | {n} | {p} |")
    return "\n".join(lines)


def table2(results: dict[str, list[Evaluation]]) -> str:
    """Markdown Table 2 analogue: limb-length-ratio errors per body part (lower, upper, full)."""
    groups = ("lower", "upper", "full")
    lines = ["| Method | Lower body | Upper body | Full body |", "|---|---|---|---|"]
    for key, evals in results.items():
        cells = [_fmt(*_agg([ev.limb_ratio[g] for ev in evals]), digits=3) for g in groups]
        lines.append(f"| {METHOD_NAMES.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(results: dict[str, list[Evaluation]], a: str, b: str, sequences: np.ndarray, actions: np.ndarray,
            n_boot: int = 2000, names: dict[str, str] | None = None) -> dict:  # fmt: skip
    """Paired comparison "A − B" of the mean-over-actions MPJPE: over seeds (t CI) and over test sequences
    within seeds (bootstrap CI), as plain numbers plus the sentence that says whether it is resolved.

    Args:
        results: {method: one :class:`Evaluation` per seed, seeds in the same order for every method}.
        a, b: the two methods.
        sequences: (N,) the test sequence of each frame (the bootstrap resamples whole sequences).
        actions: (N,) the action of each frame (the metric is per action, then the mean over actions).
        n_boot: bootstrap replicates.
        names: display names of the methods in the sentence (default :data:`METHOD_NAMES`).
    """
    names = METHOD_NAMES if names is None else names
    seeds = paired_over_seeds([ev.mean["mpjpe"] for ev in results[a]], [ev.mean["mpjpe"] for ev in results[b]])
    boot = bootstrap_paired(np.stack([ev.errors["mpjpe"] for ev in results[a]]),
                            np.stack([ev.errors["mpjpe"] for ev in results[b]]), sequences, actions,
                            n_boot=n_boot)  # fmt: skip
    return {"a": a, "b": b, "per_seed": list(seeds.per_seed), "mean": seeds.mean,
            "ci_seeds": [seeds.ci_low, seeds.ci_high], "ci_bootstrap": [boot.ci_low, boot.ci_high],
            "resolved_seeds": seeds.resolved, "resolved_bootstrap": boot.resolved,
            "sentence": describe(names[a], names[b], seeds, boot)}  # fmt: skip


def paired_statistics(results: dict[str, list[Evaluation]], sequences: np.ndarray, actions: np.ndarray,
                      n_boot: int = 2000) -> tuple[str, list[dict]]:  # fmt: skip
    """:func:`compare` for each pair of :data:`COMPARISONS` both of whose methods ran: a markdown table and
    the sentences, and the numbers (for JSON)."""
    pairs = [compare(results, a, b, sequences, actions, n_boot) for a, b in comparisons(results)]
    lines = ["| A − B | per seed (mm) | mean (mm) | 95% CI over seeds (t) | 95% CI over test sequences (bootstrap) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for c in pairs:
        (sl, sh), (bl, bh) = c["ci_seeds"], c["ci_bootstrap"]
        per_seed = ", ".join(f"{d:+.1f}" for d in c["per_seed"])
        lines.append(f"| {METHOD_NAMES[c['a']]} − {METHOD_NAMES[c['b']]} | {per_seed} | {c['mean']:+.1f} | "
                     f"{_ci(sl, sh)} | {_ci(bl, bh)} |")  # fmt: skip
    return "\n".join([*lines, "", *(f"- {c['sentence']}" for c in pairs)]), pairs


def read_metrics_csv(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning CSVLogger metrics.csv -> {metric: [(step, value), ...]} (empty cells skipped)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            step = int(float(row.get("step") or 0))
            for k, v in row.items():
                if k in ("step", "epoch") or v in ("", None):
                    continue
                curves.setdefault(k, []).append((step, float(v)))
    return curves


def figure2(images: np.ndarray, joints2d: np.ndarray, gt: np.ndarray, preds: dict[str, np.ndarray], path: Path) -> Path:
    """Figure 2 analogue: per test image, the crop with its 2D ground truth, then GT vs predictions in 3D.

    images (K, S, S, 3) uint8; joints2d (K, J, 2); gt (K, J, 3) mm; preds {method: (K, J, 3) mm}.
    """
    import matplotlib.pyplot as plt

    from structpose.viz import draw_skeleton_2d, plot_pose_3d, save_figure

    k, cols = len(images), 1 + len(preds)
    fig = plt.figure(figsize=(2.6 * cols, 2.6 * k))
    for i in range(k):
        ax = fig.add_subplot(k, cols, i * cols + 1)
        ax.imshow(images[i])
        draw_skeleton_2d(ax, joints2d[i])
        ax.axis("off")
        for j, (key, pred) in enumerate(preds.items()):
            ax3 = fig.add_subplot(k, cols, i * cols + 2 + j, projection="3d")
            plot_pose_3d(ax3, gt[i], alpha=0.35, style="--")
            plot_pose_3d(ax3, pred[i])
            err = float(mpjpe(pred[i : i + 1], gt[i : i + 1]))  # as in the tables (root-centred)
            ax3.set_title(f"{METHOD_NAMES.get(key, key)}: {err:.0f} mm", fontsize=8)
            ax3.set_xticklabels([]), ax3.set_yticklabels([]), ax3.set_zticklabels([])
            ax3.set_xlabel(""), ax3.set_ylabel(""), ax3.set_zlabel("")
    fig.suptitle("dashed: ground truth; solid: prediction (left red, right blue)", fontsize=9)
    return save_figure(fig, path)


#: The logged curves drawn per stage, one panel each (a metric a stage does not log leaves its panel out).
CURVES: tuple[tuple[str, str], ...] = (
    ("train/loss_step", "training loss (per step)"),
    ("val/loss", "validation loss"),
    ("val/mpjpe_mm", "validation MPJPE (mm)"),
    ("lr-Adam", "learning rate"),
)


def loss_curves(run_dir: Path, path: Path) -> Path | None:
    """One row per training stage of the run's first seed (Lightning CSV logs; the whole of ``run_dir``
    but its ablations when it has no seed folder), one panel per metric of :data:`CURVES` on its own axis
    (losses on a log scale), against the optimizer step."""
    import matplotlib.pyplot as plt

    from structpose.train.layout import ABLATIONS, RunLayout, stage_rank
    from structpose.viz import save_figure

    seeds = RunLayout(run_dir).seeds()
    where = seeds[0].root if seeds else Path(run_dir)
    logs = sorted((p for p in where.glob("**/metrics.csv") if ABLATIONS not in p.relative_to(where).parts),
                  key=lambda p: (stage_rank(p.parent.parent.name), str(p)))  # fmt: skip
    if not logs:
        return None
    fig, axes = plt.subplots(len(logs), len(CURVES), figsize=(3.0 * len(CURVES), 2.2 * len(logs)), squeeze=False)
    for row, log in zip(axes, logs, strict=True):
        curves = read_metrics_csv(log)
        for ax, (key, label) in zip(row, CURVES, strict=True):
            if key not in curves:
                ax.axis("off")
                continue
            steps, vals = zip(*curves[key], strict=True)
            ax.plot(steps, vals, lw=1, marker="." if len(steps) < 30 else None)
            if "loss" in key and min(vals) > 0:
                ax.set_yscale("log")
            ax.set_title(f"{log.parent.parent.relative_to(run_dir)}: {label}", fontsize=7)
            ax.set_xlabel("step", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


#: A stage has converged when its validation MPJPE changed by less than FLAT_TOLERANCE (relative) over the
#: last FLAT_WINDOW of its optimizer steps (the criterion of the `full` budget).
FLAT_WINDOW = 0.2
FLAT_TOLERANCE = 0.01


def plateau(curve: list[tuple[int, float]], window: float = FLAT_WINDOW) -> dict | None:
    """How much a validation curve [(step, value)] still moved at its end: the last value logged at or
    before step (1 - window) × its last step, the last value, and their relative change; ``flat`` when that
    change is under :data:`FLAT_TOLERANCE` in size; ``stuck`` when the curve never went below its first value
    by that much (a network that never learned is flat too). None for fewer than two points."""
    if len(curve) < 2:
        return None
    last_step, end = curve[-1]
    before = [v for s, v in curve if s <= (1 - window) * last_step]
    start = before[-1] if before else curve[0][1]
    change = (end - start) / start if start else math.inf
    stuck = min(v for _, v in curve) > (1 - FLAT_TOLERANCE) * curve[0][1]
    return {"steps": int(last_step), "start": start, "end": end, "change": change,
            "flat": bool(abs(change) < FLAT_TOLERANCE), "stuck": bool(stuck)}  # fmt: skip


def convergence(run_dir: Path) -> list[dict]:
    """Per seed folder of the run and per stage logging ``val/mpjpe_mm``, :func:`plateau` of that curve
    (the logs of a resumed stage, one ``version_k`` per attempt, joined by step)."""
    from structpose.train.layout import RunLayout, stage_rank

    rows = []
    for seed in RunLayout(run_dir).seeds():
        for stage in sorted((p for p in seed.logs.glob("*") if p.is_dir()), key=lambda p: stage_rank(p.name)):
            curve = sorted(pt for log in sorted(stage.glob("version_*/metrics.csv"))
                           for pt in read_metrics_csv(log).get("val/mpjpe_mm", []))  # fmt: skip
            if (flat := plateau(curve)) is not None:
                rows.append({"seed": seed.root.name, "stage": stage.name} | flat)
    return rows


def convergence_section(rows: list[dict]) -> list[str]:
    """Markdown: the :func:`convergence` table and, for the direct CNN, in how many seeds it was flat."""
    if not rows:
        return []
    pct = f"{FLAT_WINDOW:.0%}"
    lines = [f"## Convergence — validation MPJPE over the last {pct} of each stage's steps", "",
             f"| seed | stage | steps | val. MPJPE at {1 - FLAT_WINDOW:.0%} of the steps (mm) | at the end (mm) | "
             f"change | flat (< {FLAT_TOLERANCE:.0%}) | never left its start |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        flat, stuck = ("yes" if r["flat"] else "no"), ("STUCK" if r["stuck"] else "no")
        lines.append(f"| {r['seed']} | {r['stage']} | {r['steps']} | {r['start']:.1f} | {r['end']:.1f} | "
                     f"{r['change']:+.1%} | {flat} | {stuck} |")  # fmt: skip
    ends: dict[str, list[float]] = {}
    for r in rows:
        ends.setdefault(r["stage"], []).append(r["end"])
    lines += ["", "Final validation MPJPE, mean over seeds (what a choice between runs is made on): "
              + ", ".join(f"{k} {np.mean(v):.1f} mm ({len(v)})" for k, v in ends.items()) + "."]  # fmt: skip
    direct = [r for r in rows if r["stage"] == "direct"]
    if direct:
        flat = sum(r["flat"] and not r["stuck"] for r in direct)
        stuck = sum(r["stuck"] for r in direct)
        lines += ["", f"The direct CNN's validation MPJPE was flat (and had learned) in {flat} of {len(direct)} "
                  f"seed(s); it never left its first value in {stuck}."]  # fmt: skip
    return [*lines, ""]


def regime_table(sets: list[TestSetResults]) -> str:
    """Markdown: per test set, the mean-over-actions MPJPE of LinKDE, the CNN and OURS-FT (mean over seeds),
    OURS-FT / CNN and CNN − LinKDE with their 95% CIs over seeds (t)."""
    lines = ["| test set | LinKDE | CNN | OURS with FT | OURS/CNN, CI over seeds | CNN − LinKDE, CI over seeds |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for res in sets:
        keys = (linkde_key(res.evaluations), "cnn", "ours")
        if not set(keys) <= set(res.evaluations):
            continue
        mean = {k: [e.mean["mpjpe"] for e in res.evaluations[k]] for k in keys}
        ratio = paired_over_seeds(mean["ours"], mean["cnn"], kind="ratio")
        diff = paired_over_seeds(mean["cnn"], mean[keys[0]])
        cells = " | ".join(f"{np.mean(mean[k]):.1f}" for k in keys)
        lines.append(f"| {res.name} | {cells} | {ratio.mean:.3f} {_ci(ratio.ci_low, ratio.ci_high, '.3f')} | "
                     f"{diff.mean:+.1f} {_ci(diff.ci_low, diff.ci_high)} |")  # fmt: skip
    return "\n".join(lines)


def regime_figure(sets: list[TestSetResults], path: Path, a: str = "ours", b: str = "cnn") -> Path | None:
    """OURS-FT / CNN (mean-over-actions MPJPE ratio) per test set, with its 95% CI over seeds (t) as error
    bars, 1 (no difference) and, for OURS / CNN, the paper's ratio as lines; None when a set lacks either
    method or there is one seed."""
    per_seed = {s.name: {k: [e.mean["mpjpe"] for e in evals] for k, evals in s.evaluations.items()} for s in sets}
    return ratio_figure(per_seed, path, a, b)


def results_per_seed(results: dict, source: str | Path = "results.json") -> dict[str, dict[str, list[float]]]:
    """{test set: {method: per-seed mean-over-actions MPJPE (mm)}} of a report's ``results.json`` (as
    :func:`results_json` writes it; the committed copies under ``results/``), Table 1's set first.

    Raises:
        InputError: naming ``source``, when it holds no test set with per-seed means.
    """
    out: dict[str, dict[str, list[float]]] = {}
    for name in ("test", *TEST_SETS):
        entry = results.get(name)
        methods = entry.get("methods") if isinstance(entry, dict) else None
        if isinstance(methods, dict):
            try:
                out[name] = {k: [float(e["mean"]["mpjpe"]) for e in evals] for k, evals in methods.items()}
            except (KeyError, TypeError) as err:
                raise InputError(f"{source}: test set {name!r} has a malformed per-seed entry ({err!r})") from err
    if not out:
        raise InputError(f"{source}: no test set with per-seed results (is it a `structpose reproduce` results.json?)")
    return out


def write_regime_figure(results: Path, out: Path, a: str = "ours", b: str = "cnn") -> Path:
    """``structpose regimes RESULTS.json``: the report's regime figure (``a`` / ``b`` per test set with its
    95% CI over seeds) redrawn from a ``results.json`` alone, e.g. a committed copy under ``results/``
    whose run folder is gone.

    Raises:
        InputError: naming ``results``, when it cannot be read, holds no per-seed results, or has fewer
            than two seeds of ``a`` and ``b`` on any test set.
    """
    try:
        data = json.loads(Path(results).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{results}: cannot read it as JSON ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{results}: not a `structpose reproduce` results.json (a JSON object)")
    path = ratio_figure(results_per_seed(data, results), Path(out), a, b)
    if path is None:
        raise InputError(f"{results}: no test set has {a} and {b} over two or more seeds, so there is no CI to draw")
    return path


def ratio_figure(
    per_seed: dict[str, dict[str, list[float]]], path: Path, a: str = "ours", b: str = "cnn"
) -> Path | None:
    """The figure of :func:`regime_figure` from per-seed means ``{test set: {method: [mm per seed]}}``
    (:func:`results_per_seed`); None when no set has both methods or there is one seed."""
    import matplotlib.pyplot as plt

    from structpose.paper import paper_ratios
    from structpose.viz import ratio_reference_lines, save_figure

    rows = [(name, paired_over_seeds(m[a], m[b], kind="ratio")) for name, m in per_seed.items() if a in m and b in m]
    if not rows or rows[0][1].n < 2:
        return None
    fig, ax = plt.subplots(figsize=(3.2 + 1.1 * len(rows), 3.0))
    x = np.arange(len(rows))
    means = np.array([r.mean for _, r in rows])
    err = np.array([[r.mean - r.ci_low for _, r in rows], [r.ci_high - r.mean for _, r in rows]])
    ax.errorbar(x, means, yerr=err, fmt="o", capsize=4)
    ratio_reference_lines(ax, paper_ratios()["ours/cnn"] if (a, b) == ("ours", "cnn") else None)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the CIs, never over them
    ax.set_xticks(x, [n for n, _ in rows], fontsize=8)
    ax.set_ylabel(f"{METHOD_NAMES[a]} / {METHOD_NAMES[b]}", fontsize=8)
    ax.set_title(f"MPJPE ratio, 95% CI over {rows[0][1].n} seeds (below 1: {METHOD_NAMES[a]} better)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def paper_section(res: TestSetResults, human36m: bool = False) -> list[str]:
    """The paper's claim beside ours, as ratios of mean-over-actions MPJPE. The numbers themselves are
    comparable only on Human3.6M (``human36m``): then the paper's per-action MPJPE is printed beside ours
    for the actions both have; on other data (the embedded default, whose actions borrow Human3.6M names)
    only the ratios are."""
    from structpose.paper import paper_ratios, paper_tables

    theirs = paper_ratios()
    lines = ["## The paper's claim, as ratios", "",
             "| ratio of mean MPJPE | Tekin et al. 2016 (Human3.6M, six actions) | this run, 95% CI over seeds |",
             "|---|---|---|"]  # fmt: skip
    for key in ("ours/cnn", "ours/linkde", "cnn/linkde"):
        a, b = (linkde_key(res.evaluations) if k == "linkde" else k for k in key.split("/"))
        if a in res.evaluations and b in res.evaluations:
            r = paired_over_seeds([e.mean["mpjpe"] for e in res.evaluations[a]],
                                  [e.mean["mpjpe"] for e in res.evaluations[b]], kind="ratio")  # fmt: skip
            ci = f"[{r.ci_low:.3f}, {r.ci_high:.3f}]" if r.n > 1 else "(one seed)"
            lines.append(f"| {METHOD_NAMES[a]} / {METHOD_NAMES[b]} | {theirs[key]:.3f} | {r.mean:.3f} {ci} |")
    lines += ["", "structpose's direct CNN is the same-trunk stand-in for the paper's DconvMP-HML (Li & Chan 2014). "
              f"Source: {paper_tables()['source']}.", ""]  # fmt: skip
    return lines + (_paper_actions(res) if human36m else [])


def _paper_actions(res: TestSetResults) -> list[str]:
    """On a Human3.6M run, the paper's per-action MPJPE of OURS and DconvMP-HML beside ours."""
    from structpose.paper import paper_table1

    t1 = paper_table1()
    shared = sorted(set(res.actions) & (set(t1["OURS"]) - {"mean"}))
    if not shared or "ours" not in res.evaluations or "cnn" not in res.evaluations:
        return []
    lines = ["| action | paper: OURS | here: OURS, with FT | paper: DconvMP-HML | here: CNN |", "|---|---|---|---|---|"]
    for act in shared:
        ours, cnn = (_fmt(*_agg([e.per_action["mpjpe"][act] for e in res.evaluations[k]])) for k in ("ours", "cnn"))
        dconv = t1["DconvMP-HML [Li & Chan 2014]"][act]
        lines.append(f"| {act} | {t1['OURS'][act]:.1f} | {ours} | {dconv:.1f} | {cnn} |")
    return [*lines, ""]


@dataclass
class TestSetResults:
    """One test set of a run: its name (a key of :data:`TEST_SETS`), the label of each frame, and the
    evaluations."""

    name: str
    actions: np.ndarray  # (N,) str
    sequences: np.ndarray  # (N,) str, "subject/sequence"
    evaluations: dict[str, list[Evaluation]]  # method -> one per seed

    @cached_property
    def paired(self) -> tuple[str, list[dict]]:
        """:func:`paired_statistics` of this set, computed once (the report and results.json share it)."""
        return paired_statistics(self.evaluations, self.sequences, self.actions)


@dataclass
class Figure2Data:
    """What Figure 2 shows: a few test crops, their 2D joints and 3D ground truth, and seed 0's predictions."""

    images: np.ndarray  # (K, S, S, 3) uint8
    joints2d: np.ndarray  # (K, J, 2) px
    gt: np.ndarray  # (K, J, 3) mm
    predictions: dict[str, np.ndarray]  # method -> (K, J, 3) mm


@dataclass
class RunSummary:
    """Everything a report says about a run (see :func:`write_report`)."""

    preset: str
    config_yaml: str
    data_root: str
    n_seeds: int
    minutes: float
    environment: dict
    benchmark: str  # the benchmark version: protocol, renderer, metric conventions
    test: TestSetResults
    regimes: list[TestSetResults] = field(default_factory=list)  # unseen motions, occluded, truncated, ...
    figure2: Figure2Data | None = None
    human36m: bool = False  # a Human3.6M import: the paper's per-action numbers are printed beside ours
    notes: list[str] = field(default_factory=list)


def methods_section(evaluations: dict) -> list[str]:
    """What each method of the run is, and which of :data:`~structpose.train.methods.METHODS` did not run
    (left out by the configuration's ``methods``)."""
    ran = [k for k in METHODS if k in evaluations]
    lines = ["## Methods", "", *[f"- **{METHODS[k].label}**: {METHODS[k].description}." for k in ran]]
    skipped = [METHODS[k].label for k in METHODS if k not in evaluations]
    if skipped:
        lines.append(f"- Not run (left out by `methods` in the configuration): {', '.join(skipped)}.")
    return [*lines, ""]


def paper_table2() -> list[str]:
    """The paper's Table 2 (Human3.6M), to read the ordering of ours against (the values are not comparable)."""
    from structpose.paper import paper_tables

    t2 = paper_tables()["table2"]
    rows = [f"| {name} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for name, vals in t2["rows"].items()]
    return ["Tekin et al. (2016), Table 2, Human3.6M (the ordering is what can be compared):", "",
            "| Method | Lower body | Upper body | Full body |", "|---|---|---|---|", *rows, ""]  # fmt: skip


def _test_set_section(title: str, res: TestSetResults) -> list[str]:
    stats, _ = res.paired
    return [f"## {title} — MPJPE (mm) per action and the mean over actions; N-MPJPE and P-MPJPE, each per "
            "action then averaged", "", table1(res.evaluations), "",
            f"### Paired differences ({res.name} set; mean-over-actions MPJPE, A − B, negative: A is better)", "",
            stats, ""]  # fmt: skip


def write_report(run_dir: Path, run: RunSummary) -> Path:
    """Write ``run_dir/report.md`` (tables, paired statistics, figures, config, environment) and
    ``run_dir/results.json`` (the numbers of the tables, per seed); returns the report's path."""
    run_dir = Path(run_dir)
    if run.figure2 is not None:
        f = run.figure2
        figure2(f.images, f.joints2d, f.gt, f.predictions, run_dir / "figure2.png")
    curves = loss_curves(run_dir, run_dir / "loss_curves.png")
    env = run.environment
    spread = f"mean ± std over {run.n_seeds} seeds" if run.n_seeds > 1 else "one seed (pass --seeds N for a spread)"
    text = [f"# structpose reproduce — preset `{run.preset}`", "",
            f"Benchmark: {run.benchmark}.", "",
            f"Data: `{run.data_root}` ({len(run.test.actions)} test images of held-out subjects/styles). This "
            f"invocation took {run.minutes:.1f} min on {env.get('cuda') or str(env.get('cpus')) + ' CPU cores'} "
            f"(a `--resume` reloads the stages already trained). Values: {spread}.", "",
            *_test_set_section("Table 1 analogue", run.test)]  # fmt: skip
    text += methods_section(run.test.evaluations)
    text += paper_section(run.test, human36m=run.human36m)
    for res in run.regimes:
        text += _test_set_section(TEST_SETS.get(res.name, res.name), res)
    if run.regimes:
        text += ["## All test sets at a glance (mean-over-actions MPJPE, mm; mean over seeds)", "",
                 regime_table([run.test, *run.regimes]), ""]  # fmt: skip
    ratio_figure = regime_figure([run.test, *run.regimes], run_dir / "regimes.png")
    flat = convergence(run_dir)
    text += ["## Table 2 analogue — limb-length-ratio errors (unitless; lower is better)", "",
             "Sum over the pairs of limbs (i, j) of a group of the mean over frames of "
             "|log(l_i/l_j)_pred − log(l_i/l_j)_gt| (our reading of the paper's metric).", "",
             table2(run.test.evaluations), "", *paper_table2(), *[f"{n}\n" for n in run.notes],
             *convergence_section(flat), "## Figures", ""]  # fmt: skip
    if run.figure2 is not None:
        text += ["![Figure 2 analogue](figure2.png)", ""]
    if curves is not None:
        text += ["![Loss curves](loss_curves.png)", ""]
    if ratio_figure is not None:
        text += ["![OURS-FT / CNN per test set, 95% CI over seeds](regimes.png)", ""]
    text += ["## Configuration", "", "```yaml", run.config_yaml.rstrip(), "```", "",
             "## Environment", "", "```json", json.dumps(env, indent=1), "```", ""]  # fmt: skip
    write_text(run_dir / "results.json", json.dumps(results_json(run) | {"convergence": flat}, indent=1))
    return write_text(run_dir / "report.md", "\n".join(text))


def results_json(run: RunSummary) -> dict:
    """The report's numbers as plain data: per test set, method and seed, the means and per-action MPJPE;
    the paired comparisons; the benchmark version and the configuration."""
    out: dict = {"benchmark": run.benchmark, "preset": run.preset, "n_seeds": run.n_seeds,
                 "git_commit": run.environment.get("git_commit", ""), "command": run.environment.get("command", ""),
                 "config_sha256": hashlib.sha256(run.config_yaml.encode()).hexdigest(),
                 "config": run.config_yaml}  # fmt: skip
    for res in (run.test, *run.regimes):
        _, pairs = res.paired
        out[res.name] = {
            "methods": {k: [{"mean": ev.mean, "per_action_mpjpe": ev.per_action["mpjpe"], "limb_ratio": ev.limb_ratio}
                            for ev in evals] for k, evals in res.evaluations.items()},
            "paired": pairs,
        }  # fmt: skip
    return out
