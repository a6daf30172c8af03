"""``structpose reproduce --input keypoints2d``: the lifting experiment end to end, written up as a run folder.

Seed by seed (a resumed run reloads the finished seeds' stages), :func:`~structpose.lift.pipeline.train_lifters`
trains the three lifting methods on pose-library views; each is scored on the embedded benchmark's test
views under every condition of :data:`~structpose.lift.pipeline.CONDITIONS` and
:data:`~structpose.lift.pipeline.HIP_CASES` and on the unseen motions. The run folder (the layout of
:class:`~structpose.train.layout.RunLayout`) gets ``report.md`` (Table 1 and 2 analogues on exact 2D, the
conditions table with paired CIs, the hip-offset table, times), ``results.json``, every seed's predictions,
and the released lifters ``models/lift_ours`` and ``models/lift_direct``.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from structpose.data.poselib import load_pose_library
from structpose.files import atomic_path, write_text
from structpose.lift.config import LIFT_METHODS, LiftConfig, load_lift_config
from structpose.lift.data import Views, lift_splits
from structpose.lift.pipeline import CONDITIONS, HIP_CASES, evaluation_inputs, lift_poses, train_lifters
from structpose.metrics import mean_pose_baseline
from structpose.report import Evaluation, _agg, _fmt, compare, evaluate, table1, table2
from structpose.train.layout import RunLayout, check_config

NAMES = LIFT_METHODS | {"mean_pose": "*Mean training pose* (floor)"}
#: the paired comparisons of the report, read "A − B"
PAIRS = (("lift_ours", "lift_direct"), ("lift_ours_noft", "lift_direct"))
#: {test set: {method: one Evaluation per seed}}
Results = dict[str, dict[str, list[Evaluation]]]


def reproduce_lift(preset: str = "quick", out: Path | None = None, overrides: list[str] | None = None,
                   resume: bool = False, seeds: int | None = None) -> Path:  # fmt: skip
    """Run the lifting experiment of ``preset`` (``structpose/configs/lift/``) into ``out``; returns the folder."""
    from structpose.reproduce import _claim, _mark_failed, environment

    cfg = load_lift_config(preset, overrides or [])
    run = RunLayout(Path(out) if out is not None else Path("runs") / f"lift-{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    _claim(run, resume)
    if resume:
        check_config(cfg.to_yaml(), run.root)
    run.root.mkdir(parents=True, exist_ok=True)
    write_text(run.config, cfg.to_yaml())
    write_text(run.environment, json.dumps(environment(), indent=1))
    try:
        _run(cfg, run, resume, seeds or 1)
    except BaseException as err:
        _mark_failed(run, err)
        raise
    run.failed.unlink(missing_ok=True)
    return run.root


def test_sets(splits: dict[str, Views], cfg: LiftConfig) -> dict[str, tuple[Views, np.ndarray]]:
    """{set name: (views, lifter inputs (N, 51))}: the test views under every condition, the unseen motions, and
    ``store``: the test split of ``data.test_store`` from its own 2D ground truth (joint centres: no hip offset)."""
    sets = {name: (splits["test"], evaluation_inputs(splits["test"], cfg, name)) for name in (*CONDITIONS, *HIP_CASES)}
    if "unseen" in splits and len(splits["unseen"]):
        sets["unseen"] = (splits["unseen"], evaluation_inputs(splits["unseen"], cfg, "exact"))
    if cfg.data.test_store:
        store = store_views(cfg.data.test_store)
        sets["store"] = (store, evaluation_inputs(store, cfg, "hips_none"))
    return sets


def store_views(root: str | Path) -> Views:
    """The test split of a dataset directory as views: its poses (mm) and its 2D joints (crop px: the lifter's
    normalisation removes the crop's scale and position)."""
    from structpose.data.dataset import PoseImageDataset

    ds = PoseImageDataset(root, "test")
    n = len(ds)
    return Views(ds.poses3d.astype(np.float32), np.asarray(ds.joints2d, np.float32), ds.action.astype(str),
                 ds.sequence.astype(str), ds.subject.astype(str), np.arange(n))  # fmt: skip


def _run(cfg: LiftConfig, run: RunLayout, resume: bool, n_seeds: int) -> None:
    d = cfg.data
    t0 = time.time()
    lib = load_pose_library(d.pose_library, d.sources)
    sizes = {"train": d.train_views, "test": d.test_views, "unseen": d.unseen_views}
    splits = lift_splits(lib, d.protocol, d.seed, d.split_seed, sizes, d.val_fraction)
    sets = test_sets(splits, cfg)
    print("[lift] views: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
          + f" ({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
    results: Results = {}
    minutes = []
    for s in range(n_seeds):
        t = time.time()
        scfg = replace(cfg, trainer=replace(cfg.trainer, seed=cfg.trainer.seed + s))
        folder = run.seed(scfg.trainer.seed)
        nets = train_lifters(scfg, folder, splits, resume)
        preds = {name: {k: lift_poses(net, x) for k, net in nets.items()} for name, (_, x) in sets.items()}
        for name, (v, _) in sets.items():
            preds[name]["mean_pose"] = mean_pose_baseline(splits["train"].poses3d, len(v))
        with atomic_path(folder.predictions) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **{f"{k}/{m}": p for k, ps in preds.items() for m, p in ps.items()})
        for name, ps in preds.items():
            v = sets[name][0]
            for key, p in ps.items():
                results.setdefault(name, {}).setdefault(key, []).append(evaluate(p, v.poses3d, v.action))
        minutes.append((time.time() - t) / 60)
        print(f"[lift] seed {scfg.trainer.seed}: {minutes[-1]:.1f} min", flush=True)
    summary = summarise(results, sets, minutes)
    noise_figure(summary, run.figure("lift_noise"))
    write_text(run.report, report_markdown(summary, cfg))
    write_text(run.results, json.dumps(summary, indent=1))
    _export(run)


def summarise(results: Results, sets: dict[str, tuple[Views, np.ndarray]], minutes: list[float]) -> dict:
    """The numbers of the report: per set and method the mean MPJPE per seed, and the paired comparisons."""
    out: dict = {"seeds": len(next(iter(results["exact"].values()))), "minutes_per_seed": minutes, "sets": {}}
    for name, res in results.items():
        v = sets[name][0]
        entry = {k: {"mpjpe": [ev.mean["mpjpe"] for ev in evs], "p_mpjpe": [ev.mean["p_mpjpe"] for ev in evs]}
                 for k, evs in res.items()}  # fmt: skip
        sequences = np.char.add(np.char.add(v.subject, "/"), v.sequence)
        if out["seeds"] > 1 and len(np.unique(sequences)) > 1:
            entry["comparisons"] = [compare(res, a, b, sequences, v.action, names=NAMES) for a, b in PAIRS]
        out["sets"][name] = entry
    out["_tables"] = {"table1": table1(_named(results["exact"])), "table2": table2(_named(results["exact"]))}
    for name in ("unseen", "store"):
        if name in results:
            out["_tables"][name] = table1(_named(results[name]))
    return out


def _named(res: dict[str, list[Evaluation]]) -> dict[str, list[Evaluation]]:
    order = [*LIFT_METHODS, "mean_pose"]
    return {NAMES[k]: res[k] for k in order if k in res}


def conditions_table(summary: dict, names: list[str]) -> str:
    """Markdown: rows the methods, columns the sets ``names``, cells mean MPJPE ± std over seeds (mm)."""
    labels = {**{k: c.label for k, c in CONDITIONS.items()}, **{k: k.replace("_", " ") for k in HIP_CASES}}
    lines = ["| Method | " + " | ".join(labels.get(n, n) for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in [*LIFT_METHODS, "mean_pose"]:
        cells = [_fmt(*_agg(summary["sets"][n][key]["mpjpe"])) for n in names]
        lines.append(f"| {NAMES[key]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparisons_table(summary: dict, names: list[str]) -> str:
    """Markdown: per set, the paired differences of :data:`PAIRS` with their two CIs, then the sentences."""
    rows, sentences = [], []
    for n in names:
        for c in summary["sets"][n].get("comparisons", []):
            (sl, sh), (bl, bh) = c["ci_seeds"], c["ci_bootstrap"]
            per_seed = ", ".join(f"{d:+.1f}" for d in c["per_seed"])
            rows.append(f"| {n} | {NAMES[c['a']]} − {NAMES[c['b']]} | {per_seed} | {c['mean']:+.1f} | "
                        f"[{sl:+.1f}, {sh:+.1f}] | [{bl:+.1f}, {bh:+.1f}] |")  # fmt: skip
            sentences.append(f"- {n}: {c['sentence']}")
    if not rows:
        return "(one seed: no paired comparison; run with --seeds 3 or more)"
    head = ["| Set | A − B | per seed (mm) | mean (mm) | 95% CI over seeds (t) | 95% CI over test sequences |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    return "\n".join([*head, *rows, "", *sentences])


def report_markdown(summary: dict, cfg: LiftConfig) -> str:
    """The lifting run's ``report.md``."""
    conds, hips = [*CONDITIONS], ["exact", *HIP_CASES]
    h = cfg.augment.hips
    minutes = ", ".join(f"{m:.1f}" for m in summary["minutes_per_seed"])
    parts = [
        "# structpose lifting report (2D keypoints -> 3D)", "",
        f"{summary['seeds']} seed(s); minutes per seed (training and evaluation, this machine): {minutes}.",
        "Mean MPJPE (mm) over test actions; ± is the std over seeds. Test views: the embedded benchmark's test "
        "frames and cameras (protocol " + cfg.data.protocol + "), 2D from the camera model.",
        _pairs_note(cfg), "",
        "## Table 1 analogue (exact 2D)", "", summary["_tables"]["table1"], "",
        "## Table 2 analogue (limb-length-ratio errors, exact 2D)", "", summary["_tables"]["table2"], "",
        "## Under 2D noise and hidden joints", "", conditions_table(summary, conds), "",
        "![MPJPE against 2D noise](lift_noise.png)", "",
        "### Paired differences", "", comparisons_table(summary, conds), "",
        f"## Sensitivity to the detector's hip offset (trained around width {h.width}, rise {h.rise}, "
        f"jitter ± {h.jitter})", "",
        "Exact 2D with the hips placed otherwise than the lifters were trained around (`structpose.lift.inputs`).",
        "", conditions_table(summary, hips), "",
    ]  # fmt: skip
    if "unseen" in summary["_tables"]:
        parts += ["## Unseen motions (exact 2D; not in the Table 1 mean)", "", summary["_tables"]["unseen"], ""]
    if "store" in summary["_tables"]:
        parts += [f"## The test split of {cfg.data.test_store} (its own 2D ground truth, no hip offset)", "",
                  summary["_tables"]["store"], "", comparisons_table(summary, ["store"]), ""]  # fmt: skip
    parts += ["## Configuration", "", "```yaml", cfg.to_yaml().rstrip(), "```", ""]
    return "\n".join(parts)


def noise_figure(summary: dict, path: Path) -> Path:
    """A PNG: mean MPJPE (mm; mean and std over seeds) against the 2D noise (px), one line per lifting method."""
    import matplotlib.pyplot as plt

    from structpose.viz import save_figure

    levels = [(0.0, "exact"), (5.0, "noise5"), (10.0, "noise10"), (20.0, "noise20")]
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for key in LIFT_METHODS:
        values = np.array([summary["sets"][name][key]["mpjpe"] for _, name in levels])  # (levels, seeds)
        spread = values.std(1, ddof=1) if values.shape[1] > 1 else np.zeros(len(levels))
        ax.errorbar([x for x, _ in levels], values.mean(1), yerr=spread, marker="o", capsize=3, label=NAMES[key])
    ax.set_xlabel("2D noise σ (px, 1000-px image)")
    ax.set_ylabel("MPJPE (mm), mean over actions")
    ax.set_title(f"Lifting under 2D noise ({summary['seeds']} seed(s))", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _pairs_note(cfg: LiftConfig) -> str:
    f = cfg.data.pair_fraction
    if f >= 1:
        return "Every lifter trained on all training views; the pose prior on their 3D poses."
    return (
        f"**Scarce pairs**: the lifters trained on {100 * f:g}% of the training views (2D/3D pairs), repeated to "
        "the steps of the whole; the pose prior on the 3D poses of all of them."
    )


def _export(run: RunLayout) -> None:
    from structpose.lift.release import export_lifter

    for key in ("lift_ours", "lift_direct"):
        export_lifter(run.root, key, run.model(key))
