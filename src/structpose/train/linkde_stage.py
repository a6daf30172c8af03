"""LinKDE as a stage of the pipeline: hyper-parameters chosen on the validation split, fitted on the
training split, resumed by the one rule of :func:`structpose.train.layout.resume_or_fit`.

Two variants (:data:`VARIANTS`), each its own stage folder: ``linkde`` (Ionescu et al.) and ``linkde_knn``
(the Gaussian-kernel variant with the k-nearest pre-image, structpose's LinKDE before v0.3).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from structpose.files import atomic_path, write_text
from structpose.models.linkde import VARIANTS, LinKDE, select_config
from structpose.train.config import ExperimentConfig
from structpose.train.data import Splits
from structpose.train.layout import SeedLayout, resume_or_fit
from structpose.train.methods import METHODS, HogMethod, load_linkde

__all__ = ["VARIANTS", "fit_linkde"]  # VARIANTS: method key -> its base config (models.linkde)


def fit_linkde(cfg: ExperimentConfig, splits: Splits, folder: SeedLayout, resume: bool, key: str) -> HogMethod:
    """The LinKDE variant ``key`` of :data:`VARIANTS` of one pipeline folder: loaded when finished, else
    selected on ``splits.val`` (when there is one), fitted on ``splits.train`` and saved (weights, then
    ``selection.json`` with the chosen config and every validation score)."""
    stage = METHODS[key].stage

    def fit(stage_dir: Path) -> HogMethod:
        from safetensors.numpy import save_file

        base = replace(VARIANTS[key], seed=cfg.trainer.seed)
        method = HogMethod(LinKDE(base))
        train_x = method.dataset_features(splits.train)
        scores: list = []
        if splits.val is not None:
            base, scores = select_config(train_x, splits.train.poses3d, method.dataset_features(splits.val),
                                         splits.val.poses3d, base=base, seed=cfg.trainer.seed)  # fmt: skip
        method.model = LinKDE(base).fit(train_x, splits.train.poses3d)
        stage_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder.weights(stage)) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in method.model.state_dict().items()}, str(tmp))
        write_text(folder.selection(stage), json.dumps({"chosen": asdict(base), "val_mpjpe_mm": scores}, indent=1))
        return method

    return resume_or_fit(folder.stage(stage), resume, lambda _: HogMethod(load_linkde(folder, stage)), fit,
                         fitted=True)  # fmt: skip
