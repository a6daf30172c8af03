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
import yaml
from safetensors.torch import load_file

from structpose.data.dataset import PoseImageDataset
from structpose.models.cnn import CNNConfig, PaperCNN, active_units, preprocess
from structpose.train.layout import RunLayout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args()
    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    cnn = CNNConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["cnn"].items()})
    test = PoseImageDataset(cfg["data"]["root"], "test")
    idx = np.linspace(0, len(test) - 1, args.n).astype(int)
    x = preprocess(torch.from_numpy(test.images(idx)).permute(0, 3, 1, 2).contiguous(), train=False, crop=cnn.crop)
    for seed in RunLayout(args.run).seeds():
        for stage in ("direct", "finetune"):
            if not seed.weights(stage).is_file():
                continue
            weights = {k[4:]: v for k, v in load_file(seed.weights(stage)).items() if k.startswith("cnn.")}
            out_dim = weights[f"head.{3 * len(cnn.fc) + 1}.bias"].shape[0]  # Flatten, then (Linear, ReLU, Dropout)s
            net = PaperCNN(cnn, out_dim).eval()
            net.load_state_dict(weights)
            shares = " ".join(f"{s:4.0%}" for s in active_units(net, x))
            with torch.no_grad():
                spread = float(net(x).std(0).mean())
            print(f"{seed.root.name} {stage:9s} active units (last conv, fc...): {shares} | output spread {spread:.4f}")


if __name__ == "__main__":
    main()
