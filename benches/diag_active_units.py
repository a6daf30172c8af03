"""Diagnostic (not a speed bench): is a run's CNN alive? For every seed of a run folder and every trained
CNN stage (``direct``, ``finetune``), the share of ReLU units that fire on at least one of ``--n`` test crops,
per layer (:func:`structpose.models.cnn.active_units`), and the spread of the network's output over the crops
(0 for a dead network: its output is its last bias, for the direct CNN the mean pose).

    .venv/bin/python benches/diag_active_units.py runs/full-v2-mesh-seeds3 [--n 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from structpose.data.dataset import PoseImageDataset
from structpose.models.cnn import active_units, preprocess
from structpose.train.config import load_config
from structpose.train.layout import RunLayout
from structpose.train.methods import METHODS, load_method

#: the method whose finished stage holds each trained CNN
STAGES = {"direct": "cnn", "finetune": "ours"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args()
    cfg = load_config(args.run / "config.yaml")
    test = PoseImageDataset(cfg.data.root, "test")
    idx = np.linspace(0, len(test) - 1, args.n).astype(int)
    images = torch.from_numpy(test.images(idx)).permute(0, 3, 1, 2).contiguous()
    x = preprocess(images, train=False, crop=cfg.cnn.crop)
    for seed in RunLayout(args.run).seeds():
        for stage, key in STAGES.items():
            if not seed.weights(METHODS[key].stage).is_file():
                continue
            net = load_method(seed.root, key).net.cnn  # in eval mode
            shares = " ".join(f"{s:4.0%}" for s in active_units(net, x))
            with torch.no_grad():
                spread = float(net(x).std(0).mean())
            print(f"{seed.root.name} {stage:9s} active units (last conv, fc...): {shares} | output spread {spread:.4f}")


if __name__ == "__main__":
    main()
