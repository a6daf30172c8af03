"""Typed experiment configuration: dataclasses, YAML presets and ``key=value`` overrides.

The dataclass defaults are the single source of truth (they follow the paper: Adam, lr 1e-3, batch 128);
a preset in ``structpose/configs/*.yaml`` lists only what it changes. :func:`load_config` merges a preset
(or a YAML file), then dotted overrides such as ``["latent.lr=1e-4", "ae.lam=0"]``, into an
:class:`ExperimentConfig`; :meth:`ExperimentConfig.to_yaml` writes the resolved configuration back.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from structpose.errors import ConfigError
from structpose.models.autoencoder import AEConfig
from structpose.models.cnn import CNNConfig
from structpose.models.structnet import StructNetConfig
from structpose.render import RENDERERS
from structpose.train.methods import METHODS

Schedule = Literal["constant", "cosine", "cosine_restarts"]
Precision = Literal["32", "bf16-mixed"]

PRESET_PACKAGE = "structpose.configs"
#: what a run trains unless ``methods`` says otherwise: every method of Table 1
DEFAULT_METHODS: tuple[str, ...] = (
    "linkde", "linkde_knn", "cnn", "structnet_max", "structnet_avg", "ours_noft", "ours",
)  # fmt: skip


@dataclass(frozen=True)
class StageConfig:
    """The optimisation of one training stage (Adam; the learning rate follows ``schedule`` per step).

    ``schedule``: ``constant``; ``cosine`` (one cosine decay to 0 over the stage); ``cosine_restarts``
    (SGDR: cosine decays of ``restart_period`` epochs each, restarting at ``lr``). ``max_steps`` (optimizer
    steps) caps the stage before ``epochs`` end when set. ``select``: which weights the stage keeps: the
    ``last`` ones, or the ``best`` on the validation split (least validation MPJPE; the pose auto-encoder's
    choice, whose validation error can rise while its loss falls).
    """

    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.0
    schedule: Schedule = "constant"
    restart_period: int = 1  # epochs per cosine cycle (cosine_restarts only)
    max_steps: int | None = None
    select: Literal["last", "best"] = "last"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.restart_period < 1:
            raise ConfigError(f"epochs, batch_size and restart_period must be >= 1: {self}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"lr must be > 0 and weight_decay >= 0: {self}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1 or null: {self}")


@dataclass(frozen=True)
class DataConfig:
    """Where the data lives and which part of the TRAIN split trains and validates.

    The image size is ``cnn.in_size`` (checked against the store's). The validation set is
    carved from the train split by whole ``sequence`` (a seeded choice of about ``val_fraction`` of the
    samples), so no validation frame has a near-duplicate neighbour in training; the test split is never
    touched while training. ``train_fraction`` then keeps a seeded random subset of the remaining training
    samples (data-size ablations). Both draws use ``split_seed``, not ``trainer.seed``: the seeds of a
    multi-seed run differ only in initialisation and data order. ``actions``: train, validate and test on
    these actions only (the paper's one-model-per-action protocol); null: all actions.

    ``equal_steps``: with ``train_fraction`` < 1, an epoch still has as many samples as the whole training
    part (the subset repeated, each epoch reshuffled), so every stage takes the optimizer steps and the
    learning-rate curve of the full-data run (the scarce-images regime at an equal budget).
    ``ae_poses``: what the auto-encoder trains on: ``images`` (the poses of the training images) or
    ``library`` (``ae_library_poses`` poses drawn from the pose library's training frames of the store's
    protocol, each seen by its own sampled camera, leaving out the validation sequences: poses are the
    cheap resource). Only the auto-encoder's stages change; the pose normalisation stays that of the
    training images, so the direct CNN is the same network.
    """

    root: str = "data/synth/quick-v2-mesh"
    train_fraction: float = 1.0
    val_fraction: float = 0.1
    num_workers: int = 2
    actions: tuple[str, ...] | None = None
    split_seed: int = 0  # draws the validation sequences and the train_fraction subset; fixed across --seeds
    protocol: str = "v2"  # the embedded benchmark's protocol (structpose.data.protocol) a rendered store must have
    renderer: str = "mesh"  # the renderer ("mesh" or "capsule") a store of the embedded benchmark must have
    equal_steps: bool = False
    ae_poses: Literal["images", "library"] = "images"
    ae_library_poses: int = 200_000

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction <= 1.0 or not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"need 0 < train_fraction <= 1 and 0 <= val_fraction < 1: {self}")
        if self.ae_library_poses < 1:
            raise ConfigError(f"data.ae_library_poses must be >= 1: {self}")
        if self.protocol not in ("v1", "v2"):
            raise ConfigError(f"data.protocol must be v1 or v2, got {self.protocol!r}")
        if self.renderer not in RENDERERS:
            raise ConfigError(f"data.renderer must be one of {', '.join(RENDERERS)}, got {self.renderer!r}")


@dataclass(frozen=True)
class TrainerConfig:
    """How to run: seeding, determinism, numerics and hardware (the last four go straight to Lightning).

    ``precision``: ``"32"`` or ``"bf16-mixed"`` (autocast). ``channels_last``: NHWC memory format for the
    CNN. ``accelerator``/``devices``/``num_nodes``/``strategy`` are ``lightning.Trainer`` arguments, so
    DDP (``strategy: ddp``) under torchrun or SLURM works through Lightning's environment detection.
    ``threads``: torch's intra-op CPU threads while a stage fits (null: torch's default, one per core);
    1 is much faster on a CPU shared with other busy processes, whose threads the CPU kernels would wait for.
    """

    seed: int = 0
    deterministic: bool = True
    precision: Precision = "32"
    channels_last: bool = True
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int | None = None
    progress_bar: bool = True


def check_equal_budget(latent: StageConfig, finetune: StageConfig, direct: StageConfig) -> None:
    """The rule that gives the direct arm the budget of the two structured stages (:class:`ExperimentConfig`):
    ``direct.epochs`` (and ``max_steps``) the sum of ``latent``'s and ``finetune``'s, one batch size (errors),
    the same lr, weight decay and schedule (warnings). Shared by the image and the lifting experiments."""
    ours = (latent, finetune)
    if direct.epochs != sum(s.epochs for s in ours):
        raise ConfigError(f"direct.epochs={direct.epochs} must equal latent.epochs + finetune.epochs "
                         f"= {sum(s.epochs for s in ours)} (same budget for both CNN arms)")  # fmt: skip
    caps = [s.max_steps for s in ours]
    if (None in caps and direct.max_steps is not None) or (None not in caps and direct.max_steps != sum(caps)):
        raise ConfigError(f"direct.max_steps={direct.max_steps} must be the sum of latent's and "
                         f"finetune's max_steps {caps}, or null if either of them is")  # fmt: skip
    if len({s.batch_size for s in (*ours, direct)}) != 1:
        raise ConfigError("latent, finetune and direct must share one batch_size (same step budget)")
    if len({(s.lr, s.weight_decay, s.schedule, s.restart_period) for s in (*ours, direct)}) != 1:
        warnings.warn("latent, finetune and direct differ in lr, weight_decay, schedule or restart_period: "
                      "the two CNN arms are not trained alike", stacklevel=3)  # fmt: skip
    elif latent.schedule == "cosine_restarts" and latent.epochs % latent.restart_period:
        warnings.warn(f"latent.epochs={latent.epochs} is not a multiple of restart_period="
                      f"{latent.restart_period}: the direct CNN's learning rate does not restart "
                      "where fine-tuning starts", stacklevel=3)  # fmt: skip


class YamlConfig:
    """What every experiment configuration (a frozen dataclass) does: back to a plain dict and to YAML."""

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as written to YAML."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The resolved configuration as YAML text; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text


@dataclass(frozen=True)
class ExperimentConfig(YamlConfig):
    """Everything a run of the paper's pipeline needs.

    Stages: ``ae_pretrain`` (per AE layer, greedy), ``ae_finetune`` (whole AE), ``latent`` (CNN -> AE code),
    ``finetune`` (CNN + decoder -> pose) and ``direct`` (the CNN baseline regressing the pose). ``structnet``:
    the StructNet arms' own settings; they train with ``direct``'s budget and schedule (the same steps and
    learning-rate curve as the direct CNN). ``methods``: the methods a run trains and reports (keys of
    :data:`structpose.train.methods.METHODS`; leaving one out saves its time, and the report says which ran;
    none, ``methods=[]``, only with ``reproduce --ablations``: a grid with no main run).
    The direct CNN baseline gets the budget and schedule of our two image stages together: ``direct.epochs``
    (and ``max_steps`` if set) must equal the sum of ``latent``'s and ``finetune``'s, with the same batch size
    (an error otherwise); they should share lr, weight decay and schedule (a warning otherwise). With
    ``constant`` or ``cosine_restarts`` (``latent.epochs`` a multiple of ``restart_period``) the two arms then
    follow the same learning rate step for step; with ``cosine`` each stage decays once.
    """

    data: DataConfig = field(default_factory=DataConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    ae_pretrain: StageConfig = field(default_factory=StageConfig)
    ae_finetune: StageConfig = field(default_factory=lambda: StageConfig(select="best"))
    latent: StageConfig = field(default_factory=StageConfig)
    finetune: StageConfig = field(default_factory=lambda: StageConfig(epochs=10))
    direct: StageConfig = field(default_factory=lambda: StageConfig(epochs=20))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    structnet: StructNetConfig = field(default_factory=StructNetConfig)
    methods: tuple[str, ...] = DEFAULT_METHODS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"methods: unknown {unknown}; known: {', '.join(METHODS)}")
        check_equal_budget(self.latent, self.finetune, self.direct)


def preset_names(package: str = PRESET_PACKAGE) -> list[str]:
    """Names of the shipped presets of ``package`` (image experiments: ``quick``, ``full``, ``paper``, ``tiny``)."""
    return sorted(p.name[:-5] for p in resources.files(package).iterdir() if p.name.endswith(".yaml"))


def load_config(preset_or_path: str | Path = "quick", overrides: list[str] | None = None,
                cls: type | None = None, package: str = PRESET_PACKAGE) -> Any:  # fmt: skip
    """A preset name (see :func:`preset_names`) or a YAML file, then ``overrides`` (``"section.key=value"``,
    values parsed as YAML, e.g. ``"ae.hidden=[1000, 1000]"``) -> the validated :class:`ExperimentConfig`.

    Unknown keys, values of the wrong type and unreadable YAML raise :class:`~structpose.errors.ConfigError`
    (a ``ValueError``). ``cls`` and ``package``: another experiment's config dataclass and its presets (the
    lifting experiment's :class:`~structpose.lift.config.LiftConfig`); default :class:`ExperimentConfig`.
    """
    cls = ExperimentConfig if cls is None else cls
    name = str(preset_or_path)
    if name in preset_names(package):
        text = resources.files(package).joinpath(f"{name}.yaml").read_text()
    elif Path(name).is_file():
        text = Path(name).read_text(encoding="utf-8", errors="replace")
    else:
        raise ConfigError(f"{name!r} is neither a preset ({', '.join(preset_names(package))}) nor a YAML file")
    tree = _yaml(text, name) or {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        *parents, leaf = key.strip().split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = _yaml(value, f"override {item!r}")
    return _build(cls, tree, "")


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({e})") from None


# ---- dict -> dataclass, with type checks ------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from a (partial) dict; missing keys keep the dataclass defaults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown keys {unknown}; known: {sorted(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as e:  # a model config's own checks (AEConfig, CNNConfig, ...)
        raise ConfigError(f"{where.rstrip('.') or 'config'}: {e}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked and converted to type annotation ``tp`` (dataclasses, unions, Literal, tuples)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, where)
            except ValueError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a {tp}")
    if origin is Literal:
        for option in args:
            if value == option or str(value) == str(option):
                return option
        raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            raise ConfigError(f"{where}: expected {len(items)} items, got {value!r}")
        return tuple(_coerce(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(items, value, strict=True)))
    if tp is float and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads "1e-4" as a string
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a number") from None
    if tp in (int, str, bool) and type(value) is tp:
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{where}: {value!r} is not a {getattr(tp, '__name__', tp)}")
