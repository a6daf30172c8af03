"""``structpose reproduce --ablations``: where does the pose prior help, and by how much?

Each setting retrains the whole pipeline (both CNN arms with the same schedule and step budget) with a
few config overrides, over several seeds, and reports MPJPE of OURS (with and without fine-tuning) and of
the direct CNN, and the OURS/CNN ratio (< 1: the structured prediction helps).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from structpose.data.dataset import PoseImageDataset
from structpose.errors import ConfigError
from structpose.metrics import mpjpe
from structpose.train.config import ExperimentConfig, load_config

#: key -> (description, overrides). "preset" is the reference setting of the preset itself.
ABLATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "preset": ("preset", ()),
    "ae2": ("AE 2 layers 300-300", ("ae.hidden=[300,300]", "ae.noise_mm=[40,20]")),
    "width500": ("latent width 500", ("ae.hidden=[500]",)),
    "lam0": ("lambda 0", ("ae.lam=0",)),
    "lam1": ("lambda 1", ("ae.lam=1",)),
    "sigma0": ("sigma 0 mm", ("ae.noise_mm=[0]",)),
    "data5": ("train data 5%", ("data.train_fraction=0.05",)),
    "data20": ("train data 20%", ("data.train_fraction=0.2",)),
}


def run_ablations(
    cfg: ExperimentConfig, run_dir: Path, n_seeds: int = 2, resume: bool = False, keys: list[str] | None = None
) -> Path:
    """Train the settings ``keys`` of :data:`ABLATIONS` (default: all) for ``n_seeds`` seeds each; write
    ``run_dir/ablations.md``. The "preset" setting reuses the main run's seed folders when they are done."""
    from structpose.train.pipeline import predict, train_all

    keys = list(ABLATIONS) if not keys else keys
    unknown = [k for k in keys if k not in ABLATIONS]
    if unknown:
        raise ConfigError(f"unknown ablation(s) {unknown}; known: {', '.join(ABLATIONS)}")
    test = PoseImageDataset(cfg.data.root, "test")
    base = run_dir / "ablations" / "base_config.yaml"
    base.parent.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(base)
    rows = []
    for key in keys:
        name, overrides = ABLATIONS[key]
        scores: dict[str, list[float]] = {"ours": [], "ours_noft": [], "cnn": []}
        for s in range(n_seeds):
            scfg = load_config(base, list(overrides))
            scfg = replace(scfg, trainer=replace(scfg.trainer, seed=cfg.trainer.seed + s))
            if key == "preset":
                models = train_all(scfg, run_dir / f"seed{scfg.trainer.seed}", resume=True)
            else:
                models = train_all(scfg, run_dir / "ablations" / key / f"seed{scfg.trainer.seed}", resume=resume)
            for m in scores:
                scores[m].append(float(mpjpe(predict(models[m], test, batch_size=256), test.poses3d)))
        rows.append((name, overrides, scores))
        _write(rows, run_dir / "ablations.md", n_seeds)
    return run_dir / "ablations.md"


def _ms(values: list[float], digits: int = 1) -> str:
    arr = np.asarray(values)
    mean = f"{arr.mean():.{digits}f}"
    return f"{mean} ± {arr.std(ddof=1):.{digits}f}" if len(arr) > 1 else mean


def _write(rows, path: Path, n_seeds: int) -> None:
    lines = [
        f"# Ablations (MPJPE in mm over all test samples, mean ± std over {n_seeds} seeds; epochs as in the preset)",
        "",
        "| Setting | Overrides | OURS with FT | OURS no FT | CNN | OURS/CNN |",
        "|---|---|---|---|---|---|",
    ]
    for name, overrides, s in rows:
        ratios = [o / c for o, c in zip(s["ours"], s["cnn"], strict=True)]
        lines.append(f"| {name} | `{' '.join(overrides) or '-'}` | {_ms(s['ours'])} | {_ms(s['ours_noft'])} | "
                     f"{_ms(s['cnn'])} | {_ms(ratios, 3)} |")  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
