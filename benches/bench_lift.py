"""Lifting speed: the lifter's poses/s at batch 1 and 1024, and detector + lifter images/s against the detector.

The lifter is the one shipped in the package (``structpose/assets/lifter``; ``--model PATH`` for another
released lifter). In one process, on the same inputs:

- lifter poses/s at batch 1 (median of ``--repeat`` calls of ``Lifter.lift`` on one pose) and at batch 1024;
- the 2D detector's images/s on ``--n`` copies of scikit-image's astronaut (public domain) in one
  :func:`structpose.detect.detect` call (its worker's start-up included, as ``structpose predict`` pays it), and
  detector + lifter images/s (the detection, then lifting every detected person one call per image, as
  ``structpose predict`` does), after one warm-up call, each the median of 3 runs, the two alternated.

Prints each number and the ratios: batch 1024 / batch 1 (poses/s), and (detector + lifter) / detector
(images/s; 1.0 means the lifter costs nothing beside the detector). Needs a detector Python (``make detector``).

    .venv/bin/python benches/bench_lift.py [--model runs/RUN/models/lift_ours] [--n 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from bench_predict import timed  # run as a script: benches/ is on sys.path
from PIL import Image

import structpose
from structpose.detect import detect
from structpose.detect.interpreter import find_detector_python


def astronaut(python: str, folder: Path) -> np.ndarray:
    path = folder / "astronaut.png"
    code = f"from skimage import data; from PIL import Image; Image.fromarray(data.astronaut()).save({str(path)!r})"
    subprocess.run([python, "-c", code], check=True, timeout=120)
    return np.asarray(Image.open(path).convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path(str(resources.files("structpose.assets") / "lifter")))
    parser.add_argument("--n", type=int, default=32, help="images for the detector")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lifter = structpose.load(args.model)
    rng = np.random.default_rng(0)
    xy = rng.uniform(200, 800, (1024, 17, 2))
    one = timed(lambda: lifter.lift(xy[:1]), args.repeat)
    many = timed(lambda: lifter.lift(xy, batch_size=1024), max(3, args.repeat // 10))
    print(f"lifter {lifter.id}: batch 1 {1 / one:.0f} poses/s, batch 1024 {1024 / many:.0f} poses/s; "
          f"ratio {(1024 / many) / (1 / one):.1f}")  # fmt: skip
    python = find_detector_python()
    with tempfile.TemporaryDirectory() as tmp:
        images = [astronaut(python, Path(tmp))] * args.n
    detect(images[:2], python=python)  # warm-up: the first start of the worker reads its files from disk

    def detect_only() -> list:
        return detect(images, python=python)

    def detect_and_lift() -> None:
        for det in detect(images, python=python):
            if det.keypoints is not None:
                lifter.lift(det.keypoints.xy, det.keypoints.visible)

    alone, both = [], []
    for _ in range(3):  # alternated, so a load change on the machine hits both alike; medians
        alone.append(_seconds(detect_only))
        both.append(_seconds(detect_and_lift))
    t_detect, t_both = statistics.median(alone), statistics.median(both)
    found = sum(d.keypoints is not None for d in detect_only())
    print(f"detector alone: {args.n / t_detect:.1f} images/s; detector + lifter: {args.n / t_both:.1f} images/s "
          f"({found}/{args.n} people found); ratio {t_detect / t_both:.2f} (medians of 3, alternated)")  # fmt: skip


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
