"""The run folder: every file and folder a run writes is named here, and so is the resume rule.

A run folder of ``structpose reproduce`` (:class:`RunLayout`)::

    RUN/
      config.yaml          the resolved configuration (a resume must pass the same one)
      environment.json     versions and hardware
      report.md results.json figure2.png loss_curves.png regimes.png
      FAILED.txt           only while the last attempt failed (what, when)
      ablations.md  ablations/KEY/seedN/...
      models/METHOD/       released models (model.json + model.safetensors)
      seedN/               one seed: the pipeline's folder (below)

A pipeline folder (one seed, :class:`SeedLayout`)::

    seedN/
      config.yaml          that seed's resolved configuration
      STAGE/               one per stage: ae_pretrain{i}, ae_finetune, latent, finetune, direct, structnet,
        last.ckpt            linkde, linkde_knn. A trained stage rewrites last.ckpt every epoch;
        model.safetensors    a FINISHED stage has its weights (and, for a fitted method, selection.json)
        selection.json
      logs/STAGE/version_k/metrics.csv
      predictions.npz      {SET/METHOD: (N, 17, 3) mm} of every test set

**The resume rule** (:func:`resume_or_fit`, the one copy): a stage whose finished files exist is loaded,
any other is fitted (a trained stage continues from its ``last.ckpt``); and a folder continues only with
the configuration it was started with (:func:`check_config`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from structpose.errors import ConfigError

CONFIG = "config.yaml"
ENVIRONMENT = "environment.json"
REPORT = "report.md"
RESULTS = "results.json"
FAILED = "FAILED.txt"
PREDICTIONS = "predictions.npz"
ABLATIONS = "ablations"
MODELS = "models"
LAST = "last.ckpt"
WEIGHTS = "model.safetensors"
SELECTION = "selection.json"
LOGS = "logs"

T = TypeVar("T")

#: the stages in the order the pipeline runs them (``ae_pretrain{i}`` by layer ``i``); a name not listed sorts last
STAGE_ORDER = ("ae_pretrain", "ae_finetune", "latent", "finetune", "direct", "structnet", "linkde", "linkde_knn")


def stage_rank(name: str) -> tuple[int, int, str]:
    """Sort key of a stage folder name in pipeline order: ``sorted(names, key=stage_rank)``."""
    base = name.rstrip("0123456789")
    layer = int(name[len(base) :]) if base == "ae_pretrain" and name != base else 0
    rank = STAGE_ORDER.index(base) if base in STAGE_ORDER else len(STAGE_ORDER)
    return rank, layer, name


@dataclass(frozen=True)
class SeedLayout:
    """The folder of one pipeline (one seed): stages, logs, predictions."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS

    @property
    def logs(self) -> Path:
        return self.root / LOGS

    def stage(self, name: str) -> Path:
        """The folder of stage ``name``."""
        return self.root / name

    def weights(self, name: str) -> Path:
        """The finished weights of stage ``name``."""
        return self.root / name / WEIGHTS

    def selection(self, name: str) -> Path:
        """What a fitted stage chose on validation (its hyper-parameters and their scores)."""
        return self.root / name / SELECTION


