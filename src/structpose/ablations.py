"""``structpose reproduce --ablations``: where does the pose prior help, and by how much?

Each setting (:data:`ABLATIONS`) is the preset with a few config overrides, trained over several seeds
through the same per-seed path as ``reproduce`` (:func:`structpose.reproduce.run_seed`) with the methods
OURS (with and without fine-tuning) and the direct CNN. A setting retrains only the stages its overrides
change: the others are taken from the main run's seed folders or another setting's
(:func:`structpose.train.pipeline.train_all`'s ``reuse``), so the direct CNN is shared by every setting of
the prior, and ``dataP`` shares its CNN with ``poses_dataP``. Every setting keeps the preset's
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

from structpose.errors import ConfigError, InputError
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
    test = _test_set(cfg)  # every setting scores on the base run's test store (data.root is never overridden)
    meta = _provenance(run, base, cfg, test)
    rows: list[dict] = []
    for key in keys:
        setting = ABLATIONS[key]
        scores: dict[str, list[float]] = {m: [] for m in ARMS}
        shares: list[float] = []
        for s in range(n_seeds):
            scfg = load_config(base, list(setting.overrides))
            scfg = replace(scfg, trainer=replace(scfg.trainer, seed=cfg.trainer.seed + s))
            folder = run.ablation(key, scfg.trainer.seed)
            reuse = _reuse(run, key, scfg.trainer.seed)
            preds = run_seed(scfg, folder, resume, sets=("test",), reference=False, reuse=reuse)["test"]
            for m in ARMS:
                scores[m].append(_mean_mpjpe(preds[m], test))
            shares.append(penalty_share((folder, *reuse), scfg))
        rows.append({"key": key, "regime": setting.regime, "name": setting.name,
                     "overrides": list(setting.overrides), "mpjpe": scores, "penalty_share": shares})  # fmt: skip
        write_text(run.ablations_md, ablation_table(rows, n_seeds))
        write_text(run.root / f"{ABLATIONS_DIR}.json", json.dumps(meta | {"seeds": n_seeds, "rows": rows}, indent=1))
    return run.ablations_md


def _provenance(run: RunLayout, base: Path, cfg: ExperimentConfig, test) -> dict:
    """What ``ablations.json`` needs to stand without its run folder: the benchmark version, the commit and
    command of the run (its ``environment.json``), and the base configuration with its SHA-256."""
    import hashlib

    from structpose.reproduce import benchmark_version

    env = json.loads(run.environment.read_text()) if run.environment.is_file() else {}
    text = base.read_text()
    return {"benchmark": benchmark_version(test, cfg), "git_commit": env.get("git_commit", ""),
            "command": env.get("command", ""), "base_config_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "base_config": text}  # fmt: skip


def _reuse(run: RunLayout, key: str, seed: int) -> tuple[SeedLayout, ...]:
    """The folders of seed ``seed`` whose finished stages setting ``key`` may take (when their inputs are
    its own, :func:`structpose.train.pipeline.train_all`): the main run's, then every other setting's, so
    that e.g. ``data5`` takes the direct CNN trained by ``poses_data5`` (the AE's poses are not its input)."""
    return (run.seed(seed), *(run.ablation(k, seed) for k in ABLATIONS if k != key))


def _test_set(cfg: ExperimentConfig):
    from structpose.data.dataset import PoseImageDataset

    return PoseImageDataset(cfg.data.root, "test")


def _mean_mpjpe(pred: np.ndarray, test) -> float:
    """MPJPE (mm) averaged per action, then over actions, as the report's Table 1."""
    errors = pose_error(pred, test.poses3d, alignment="none", reduce=False)
    return float(np.mean(list(per_action(errors, test.action.astype(str)).values())))


def penalty_share(folders: tuple[SeedLayout, ...], cfg: ExperimentConfig) -> float:
    """The contractive penalty's share ``lam * ||J||^2 / loss`` of the auto-encoder's last validation loss
    (clean inputs) in the fine-tuning log of the first of ``folders`` that trained ``cfg``'s auto-encoder
    (same stage inputs; a reused stage's log stays in its source folder); NaN without any."""
    from structpose.train.pipeline import stage_inputs

    mine = stage_inputs(cfg, "ae_finetune")
    same = (f for f in folders if f.config.is_file() and stage_inputs(load_config(f.config), "ae_finetune") == mine)
    found = (sorted((f.logs / "ae_finetune").glob("version_*/metrics.csv")) for f in same)
    logs = next((x for x in found if x), [])
    rows = [r for log in logs for r in csv.DictReader(log.open()) if r.get("val/loss") and r.get("val/contractive")]
    if not rows:
        return float("nan")
    last = rows[-1]
    return cfg.ae.lam * float(last["val/contractive"]) / float(last["val/loss"])


def _ms(values: list[float], digits: int = 1) -> str:
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1):.{digits}f}" if len(arr) > 1 else f"{arr.mean():.{digits}f}"


