"""Prediction speed of a released model: onnxruntime against PyTorch on the same inputs, and video frames/s.

A randomly initialised OURS network of the ``quick`` preset's architecture (64 px crops, centre crop 56) is
exported as a released model (``model.safetensors``, ``model.json``, ``model.onnx``) into a temporary
folder; ``--model PATH`` benchmarks a released folder of yours as well. Per model, in one process, on the
same uint8 crops:

- latency per image at batch 1 (median of ``--repeat`` calls of ``predict_crops``), PyTorch and ONNX;
- images/s at batch 64 (``predict_crops`` of ``--n`` crops), PyTorch and ONNX, and ``predict`` on whole
  640 x 480 images with a person box (the crop and resize included);
- video frames/s of a 320 x 240 MP4 written here: decoding + crop + prediction (PyTorch), and the whole of
  ``structpose predict`` on it (with the output MP4 of the frames beside the skeleton).

Prints each number and the ONNX / PyTorch ratios (> 1: ONNX faster). ``--threads`` (default 1, as the other
benches: the CI machine's 2 cores are shared) is given to both torch and onnxruntime.

    .venv/bin/python benches/bench_predict.py [--model runs/RUN/models/ours] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from structpose.release import PoseModel, export_model, load


def random_quick_model(folder: Path) -> Path:
    """A pipeline folder holding a randomly initialised OURS of the quick preset, exported with ONNX."""
    from structpose.train.config import load_config
    from structpose.train.export import save_weights
    from structpose.train.methods import build_net

    cfg = load_config("quick", [f"data.root={folder / 'no-data'}"])
    seed = folder / "seed0"
    seed.mkdir(parents=True)
    cfg.to_yaml(seed / "config.yaml")
    torch.manual_seed(0)
    save_weights(build_net("ours", cfg).eval(), seed / "finetune" / "model.safetensors")
    return export_model(seed, "ours", folder / "released", onnx=True)


def timed(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_clip(path: Path, frames: int, width: int = 320, height: int = 240) -> None:
    """An H.264 (else MPEG-4) clip of a moving gradient with a bright 'person' rectangle."""
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            rgb = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, np.full_like(xx, 128)], -1).astype(np.uint8)
            rgb[60:200, 130 + i % 40 : 180 + i % 40] = 230
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())


def bench_crops(name: str, torch_model: PoseModel, onnx_model: PoseModel, n: int, repeat: int) -> None:
    size = torch_model.image_size
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    diff = np.abs(torch_model.predict_crops(crops).poses - onnx_model.predict_crops(crops).poses).max()
    one = {k: timed(lambda m=m: m.predict_crops(crops[:1], batch_size=1), repeat)
           for k, m in (("torch", torch_model), ("onnx", onnx_model))}  # fmt: skip
    many = {k: n / timed(lambda m=m: m.predict_crops(crops, batch_size=64), 3)
            for k, m in (("torch", torch_model), ("onnx", onnx_model))}  # fmt: skip
    images = list(rng.integers(0, 256, (64, 480, 640, 3), dtype=np.uint8))
    boxes = [(200.0, 60.0, 180.0, 360.0)] * len(images)
    whole = {k: len(images) / timed(lambda m=m: m.predict(images, boxes, batch_size=64), 3)
             for k, m in (("torch", torch_model), ("onnx", onnx_model))}  # fmt: skip
    print(f"{name}: {size} px crops, ONNX vs PyTorch max |diff| {diff:.2e} mm")
    print(f"  batch 1 latency: torch {1e3 * one['torch']:.2f} ms, onnx {1e3 * one['onnx']:.2f} ms per image; "
          f"onnx speed-up x{one['torch'] / one['onnx']:.2f}")  # fmt: skip
    print(f"  batch 64: torch {many['torch']:.0f} img/s, onnx {many['onnx']:.0f} img/s; "
          f"onnx / torch x{many['onnx'] / many['torch']:.2f}")  # fmt: skip
    print(f"  predict() on 640x480 images with a box (crop + resize included): torch {whole['torch']:.0f} img/s, "
          f"onnx {whole['onnx']:.0f} img/s; the crop's share of torch's time "
          f"{1 - whole['torch'] / many['torch']:.0%}")  # fmt: skip


def bench_video(model: PoseModel, frames: int) -> None:
    import av

    from structpose.predict import decode_frames, predict_video

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, frames)
        start = time.perf_counter()
        with av.open(str(clip)) as container:
            n = 0
            batch: list[np.ndarray] = []
            for frame in decode_frames(container, container.streams.video[0], clip, progress=False):
                batch.append(frame)
                if len(batch) == 64:
                    n += len(model.predict(batch, [(130, 60, 90, 140)] * len(batch)).poses)
                    batch = []
            n += len(model.predict(batch, [(130, 60, 90, 140)] * len(batch)).poses) if batch else 0
        decode_predict = n / (time.perf_counter() - start)
        start = time.perf_counter()
        predict_video(model, clip, Path(tmp) / "out", "clip", (130, 60, 90, 140), progress=False)
        full = frames / (time.perf_counter() - start)
    print(
        f"  video 320x240, {frames} frames ({model.backend.name}): decode + crop + predict {decode_predict:.0f} "
        f"frames/s; all of `structpose predict` (+ the output MP4: frame and skeleton) {full:.0f} frames/s"
    )


def run(name: str, path: Path, args: argparse.Namespace) -> None:
    torch_model, onnx_model = load(path), load(path, backend="onnx")
    onnx_model.backend.threads = args.threads
    torch_model.device = onnx_model.device = "cpu"
    bench_crops(name, torch_model, onnx_model, args.n, args.repeat)
    bench_video(torch_model, args.frames)
    bench_video(onnx_model, args.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="also a released model folder of yours (with model.onnx)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of torch and onnxruntime")
    parser.add_argument("--n", type=int, default=256, help="crops of the batch-64 measurement")
    parser.add_argument("--repeat", type=int, default=50, help="calls of the batch-1 measurement")
    parser.add_argument("--frames", type=int, default=150, help="frames of the video")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        run("random quick-preset OURS", random_quick_model(Path(tmp)), args)
    if args.model:
        run(f"{args.model}", args.model, args)


if __name__ == "__main__":
    main()
