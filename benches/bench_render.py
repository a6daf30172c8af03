"""Renderer throughput on one core: capsules (with and without per-capsule culling) and mesh people.

Renders the same ``--n`` samples (poses from the shipped pose library, else the hand-made demo poses;
Human3.6M-like cameras; sampled appearances) at S = 64 and S = 128 with ``render_sample`` (culling on)
and with the same ray caster testing every ray against every capsule (``cull=False``), on one thread.
Then the mesh renderer (``render_mesh_sample``: a body of the shipped body bank per sample, posed one at a
time, OpenGL through EGL with Mesa's llvmpipe on one thread, ``LP_NUM_THREADS=1``) on the same samples.
Prints img/s (wall clock and CPU time), the culling speed-up, the mesh/capsule ratio measured in the same
run, and the ratios to the targets at S = 128 (capsules 200 img/s, mesh 150 img/s).
Run: ``.venv/bin/python benches/bench_render.py [--n 200]``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LP_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from structpose.render import render_sample, sample_appearance, sample_camera  # noqa: E402
from structpose.render.demo import POSES, demo_pose  # noqa: E402

TARGET_128 = 200.0  # img/s at S = 128 on one core
MESH_TARGET_128 = 150.0  # img/s at S = 128 on one core, mesh people


def poses(n: int, seed: int = 0) -> np.ndarray:
    """``n`` world poses (n, 17, 3) mm: pose-library frames if the library loads, else demo poses."""
    rng = np.random.default_rng(seed)
    try:
        from structpose.data.poselib import load_pose_library

        lib = load_pose_library()
        print(f"poses: {n} frames of the pose library ({len(lib.poses)} frames)")
        return lib.poses[rng.choice(len(lib.poses), n, replace=False)].astype(np.float64)
    except Exception as err:  # noqa: BLE001 -- any failure to load falls back to the demo poses
        print(f"poses: demo poses (pose library unavailable: {err})")
        return np.stack([demo_pose(POSES[i % len(POSES)], rng.uniform(0, 360)) for i in range(n)])


def run(inputs: list, size: int, cull: bool) -> tuple[float, float, list[np.ndarray]]:
    """Render all inputs; returns (wall s, CPU s, images)."""
    images = []
    wall, cpu = time.perf_counter(), time.process_time()
    for pose, camera, appearance, seed in inputs:
        sample = render_sample(pose, camera, appearance, np.random.default_rng(seed), size, cull=cull)
        images.append(sample.image)
    return time.perf_counter() - wall, time.process_time() - cpu, images


def run_mesh(inputs: list, size: int) -> tuple[float, float]:
    """Render all inputs with mesh people (body ``seed % len(bank)``), their poses solved in one batch as
    ``structpose data synth`` solves a chunk; returns (wall s, CPU s)."""
    from structpose.render.bodybank import load_body_bank
    from structpose.render.mesh import render_mesh_sample
    from structpose.render.retarget import pose_body

    bank = load_body_bank()
    bodies = [seed % len(bank) for *_, seed in inputs]
    wall, cpu = time.perf_counter(), time.process_time()
    posed = pose_body(np.stack([pose for pose, *_ in inputs]), bank.joints[bodies])  # one batch, as synth does
    for k, (pose, camera, appearance, seed) in enumerate(inputs):
        rng = np.random.default_rng(seed)
        render_mesh_sample(pose, camera, appearance, bodies[k], rng, size, posed=posed[k])
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per configuration")
    args = parser.parse_args()
    inputs = []
    for i, pose in enumerate(poses(args.n)):
        rng = np.random.default_rng([1, i])
        inputs.append((pose, sample_camera(rng, pose), sample_appearance(rng), i))
    rates = {}
    for size in (64, 128):
        run(inputs[:20], size, True)  # warm-up: lens tables, caches
        results = {cull: run(inputs, size, cull) for cull in (True, False)}
        (wall, cpu, images), (wall_all, cpu_all, images_all) = results[True], results[False]
        same = all(np.array_equal(x, y) for x, y in zip(images, images_all, strict=True))
        rates[size] = args.n / wall
        print(
            f"S={size:3d}: culled {args.n / wall:7.1f} img/s ({args.n / cpu:7.1f} per CPU s) | "
            f"no culling {args.n / wall_all:6.1f} img/s ({args.n / cpu_all:6.1f} per CPU s) | "
            f"culling speed-up x{wall_all / wall:.2f} (CPU x{cpu_all / cpu:.2f}) | identical images: {same}"
        )
    print(
        f"S=128 vs target {TARGET_128:.0f} img/s: x{rates[128] / TARGET_128:.2f}; "
        f"S=64 / S=128: x{rates[64] / rates[128]:.2f}"
    )
    for size in (64, 128):
        run_mesh(inputs[:20], size)  # warm-up: the GL context, shaders, the body bank
        wall, cpu = run_mesh(inputs, size)
        mesh = args.n / wall
        print(
            f"S={size:3d}: mesh {mesh:7.1f} img/s ({args.n / cpu:7.1f} per CPU s) | mesh / capsules (culled) "
            f"x{mesh / rates[size]:.2f}"
            + (f" | vs target {MESH_TARGET_128:.0f} img/s: x{mesh / MESH_TARGET_128:.2f}" if size == 128 else "")
        )


if __name__ == "__main__":
    main()
