"""``structpose reproduce --ablations``: where does the pose prior help, and by how much?

Each setting (:data:`ABLATIONS`) is the preset with a few config overrides, trained over several seeds
through the same per-seed path as ``reproduce`` (:func:`structpose.reproduce.run_seed`) with the methods
OURS (with and without fine-tuning) and the direct CNN. A setting retrains only the stages its overrides
change: the others are taken from the main run's seed folders (:func:`structpose.train.pipeline.train_all`'s
``reuse``), so the direct CNN is shared by every setting of the prior. Every setting keeps the preset's
optimizer steps and learning-rate curve for the CNN arms (the data settings repeat their subset to the
full epoch, ``data.equal_steps``). ``ablations.md`` gives, per setting, MPJPE (mean over test actions) of
each arm, OURS-FT / CNN with its 95% CI over seeds and whether it is resolved, and the contractive
penalty's share of the auto-encoder's loss.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from structpose.errors import ConfigError
from structpose.files import write_text
from structpose.metrics import per_action, pose_error
from structpose.stats import paired_over_seeds
from structpose.train.config import ExperimentConfig, load_config
from structpose.train.layout import ABLATIONS as ABLATIONS_DIR
from structpose.train.layout import RunLayout, SeedLayout

ARMS = ("ours", "ours_noft", "cnn")
_EQUAL = "data.equal_steps=true"


@dataclass(frozen=True)
class Ablation:
    """A setting: what it tests (``regime``), its row name and its config overrides."""

    regime: str
    name: str
    overrides: tuple[str, ...] = ()


#: key -> setting, grouped by regime, in the order of priority of the benchmark.
ABLATIONS: dict[str, Ablation] = {
    "preset": Ablation("reference", "the preset"),
    **{
        f"data{p}": Ablation(
            "scarce images", f"{p}% of the training images, equal steps", (f"data.train_fraction={p / 100}", _EQUAL)
        )
        for p in (1, 5, 20)
    },  # fmt: skip
    "poses": Ablation(
        "abundant poses", "AE on library poses (all training frames, sampled cameras)", ("data.ae_poses=library",)
    ),  # fmt: skip
    **{
        f"poses_data{p}": Ablation(
            "abundant poses, scarce images",
            f"AE on library poses, {p}% of the images",
            ("data.ae_poses=library", f"data.train_fraction={p / 100}", _EQUAL),
        )
        for p in (1, 5, 20)
    },  # fmt: skip
    **{
        f"lam{k}": Ablation("the prior", f"lambda {v}", (f"ae.lam={v}",)) for k, v in (("0", 0), ("1", 1), ("10", 10))
    },  # fmt: skip
    **{f"sigma{v}": Ablation("the prior", f"sigma {v} mm", (f"ae.noise_mm=[{v}]",)) for v in (0, 20, 80)},
    "ae300": Ablation(
        "the prior", "AE 300-300 (noise on the input only)", ("ae.hidden=[300,300]", "ae.noise_mm=[40,20]")
    ),  # fmt: skip
    "ae300_every": Ablation(
        "the prior",
        "AE 300-300, noise on every layer's input in joint fine-tuning",
        ("ae.hidden=[300,300]", "ae.noise_mm=[40,20]", "ae.noise=every_layer"),
    ),  # fmt: skip
}


def run_ablations(
    cfg: ExperimentConfig, run: RunLayout, n_seeds: int = 3, resume: bool = False, keys: list[str] | None = None
) -> Path:
    """Train the settings ``keys`` of :data:`ABLATIONS` (default: all) for ``n_seeds`` seeds each, reusing
    the stages of the main run's seed folders they share; write ``ablations.md`` and ``ablations.json``
    (per-seed numbers) in the run folder after each setting, so a long grid can be read while it runs."""
    from structpose.reproduce import run_seed

    keys = list(ABLATIONS) if not keys else keys
    unknown = [k for k in keys if k not in ABLATIONS]
    if unknown:
        raise ConfigError(f"unknown ablation(s) {unknown}; known: {', '.join(ABLATIONS)}")
    base = run.root / ABLATIONS_DIR / "base_config.yaml"
    base.parent.mkdir(parents=True, exist_ok=True)
    write_text(base, replace(cfg, methods=ARMS).to_yaml())
    rows: list[dict] = []
    for key in keys:
        setting = ABLATIONS[key]
        scores: dict[str, list[float]] = {m: [] for m in ARMS}
        shares: list[float] = []
        for s in range(n_seeds):
            scfg = load_config(base, list(setting.overrides))
            scfg = replace(scfg, trainer=replace(scfg.trainer, seed=cfg.trainer.seed + s))
            folder = run.ablation(key, scfg.trainer.seed)
            reuse = (run.seed(scfg.trainer.seed), run.ablation("preset", scfg.trainer.seed))
            preds = run_seed(scfg, folder, resume, sets=("test",), reference=False, reuse=reuse)["test"]
            test = _test_set(scfg)
            for m in ARMS:
                scores[m].append(_mean_mpjpe(preds[m], test))
            shares.append(penalty_share((folder, *reuse), scfg.ae.lam))
        rows.append({"key": key, "regime": setting.regime, "name": setting.name,
                     "overrides": list(setting.overrides), "mpjpe": scores, "penalty_share": shares})  # fmt: skip
        write_text(run.ablations_md, ablation_table(rows, n_seeds))
        write_text(run.root / f"{ABLATIONS_DIR}.json", json.dumps({"seeds": n_seeds, "rows": rows}, indent=1))
    return run.ablations_md


def _test_set(cfg: ExperimentConfig):
    from structpose.data.dataset import PoseImageDataset

    return PoseImageDataset(cfg.data.root, "test")


def _mean_mpjpe(pred: np.ndarray, test) -> float:
    """MPJPE (mm) averaged per action, then over actions, as the report's Table 1."""
    errors = pose_error(pred, test.poses3d, alignment="none", reduce=False)
    return float(np.mean(list(per_action(errors, test.action.astype(str)).values())))


