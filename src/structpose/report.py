"""Result tables and figures of a run: the analogues of the paper's Table 1, Table 2 and Figure 2.

Everything here is a pure function of evaluation results (no training): a run folder can be re-reported.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from structpose.errors import InputError
from structpose.metrics import limb_ratio_errors, mpjpe, p_mpjpe, per_action

#: Display names of the methods, in the paper's row order.
METHOD_NAMES: dict[str, str] = {
    "linkde": "LinKDE",
    "cnn": "CNN (direct)",
    "ours_noft": "OURS, no FT",
    "ours": "OURS, with FT",
}


@dataclass
class Evaluation:
    """Errors of one method on one test set. Units: mm (MPJPE, P-MPJPE); limb-ratio errors are unitless."""

    per_action: dict[str, float]
    mean: float  # mean over actions of the per-action MPJPE, as the paper averages
    p_mpjpe: float
    limb_ratio: dict[str, float]
    errors: np.ndarray = field(repr=False)  # (N,) per-sample MPJPE, mm


def evaluate(pred: np.ndarray, gt: np.ndarray, actions: np.ndarray) -> Evaluation:
    """MPJPE (protocol #1) per action and mean, P-MPJPE (protocol #2), limb-ratio errors. pred, gt: (N, 17, 3) mm."""
    if not (pred.shape == gt.shape and pred.ndim == 3):
        raise InputError(f"expected predictions and ground truth of one shape (N, J, 3), got {pred.shape}, {gt.shape}")
    errors = mpjpe(pred, gt, reduce=False)
    table = per_action(errors, actions)
    return Evaluation(
        per_action={k: v for k, v in table.items() if k != "mean"},
        mean=float(table["mean"]),
        p_mpjpe=float(p_mpjpe(pred, gt)),
        limb_ratio=limb_ratio_errors(pred, gt),
        errors=errors,
    )


def _fmt(x: float | None, spread: float | None = None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f} ± {spread:.{digits}f}" if spread is not None else f"{x:.{digits}f}"


def _agg(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample std over seeds (std None for a single seed)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=1)) if len(arr) > 1 else None)


def table1(results: dict[str, list[Evaluation]]) -> str:
    """Markdown Table 1 analogue: MPJPE per action (rows: methods), mean, P-MPJPE. Values: mean ± std over seeds."""
    actions = sorted({a for evals in results.values() for ev in evals for a in ev.per_action})
    head = "| Method | " + " | ".join(actions) + " | **Mean** | P-MPJPE |"
    lines = [head, "|" + "---|" * (len(actions) + 3)]
    for key, evals in results.items():
        cells = []
        for a in actions:
            vals = [ev.per_action[a] for ev in evals if a in ev.per_action]
            cells.append(_fmt(*_agg(vals)) if vals else "–")
        mean = _fmt(*_agg([ev.mean for ev in evals]))
        pm = _fmt(*_agg([ev.p_mpjpe for ev in evals]))
        lines.append(f"| {METHOD_NAMES.get(key, key)} | " + " | ".join(cells) + f" | **{mean}** | {pm} |")
    return "\n".join(lines)


def table2(results: dict[str, list[Evaluation]]) -> str:
    """Markdown Table 2 analogue: limb-length-ratio errors per body part (lower, upper, full)."""
    groups = ("lower", "upper", "full")
    lines = ["| Method | Lower body | Upper body | Full body |", "|---|---|---|---|"]
    for key, evals in results.items():
        cells = [_fmt(*_agg([ev.limb_ratio[g] for ev in evals]), digits=3) for g in groups]
        lines.append(f"| {METHOD_NAMES.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
            err = float(np.linalg.norm(pred[i] - gt[i], axis=-1).mean())
            ax3.set_title(f"{METHOD_NAMES.get(key, key)}: {err:.0f} mm", fontsize=8)
            ax3.set_xticklabels([]), ax3.set_yticklabels([]), ax3.set_zticklabels([])
            ax3.set_xlabel(""), ax3.set_ylabel(""), ax3.set_zlabel("")
    fig.suptitle("dashed: ground truth; solid: prediction (left red, right blue)", fontsize=9)
    return save_figure(fig, path)


def loss_curves(run_dir: Path, path: Path) -> Path | None:
    """One panel per training stage found under ``run_dir`` (Lightning CSV logs), train and val loss."""
    import matplotlib.pyplot as plt

    from structpose.viz import save_figure

    logs = sorted(run_dir.glob("**/metrics.csv"))
    if not logs:
        return None
    fig, axes = plt.subplots(1, len(logs), figsize=(3.6 * len(logs), 3.0), squeeze=False)
    for ax, log in zip(axes[0], logs, strict=True):
        for name, pts in read_metrics_csv(log).items():
            if "loss" in name or "mpjpe" in name:
                steps, vals = zip(*pts, strict=True)
                ax.plot(steps, vals, label=name, lw=1)
        ax.set_yscale("log")
        ax.set_title(str(log.parent.relative_to(run_dir)), fontsize=7)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    return save_figure(fig, path)


def write_report(run_dir, cfg, results, predictions, test, preset, n_seeds, minutes, paper_note) -> Path:
    """Write ``run_dir/report.md`` with both tables, the figures, the config and the environment."""
    import json

    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(test), size=min(5, len(test)), replace=False))
    images = test.images(pick)
    shown = {k: predictions[k][pick] for k in ("linkde", "cnn", "ours") if k in predictions}
    figure2(images, test.joints2d[pick], test.poses3d[pick], shown, run_dir / "figure2.png")
    curves = loss_curves(run_dir, run_dir / "loss_curves.png")
    env = json.loads((run_dir / "environment.json").read_text())
    spread = f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "one seed (pass --seeds N for a spread)"
    text = [
        f"# structpose reproduce — preset `{preset}`",
        "",
        f"Data: `{cfg.data.root}` ({len(test)} test images of held-out subjects/styles). "
        f"This invocation took {minutes:.1f} min on {env.get('cuda') or str(env.get('cpus')) + ' CPU cores'} "
        "(a `--resume` reloads the stages already trained). "
        f"Values: {spread}.",
        "",
        "## Table 1 analogue — MPJPE (mm, protocol #1: no alignment, root-relative) per action; P-MPJPE "
        "(protocol #2: Procrustes-aligned)",
        "",
        table1(results),
        "",
        "## Table 2 analogue — limb-length-ratio errors (unitless; lower is better)",
        "",
        "Sum over the pairs of limbs (i, j) of a group of the mean over frames of "
        "|log(l_i/l_j)_pred − log(l_i/l_j)_gt| (our reading of the paper's metric).",
        "",
        table2(results),
        "",
        "## The paper, for reference",
        "",
        paper_note,
        "",
        "## Figures",
        "",
        "![Figure 2 analogue](figure2.png)",
        "",
    ]
    if curves is not None:
        text += ["![Loss curves](loss_curves.png)", ""]
    text += [
        "## Configuration",
        "",
        "```yaml",
        cfg.to_yaml().rstrip(),
        "```",
        "",
        "## Environment",
        "",
        "```json",
        json.dumps(env, indent=1),
        "```",
        "",
    ]
    path = run_dir / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    tmp.replace(path)
    return path
