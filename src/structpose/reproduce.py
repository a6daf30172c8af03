"""``structpose reproduce``: the paper's experiment end to end, written up as a run folder.

Builds the embedded default dataset if missing, trains the auto-encoder, the CNN -> latent regressor, the
fine-tuned network, the direct CNN baseline and LinKDE, evaluates them on the held-out subjects and writes
``report.md`` (Table 1 and Table 2 analogues, the paper's figure analogue, loss curves, config, environment).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from structpose.data.dataset import PoseImageDataset
from structpose.data.perturb import Occlusion, Truncation
from structpose.data.store import StoreError, list_shards, open_store
from structpose.errors import ConfigError
from structpose.files import atomic_path, write_text
from structpose.metrics import METRIC_CONVENTIONS
from structpose.report import (
    METHOD_NAMES,
    TEST_SETS,
    Evaluation,
    Figure2Data,
    RunSummary,
    TestSetResults,
    evaluate,
    linkde_key,
    write_report,
)
from structpose.train.config import ExperimentConfig, load_config
from structpose.train.data import Splits, load_splits
from structpose.train.layout import FAILED, RunLayout, SeedLayout, check_config

__all__ = ["FAILED", "reproduce", "run_seed", "test_sets"]

PAPER_NOTE = (
    "The paper's own figures are on Human3.6M (real images, 15 actions, subjects S9/S11) and are **not "
    "comparable** with these numbers (rendered images of CMU and Bandai-Namco mocap, other actions). "
    "On Human3.6M the paper reports the ordering OURS (with FT) < CNN < LinKDE in mean MPJPE, and OURS "
    "preserving limb-length ratios better than CNN and LinKDE; see Tables 1 and 2 of Tekin et al. (2016)."
)


def ensure_dataset(cfg: ExperimentConfig, data: Path | None, preset: str, workers: int = 2) -> Path:
    """The dataset directory to use; renders the embedded default (``structpose data synth``) under
    ``cfg.data.protocol`` if missing. A rendered store of another protocol is refused (numbers of two
    benchmark versions are never mixed)."""
    root = Path(data) if data is not None else Path(cfg.data.root)
    try:
        for split in ("train", "test"):
            list_shards(root, split)
        _check_protocol(root, cfg.data.protocol, cfg.data.renderer)
        return root
    except StoreError:
        if data is not None:
            raise
    from structpose.data.synth import SYNTH_PRESETS, resolve_preset, synthesize

    name = preset if preset in SYNTH_PRESETS else "quick"
    scfg = resolve_preset(name, size=cfg.cnn.in_size, protocol=cfg.data.protocol, renderer=cfg.data.renderer)
    print(f"[reproduce] rendering the embedded default dataset ({name}, protocol {scfg.protocol}, renderer "
          f"{scfg.renderer}) into {root}", flush=True)  # fmt: skip
    synthesize(root, scfg, workers=workers, preset=name)
    return root


def _check_protocol(root: Path, protocol: str, renderer: str = "capsule") -> None:
    """Refuse a store rendered by ``structpose data synth`` under another protocol or by another renderer
    (stores without the attributes predate them: v1, capsule); imported data (Human3.6M) has neither."""
    with open_store(list_shards(root, "test")[0]) as store:  # the attributes alone: no metadata is read
        attrs = store.attrs
    if attrs.get("created_by") != "structpose data synth":
        return
    found = attrs.get("protocol", "v1")
    if found != protocol:
        raise ConfigError(f"holds the embedded benchmark under protocol {found}, this run asks for {protocol}: "
                          f"pass --set data.protocol={found}, or another --data / data.root", root)  # fmt: skip
    drawn = attrs.get("renderer", "capsule")
    if drawn != renderer:
        raise ConfigError(f"holds the embedded benchmark drawn by the {drawn} renderer, this run asks for "
                          f"{renderer}: pass --renderer {drawn}, or another --data / data.root", root)  # fmt: skip


def environment() -> dict:
    """Versions and hardware, for the report."""
    import lightning
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "command": " ".join(sys.argv),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "lightning": lightning.__version__,
        "numpy": np.__version__,
        "git_commit": commit,
    }


#: Predictions of one seed: {test set ("test", "unseen", "occluded", "truncated"): {method: (N, 17, 3) mm}}.
SeedPredictions = dict[str, dict[str, np.ndarray]]


def run_seed(cfg: ExperimentConfig, folder: SeedLayout, resume: bool, sets: tuple[str, ...] | None = None,
             reference: bool = True, reuse: tuple[SeedLayout, ...] = ()) -> SeedPredictions:  # fmt: skip
    """Train (or load) every method of ``cfg.methods`` in one pipeline folder; return its predictions on the
    sets of :func:`test_sets` (``sets``: only those), in store order, with the reference rows (mean training
    pose, nearest-training-pose oracle) when ``reference``. Saved to the folder's ``predictions.npz`` (keys
    ``SET/METHOD``), so every seed's per-frame errors can be recomputed. ``reuse``: pipeline folders whose
    finished stages may stand for this folder's (:func:`structpose.train.pipeline.train_all`)."""
    from structpose.metrics import mean_pose_baseline, nearest_pose_oracle
    from structpose.train.pipeline import train_methods

    splits = load_splits(cfg.data, cfg.cnn.in_size)
    methods = train_methods(cfg, folder, resume=resume, splits=splits, reuse=reuse)
    out: SeedPredictions = {}
    for name, ds in test_sets(splits, sets).items():
        preds = {k: m.predict_dataset(ds) for k, m in methods.items()}
        if not reference:
            pass
        elif name in ("occluded", "truncated"):  # the reference rows see poses, not images: those of "test"
            preds |= {k: out["test"][k] for k in ("mean_pose", "oracle")}
        else:
            preds["mean_pose"] = mean_pose_baseline(splits.train.poses3d, len(ds))
            preds["oracle"] = nearest_pose_oracle(splits.train.poses3d, ds.poses3d)
        out[name] = preds
    with atomic_path(folder.predictions) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{f"{k}/{m}": v for k, preds in out.items() for m, v in preds.items()})
    return out