def penalty_share(folders: tuple[SeedLayout, ...], lam: float) -> float:
    """The contractive penalty's share ``lam * ||J||^2 / loss`` of the auto-encoder's last validation loss
    (clean inputs) in the fine-tuning log of the first of ``folders`` that has one (a reused stage's log
    stays in its source folder); NaN without any."""
    found = (sorted((f.logs / "ae_finetune").glob("version_*/metrics.csv")) for f in folders)
    logs = next((x for x in found if x), [])
    rows = [r for log in logs for r in csv.DictReader(log.open()) if r.get("val/loss") and r.get("val/contractive")]
    if not rows:
        return float("nan")
    last = rows[-1]
    return lam * float(last["val/contractive"]) / float(last["val/loss"])


def _ms(values: list[float], digits: int = 1) -> str:
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}" if len(arr) > 1 else f"{arr.mean():.{digits}f}"


def ablation_table(rows: list[dict], n_seeds: int) -> str:
    """Markdown of the settings run so far: MPJPE per arm (mean ± std over seeds), OURS-FT / CNN with its
    95% CI over seeds (t) and whether the CI excludes 1, and the penalty's share of the AE loss."""
    lines = [f"# Ablations (MPJPE in mm, mean over test actions; mean ± std over {n_seeds} seeds; every setting at "
             "the preset's optimizer steps and learning-rate curve)", "",
             "| Regime | Setting | Overrides | OURS with FT | OURS no FT | CNN | OURS/CNN, 95% CI | resolved? | "
             "penalty share |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        s = r["mpjpe"]
        ratio = paired_over_seeds(s["ours"], s["cnn"], kind="ratio")
        ci = f"{ratio.mean:.3f} [{ratio.ci_low:.3f}, {ratio.ci_high:.3f}]" if ratio.n > 1 else f"{ratio.mean:.3f}"
        verdict = "—" if ratio.n < 2 else ("yes: OURS better" if ratio.ci_high < 1 else
                                           "yes: CNN better" if ratio.ci_low > 1 else "no")  # fmt: skip
        share = np.nanmean(r["penalty_share"]) if np.isfinite(r["penalty_share"]).any() else float("nan")
        lines.append(f"| {r['regime']} | {r['name']} | `{' '.join(r['overrides']) or '-'}` | {_ms(s['ours'])} | "
                     f"{_ms(s['ours_noft'])} | {_ms(s['cnn'])} | {ci} | {verdict} | "
                     f"{'—' if np.isnan(share) else f'{100 * share:.1f}%'} |")  # fmt: skip
    lines += ["", "OURS/CNN below 1: the structured prior helps. \"resolved\": the 95% CI over seeds excludes 1. "
              "Penalty share: λ‖J‖² over the AE's validation loss at the end of its fine-tuning (— when the "
              "AE stage was reused from the main run, whose share is the preset's row)."]  # fmt: skip
    return "\n".join(lines) + "\n"