def ablation_table(rows: list[dict], n_seeds: int | None = None) -> str:
    """Markdown of the settings run so far: MPJPE per arm (mean ± std over seeds), OURS-FT / CNN with its
    95% CI over seeds (t) and whether the CI excludes 1, and the penalty's share of the AE loss."""
    counts = {len(r["mpjpe"]["cnn"]) for r in rows} if n_seeds is None else {n_seeds}
    over = f"{counts.pop()} seeds" if len(counts) == 1 else "the seeds of each row"
    lines = [f"# Ablations (MPJPE in mm, mean over test actions; mean ± std over {over}; every setting at "
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
              "log of the AE it used is in no folder of the run)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def load_grids(paths: list[Path]) -> tuple[dict, list[dict]]:
    """The rows of one or more grid files (a run's ``ablations.json``, or its copy under ``results/``), in
    the order of :data:`ABLATIONS` (regime by regime, whichever file a row came from), a setting once (the
    first file's); with the first file's provenance and ``sources``, the (path, commit) of every file.

    Raises:
        InputError: a file is unreadable, is not a grid, or measured another benchmark version or another
            base configuration (the data folder aside) than the first: their numbers are not one table.
    """
    import yaml

    def base(grid: dict) -> dict:
        cfg = yaml.safe_load(grid["base_config"])
        cfg["data"].pop("root", None)  # where the store lies, not what it holds (the benchmark says that)
        return cfg

    first: dict = {}
    rows: dict[str, dict] = {}
    sources: list[tuple[str, str]] = []
    for path in map(Path, paths):
        try:
            grid = json.loads(path.read_text())
            grid_rows, _ = grid["rows"], base(grid)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise InputError(f"{path}: not a grid of `structpose reproduce --ablations` ({err})") from err
        if not first:
            first = grid
        elif grid.get("benchmark") != first.get("benchmark"):
            raise InputError(f"{path}: benchmark {grid.get('benchmark')!r} is not {paths[0]}'s "
                             f"{first.get('benchmark')!r}; numbers of two versions are never one table")  # fmt: skip
        elif base(grid) != base(first):
            raise InputError(f"{path}: its base configuration is not {paths[0]}'s; compare their base_config")
        sources.append((str(path), grid.get("git_commit", "")))
        for row in grid_rows:
            rows.setdefault(row["key"], row | {"source": str(path)})
    order = {key: i for i, key in enumerate(ABLATIONS)}
    ordered = sorted(rows.values(), key=lambda row: order.get(row["key"], len(order)))
    return {k: v for k, v in first.items() if k != "rows"} | {"sources": sources}, ordered


def grid_figure(rows: list[dict], path: Path) -> Path | None:
    """OURS-FT / CNN per setting with its 95% CI over seeds (t) as error bars, one colour per regime, and 1
    (no difference) and the paper's ratio as lines; None when no row has two seeds."""
    import matplotlib.pyplot as plt

    from structpose.paper import paper_ratios
    from structpose.viz import ratio_reference_lines, save_figure

    rows = [r for r in rows if len(r["mpjpe"]["cnn"]) > 1]
    if not rows:
        return None
    ratios = [paired_over_seeds(r["mpjpe"]["ours"], r["mpjpe"]["cnn"], kind="ratio") for r in rows]
    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(4.2 + 0.55 * len(rows), 3.4))
    for regime in regimes:
        idx = [i for i, r in enumerate(rows) if r["regime"] == regime]
        mean = np.array([ratios[i].mean for i in idx])
        err = np.array(
            [[ratios[i].mean - ratios[i].ci_low for i in idx], [ratios[i].ci_high - ratios[i].mean for i in idx]]
        )
        ax.errorbar(idx, mean, yerr=err, fmt="o", capsize=4, color=colours(regimes.index(regime)), label=regime)
    ratio_reference_lines(ax, paper_ratios()["ours/cnn"])
    ax.set_xticks(range(len(rows)), [r["key"] for r in rows], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("OURS with FT / CNN (MPJPE)", fontsize=8)
    n = sorted({ratio.n for ratio in ratios})
    ax.set_title(f"per setting, 95% CI over {'/'.join(map(str, n))} seeds (below 1: the prior helps)", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the CIs, never over them
    fig.tight_layout()
    return save_figure(fig, path)


def write_grid(paths: list[Path], out: Path) -> Path:
    """``structpose ablations FILE...``: one table (``OUT/ablations.md``, with the files it came from and
    their commits) and its figure (``OUT/ablations.png``) from grid files of several runs; returns the table."""
    meta, rows = load_grids(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figure = grid_figure(rows, out / "ablations.png")
    sources = [f"- `{path}` (commit {commit[:10] or '?'})" for path, commit in meta["sources"]]
    text = [ablation_table(rows).rstrip(), "", f"Benchmark: {meta.get('benchmark', '?')}.", "",
            "From:", *sources, ""]  # fmt: skip
    if figure is not None:
        text += ["![OURS-FT / CNN per setting](ablations.png)", ""]
    return write_text(out / "ablations.md", "\n".join(text))