def test_sets(splits: Splits, only: tuple[str, ...] | None = None) -> dict[str, PoseImageDataset]:
    """The test sets every seed is scored on (``only``: those of them): ``test``, its test-time regimes
    ``occluded`` and ``truncated`` (:mod:`structpose.data.perturb`, damage seeded 0 for every seed: paired),
    and ``unseen`` (when present)."""
    sets = {"test": splits.test, "occluded": splits.test.perturbed(Occlusion(seed=0)),
            "truncated": splits.test.perturbed(Truncation(seed=0))}  # fmt: skip
    sets |= {"unseen": splits.unseen} if splits.unseen is not None else {}
    return {k: v for k, v in sets.items() if only is None or k in only}


def run_per_action(cfg: ExperimentConfig, run_dir: Path, resume: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One model per action (the paper's protocol): returns predictions for the test samples whose action
    has at least two training sequences, and the boolean mask (N,) of those samples in the test split."""
    test_actions = PoseImageDataset(cfg.data.root, "test").action.astype(str)
    train = PoseImageDataset(cfg.data.root, "train")
    # an action needs 2+ training sequences: validation takes whole sequences
    sequences = Counter(a for a, _ in {(str(a), str(q)) for a, q in zip(train.action, train.sequence, strict=True)})
    trainable = {a for a, count in sequences.items() if count >= 2}
    actions = sorted(set(test_actions) & trainable)
    mask = np.isin(test_actions, actions)
    preds: dict[str, np.ndarray] = {}
    for action in actions:
        acfg = replace(cfg, data=replace(cfg.data, actions=(str(action),)))
        slug = "".join(c if c.isalnum() else "_" for c in action)
        part = run_seed(acfg, SeedLayout(run_dir / "per_action" / slug), resume, sets=("test",))["test"]
        rows = np.flatnonzero(test_actions[mask] == action)
        for key, value in part.items():
            preds.setdefault(key, np.zeros((mask.sum(), *value.shape[1:]), np.float32))[rows] = value
    return preds, mask


def reproduce(
    preset: str = "quick",
    data: Path | None = None,
    out: Path | None = None,
    overrides: list[str] | None = None,
    resume: bool = False,
    ablations: list[str] | None = None,
    seeds: int | None = None,
    per_action: bool = False,
) -> Path:
    """Run the experiment of ``preset`` and write ``run_dir/report.md``; returns the run folder. With
    ``methods=[]`` and ``ablations``, only the ablation grid runs (no main run, no report.md).

    Raises:
        ConfigError: ``methods=[]`` without ``ablations`` (nothing to train).
    """
    cfg = load_config(preset, overrides or [])
    if not cfg.methods and ablations is None:
        raise ConfigError("methods=[] trains nothing: name methods, or pass --ablations for a grid without a main run")
    run = RunLayout(Path(out) if out is not None else Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    _claim(run, resume)
    root = ensure_dataset(cfg, data, preset)
    cfg = replace(cfg, data=replace(cfg.data, root=str(root.resolve())))
    if resume:
        check_config(cfg.to_yaml(), run.root)  # before anything is written: a refused resume changes nothing
    env = environment()
    write_text(run.config, cfg.to_yaml())
    write_text(run.environment, json.dumps(env, indent=1))
    try:
        _run(cfg, run, preset, resume, env, ablations=ablations, seeds=seeds, per_action=per_action)
    except BaseException as err:
        _mark_failed(run, err)
        raise
    run.failed.unlink(missing_ok=True)
    return run.root


def _claim(run: RunLayout, resume: bool) -> None:
    """A new run needs a new folder, except one whose earlier attempt failed before any stage started."""
    if not run.root.exists() or resume:
        return
    if run.failed.is_file() and not run.has_progress():
        run.failed.unlink()  # an identical retry of a run that never trained just works
        return
    raise FileExistsError(f"run folder {run.root} exists: choose another --out, or pass --resume to continue it")


def _mark_failed(run: RunLayout, err: BaseException) -> None:
    """Write the run's ``FAILED.txt`` (what failed, when) and give ``err`` the sentence on how to go on;
    checkpoints are never deleted, so ``--resume`` continues where the run stopped."""
    run_dir = run.root
    what = f"{type(err).__name__}: {err}"
    write_text(run.failed, f"{time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n")
    if run.has_progress():
        hint = (f"the run folder {run_dir} keeps what was trained: continue it with `structpose reproduce "
                f"--out {run_dir} --resume` and the same --preset, --data and --set options")  # fmt: skip
    else:
        hint = f"nothing was trained yet: the same command (with --out {run_dir}) starts the run again"
    err.resume_hint = hint  # read by structpose.cli's error boundary


def _run(cfg: ExperimentConfig, run: RunLayout, preset: str, resume: bool, env: dict, *,
         ablations: list[str] | None, seeds: int | None, per_action: bool) -> None:  # fmt: skip
    """Train and evaluate every seed of ``cfg`` in ``run_dir``, write the report (and the ablations)."""
    if cfg.methods:
        _main_run(cfg, run, preset, resume, env, seeds=seeds, per_action=per_action)
    if ablations is not None:
        from structpose.ablations import run_ablations

        run_ablations(cfg, run, n_seeds=max(3, seeds or 1), resume=resume, keys=ablations or None)


def _main_run(cfg: ExperimentConfig, run: RunLayout, preset: str, resume: bool, env: dict, *,
              seeds: int | None, per_action: bool) -> None:  # fmt: skip
    """Train and evaluate every seed of ``cfg`` in ``run_dir`` and write its report."""
    root = Path(cfg.data.root)
    test = PoseImageDataset(root, "test")
    n_seeds = seeds or 1
    evaluations: dict[str, dict[str, list[Evaluation]]] = {}
    sets: dict[str, PoseImageDataset] = {}
    first: SeedPredictions = {}
    t0 = time.time()
    for s in range(n_seeds):  # seed by seed: a resumed run reloads the seeds that finished
        scfg = replace(cfg, trainer=replace(cfg.trainer, seed=cfg.trainer.seed + s))
        folder = run.seed(scfg.trainer.seed)
        if per_action:
            preds, mask = run_per_action(scfg, folder.root, resume)
            sets["test"], out = test.subset(np.flatnonzero(mask)), {"test": preds}
        else:
            out = run_seed(scfg, folder, resume)
            for name in out.keys() - sets.keys():  # opened once: the regimes share the test set's poses
                sets[name] = PoseImageDataset(root, "unseen") if name == "unseen" else test
        for name, preds in out.items():
            ds = sets[name]
            for key, value in preds.items():
                evaluations.setdefault(name, {}).setdefault(key, []).append(evaluate(value, ds.poses3d, ds.action))
        first = first or out
    notes = [PAPER_NOTE]
    if per_action:
        notes.append("Protocol: one model per action (`--per-action`), as the paper trained; test samples of "
                     "actions with fewer than two training sequences are left out of every row.")  # fmt: skip
    summary = RunSummary(
        preset=preset, config_yaml=cfg.to_yaml(), data_root=str(root), n_seeds=n_seeds,
        minutes=(time.time() - t0) / 60, environment=env,
        benchmark=benchmark_version(test, cfg), test=_results("test", sets["test"], evaluations["test"]),
        regimes=[_results(name, sets[name], evaluations[name]) for name in TEST_SETS if name in evaluations],
        figure2=_figure2(sets["test"], first["test"]), notes=notes,
        human36m=test.shard_attrs[0].get("created_by") == "structpose data h36m",
    )  # fmt: skip
    write_report(run.root, summary)
    if not per_action:
        _export(run, cfg)


def _export(run: RunLayout, cfg: ExperimentConfig) -> None:
    """The run's OURS and CNN networks as released models (``RUN/models/METHOD``: model.json, safetensors)."""
    from structpose.release import export_model

    for key in ("ours", "cnn"):
        if key in cfg.methods:
            export_model(run.root, key, run.model(key))


def _results(name: str, ds: PoseImageDataset, evaluations: dict[str, list[Evaluation]]) -> TestSetResults:
    sequences = np.char.add(np.char.add(ds.subject.astype(str), "/"), ds.sequence.astype(str))
    order = [k for k in METHOD_NAMES if k in evaluations]
    return TestSetResults(name, ds.action.astype(str), sequences, {k: evaluations[k] for k in order})


def _figure2(test: PoseImageDataset, preds: dict[str, np.ndarray], k: int = 5) -> Figure2Data:
    pick = np.sort(np.random.default_rng(0).choice(len(test), size=min(k, len(test)), replace=False))
    shown = {m: preds[m][pick] for m in (linkde_key(preds), "cnn", "ours") if m in preds}
    return Figure2Data(test.images(pick), test.joints2d[pick], test.poses3d[pick], shown)


def benchmark_version(test: PoseImageDataset, cfg: ExperimentConfig) -> str:
    """The benchmark a run measured: for the embedded default, its protocol and renderer version; the
    metric conventions always. Numbers of two versions are never compared in one table."""
    attrs = test.shard_attrs[0]
    if attrs.get("created_by") == "structpose data synth":
        protocol, version = attrs.get("protocol", "v1"), attrs.get("renderer_version", 1)
        renderer = f"{attrs.get('renderer', 'capsule')} v{version}"
        data = f"embedded default, protocol {protocol}, renderer {renderer}, sources {attrs.get('sources', '?')}"
    else:
        data = f"{attrs.get('source', 'imported data')} ({cfg.data.root})"
    return f"{data}; metrics: {METRIC_CONVENTIONS}"
