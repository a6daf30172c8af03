"""Typed configuration of the lifting experiment (``structpose reproduce --input keypoints2d``).

Same stages and the same budget discipline as the image experiment (:mod:`structpose.train.config`): the
pose auto-encoder (``ae_pretrain``/``ae_finetune``), the lifter regressing its code (``latent``), the
fine-tuning through the decoder (``finetune``), and the direct lifter (``direct``, 3d-pose-baseline) with
the budget and schedule of the two together (:func:`~structpose.train.config.check_equal_budget`).
Presets live in ``structpose/configs/lift/``; :func:`load_lift_config` reads them as
:func:`~structpose.train.config.load_config` reads the image presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from structpose.errors import ConfigError
from structpose.lift.inputs import HipOffset
from structpose.models.autoencoder import AEConfig
from structpose.models.lifter import LifterConfig
from structpose.train.config import StageConfig, TrainerConfig, YamlConfig, check_equal_budget, load_config

LIFT_PRESETS = "structpose.configs.lift"
#: the lifting methods, in report order: key -> label
LIFT_METHODS: dict[str, str] = {
    "lift_direct": "Lifter, direct (3d-pose-baseline)",
    "lift_ours_noft": "Lifter + pose prior, no FT",
    "lift_ours": "Lifter + pose prior, with FT",
}


@dataclass(frozen=True)
class LiftDataConfig:
    """Which views train, validate and test (:func:`structpose.lift.data.lift_splits`).

    ``pose_library``: a library file (null: the shipped one); ``seed``: the dataset seed (that of the rendered
    embedded default, 0), which fixes the test frames and cameras; ``split_seed``: the validation draw
    (fixed across ``--seeds``); ``train_views``: views of the training frames (each its own camera), before
    the validation sequences are taken out; ``test_views``/``unseen_views``: as the rendered store's.
    ``test_store``: a dataset directory (an imported Human3.6M, your own) whose test split the lifters are
    also scored on, from its own 2D ground truth (``reproduce --input keypoints2d --data DIR``).
    ``pair_fraction``: the lifters see only this seeded fraction of the training views (2D/3D pairs), repeated
    so that every epoch has as many samples as the whole (equal steps), while the pose prior trains on the
    3D poses of all of them: the regime of abundant poses and scarce paired data, where a prior should pay.
    """

    pose_library: str | None = None
    sources: tuple[str, ...] = ("cmu", "bandai")
    protocol: str = "v2"
    seed: int = 0
    split_seed: int = 0
    train_views: int = 200_000
    test_views: int = 4_000
    unseen_views: int = 1_000
    val_fraction: float = 0.1
    test_store: str | None = None
    pair_fraction: float = 1.0

    def __post_init__(self) -> None:
        if self.train_views < 2 or self.test_views < 1 or self.unseen_views < 0:
            raise ConfigError(f"need train_views >= 2, test_views >= 1, unseen_views >= 0: {self}")
        if not 0.0 < self.pair_fraction <= 1.0:
            raise ConfigError(f"need 0 < pair_fraction <= 1: {self}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"need 0 <= val_fraction < 1: {self}")


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation of the 2D input (:func:`structpose.lift.inputs.augment`): Gaussian noise of a
    per-sample std drawn in [0, ``noise_px``] px, each detected joint hidden with probability ``drop``, the
    lower body hidden with probability ``waist_up`` (photos cut at the waist), and the detector's hip offset
    ``hips`` (also applied, without jitter, to every evaluation input)."""

    noise_px: float = 20.0
    drop: float = 0.1
    waist_up: float = 0.2
    hips: HipOffset = field(default_factory=HipOffset)

    def __post_init__(self) -> None:
        if self.noise_px < 0 or not 0.0 <= self.drop < 1.0 or not 0.0 <= self.waist_up <= 1.0:
            raise ConfigError(f"need noise_px >= 0, 0 <= drop < 1 and 0 <= waist_up <= 1: {self}")


@dataclass(frozen=True)
class LiftConfig(YamlConfig):
    """Everything a lifting run needs (module docstring)."""

    data: LiftDataConfig = field(default_factory=LiftDataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    lifter: LifterConfig = field(default_factory=LifterConfig)
    ae_pretrain: StageConfig = field(default_factory=StageConfig)
    ae_finetune: StageConfig = field(default_factory=lambda: StageConfig(select="best"))
    latent: StageConfig = field(default_factory=StageConfig)
    finetune: StageConfig = field(default_factory=lambda: StageConfig(epochs=10))
    direct: StageConfig = field(default_factory=lambda: StageConfig(epochs=20))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    input: str = "keypoints2d"  # what the networks take (written to every config.yaml, so runs say it)

    def __post_init__(self) -> None:
        if self.input != "keypoints2d":
            raise ConfigError(f"input must be keypoints2d, got {self.input!r}")
        check_equal_budget(self.latent, self.finetune, self.direct)


def load_lift_config(preset_or_path: str | Path = "quick", overrides: list[str] | None = None) -> LiftConfig:
    """A lifting preset (``quick``, ``tiny``) or YAML file, then ``section.key=value`` overrides."""
    return load_config(preset_or_path, overrides, cls=LiftConfig, package=LIFT_PRESETS)