@dataclass(frozen=True)
class RunLayout:
    """The folder of a ``structpose reproduce`` run: seeds, report, ablations, released models."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    config = property(lambda self: self.root / CONFIG)
    environment = property(lambda self: self.root / ENVIRONMENT)
    report = property(lambda self: self.root / REPORT)
    results = property(lambda self: self.root / RESULTS)
    failed = property(lambda self: self.root / FAILED)
    ablations_md = property(lambda self: self.root / f"{ABLATIONS}.md")

    def seed(self, seed: int) -> SeedLayout:
        """The pipeline folder of initialisation seed ``seed``."""
        return SeedLayout(self.root / f"seed{seed}")

    def ablation(self, key: str, seed: int) -> SeedLayout:
        """The pipeline folder of ablation setting ``key`` at seed ``seed``."""
        return SeedLayout(self.root / ABLATIONS / key / f"seed{seed}")

    def model(self, method: str) -> Path:
        """The released-model folder of ``method``."""
        return self.root / MODELS / method

    def figure(self, name: str) -> Path:
        return self.root / f"{name}.png"

    def seeds(self) -> list[SeedLayout]:
        """The seed folders present, in seed order."""
        found = [p for p in self.root.glob("seed*") if p.is_dir() and p.name[4:].isdigit()]
        return [SeedLayout(p) for p in sorted(found, key=lambda p: int(p.name[4:]))]

    def has_progress(self) -> bool:
        """Whether any stage of the run started (a checkpoint or finished weights exist under it)."""
        return any(True for pattern in ("*.ckpt", "*.safetensors") for _ in self.root.rglob(pattern))


def pipeline_folder(path: Path, stage: str) -> SeedLayout:
    """The pipeline folder holding a finished ``stage``: ``path`` itself, or its first ``seed*`` folder.

    Raises:
        FileNotFoundError: neither holds the stage's weights.
    """
    path = Path(path)
    if SeedLayout(path).weights(stage).is_file():
        return SeedLayout(path)
    for seed in RunLayout(path).seeds():
        if seed.weights(stage).is_file():
            return seed
    raise FileNotFoundError(f"{path} holds no finished '{stage}' stage (no {stage}/{WEIGHTS} in it or in seed*/)")


#: configuration keys a resumed run may change: which methods it runs (no finished stage depends on them)
RESUMABLE_CHANGES = ("methods",)


def check_config(config_yaml: str, folder: Path) -> None:
    """The resume rule's first half: a folder that holds a ``config.yaml`` continues only with that same
    configuration (``config_yaml``: the resolved YAML text), up to :data:`RESUMABLE_CHANGES` (a resumed
    run may add a method to a finished one).

    Raises:
        ConfigError: the folder was started with another configuration (nothing is written).
    """
    import yaml

    path = Path(folder) / CONFIG
    if not path.is_file() or path.read_text() == config_yaml:
        return
    try:
        before, now = (yaml.safe_load(t) for t in (path.read_text(), config_yaml))
    except yaml.YAMLError:
        before, now = None, {}
    if not (isinstance(before, dict) and isinstance(now, dict)) or _without(before) != _without(now):
        raise ConfigError("differs from this run's configuration: resume with the same preset, --data and --set "
                          "overrides, or start a new run with another --out", path)  # fmt: skip


def _without(tree: dict) -> dict:
    return {k: v for k, v in tree.items() if k not in RESUMABLE_CHANGES}


def finished(stage_dir: Path, fitted: bool = False) -> bool:
    """Whether a stage is finished: its weights exist (and, for a ``fitted`` method, its selection)."""
    done = (Path(stage_dir) / WEIGHTS).is_file()
    return done and (not fitted or (Path(stage_dir) / SELECTION).is_file())


def resume_or_fit(
    stage_dir: Path, resume: bool, load: Callable[[Path], T], fit: Callable[[Path], T], fitted: bool = False
) -> T:
    """The resume rule: ``load(stage_dir)`` when resuming and the stage is :func:`finished`, else
    ``fit(stage_dir)`` (which writes the finished files last, so an interrupted fit is never taken for a
    finished one; a trained stage's fit continues from its ``last.ckpt``).

    Args:
        stage_dir: the stage's folder.
        resume: whether the run continues an earlier one.
        load: rebuilds the stage's result from its finished files.
        fit: fits the stage and writes its finished files.
        fitted: the stage also leaves a ``selection.json`` (a method fitted with choices made on validation).

    Returns:
        What ``load`` or ``fit`` returns.
    """
    if resume and finished(stage_dir, fitted):
        return load(Path(stage_dir))
    return fit(Path(stage_dir))


def adopt(source: Path, target: Path) -> None:
    """Make ``target`` a finished stage with the finished files of stage folder ``source`` (hard links when
    the file system allows, else copies; written under temporary names, then renamed)."""
    import os
    import shutil

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS, SELECTION):  # the weights first: finished() needs them, a fitted stage both
        src = Path(source) / name
        if not src.is_file():
            continue
        tmp = target / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        tmp.replace(target / name)
