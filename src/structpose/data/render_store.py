"""Render poses you give (your own mocap) into a store, exactly as the embedded benchmark's test split is
rendered: :func:`render_poses`.

Sample ``i`` is :func:`structpose.data.synth.render_split_sample` of pose ``i`` -- the very function
:func:`~structpose.data.synth.synthesize` renders its splits with -- so its camera (Human3.6M-like, around
the pose), appearance, light, background and noise are drawn as those of sample ``i`` of that split, by
``default_rng([seed, split id, i])``. The store has the schema of :mod:`structpose.data.store`;
:class:`~structpose.data.dataset.PoseImageDataset` reads it and any trained method evaluates on it
(``load_method(run, "ours").predict_dataset(PoseImageDataset(out_dir, "test"))``).

The module is not named after its function so that ``structpose.data.render_poses`` is always the function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

import numpy as np
from tqdm import tqdm

from structpose.data.store import StoreWriter, estimated_bytes, shard_path
from structpose.data.synth import _SPLIT_ID, check_renderer, pool_context, render_split_arrays, renderer_attrs
from structpose.errors import InputError
from structpose.files import require_free_space
from structpose.render import DEFAULT_RENDERER
from structpose.skeleton import NUM_JOINTS

#: ``created_by`` of the stores :func:`render_poses` writes (not the embedded benchmark's: its poses are yours).
CREATED_BY = "structpose.data.render_poses"


def render_poses(
    poses_world: np.ndarray,
    out_dir: str | Path,
    *,
    split: str = "test",
    size: int = 64,
    seed: int = 0,
    subject: str | Sequence[str] = "own",
    action: str | Sequence[str] = "own",
    sequence: str | Sequence[str] = "own",
    frame: np.ndarray | Sequence[int] | None = None,
    margin: float = 0.2,
    source: str = "own poses rendered by structpose.data.render_poses",
    license: str = "",
    workers: int = 1,
    chunk: int = 256,
    progress: bool = True,
    renderer: str = DEFAULT_RENDERER,
) -> Path:
    """Render ``poses_world`` into the store ``out_dir/{split}.h5`` as the embedded benchmark's split is rendered.

    Each pose gets its own sampled camera and appearance, drawn exactly as :func:`~structpose.data.synth.
    synthesize` draws sample ``i`` of ``split`` (same seed, same bytes). The stored ``poses3d`` are the
    poses in the sampled camera's frame, root-relative (``camera.world_to_camera(pose) - root``, float32
    mm; with the mesh renderer, the rendered body's own joints: the pose's bone directions on the body's
    bone lengths); ``root_cam``, ``intrinsics``, ``boxes`` and ``joints2d`` as in every store. Attributes: the store's
    own plus ``created_by`` (:data:`CREATED_BY`), ``source``, ``license``, ``split``, ``config`` (JSON: size,
    margin, seed), ``renderer_version``, ``poses_sha256`` (of ``poses_world`` as float64), ``first_sample``
    and ``num_split_samples``. An existing ``{split}.h5`` is replaced atomically (only once the new one is
    complete).

    Args:
        poses_world: (N, 17, 3) mm, world frame (right-handed, Z up; the pose library's, e.g.
            :func:`~structpose.data.loose.read_mocap`'s ``poses``), Human3.6M joint order, N >= 1, finite.
        out_dir: the dataset directory (created if missing).
        split: the split's name and random stream: ``"test"`` (default), ``"train"`` or ``"unseen"``.
        size: crop side S, pixels (the trained network's input size: the quick preset's is 64).
        seed: the dataset seed (``structpose data synth`` uses 0).
        subject, action, sequence: one string for all poses or N strings (reports group by them).
        frame: (N,) frame numbers; default ``0 .. N-1``.
        margin: relative margin of the person box (the benchmark's is 0.2).
        source, license: provenance of the poses, stored as attributes (the report names ``source``).
        workers: render processes (1: in this process).
        chunk: poses rendered per task.
        progress: show a progress bar.
        renderer: ``"capsule"`` or ``"mesh"`` (the stored poses are then the rendered bodies' own joints).

    Returns:
        The store file written, ``out_dir/{split}.h5``.

    Raises:
        InputError: poses of another shape, none, or non-finite values; an unknown split; a size, margin,
            worker or chunk count that cannot be used; labels or frames of the wrong length; ``out_dir`` is a
            file name or holds shards of ``split``; a pose the sampled camera cannot see (names the sample).
        OSError: not enough free disk space (``ENOSPC``) or the store cannot be written.
    """
    poses = _checked_poses(poses_world)
    n = len(poses)
    if split not in _SPLIT_ID:
        raise InputError(f"split {split!r} has no random stream; use one of {', '.join(_SPLIT_ID)}")
    if not (isinstance(size, (int, np.integer)) and size > 0):
        raise InputError(f"size must be a positive number of pixels, not {size!r}")
    if not (np.isfinite(margin) and margin >= 0):
        raise InputError(f"margin must be a finite number >= 0, not {margin!r}")
    check_renderer(renderer)
    if workers < 1 or chunk < 1:
        raise InputError(f"workers and chunk must be >= 1, not {workers} and {chunk}")
    labels = {name: _labels(name, value, n) for name, value in (("subject", subject), ("action", action),
                                                                 ("sequence", sequence))}  # fmt: skip
    frames = np.arange(n, dtype=np.int64) if frame is None else np.asarray(frame)
    if frames.shape != (n,) or not np.issubdtype(frames.dtype, np.integer):
        raise InputError(f"frame must hold {n} integers (one per pose), not an array of shape {frames.shape}")
    out_dir = Path(out_dir)
    if out_dir.suffix in (".h5", ".hdf5"):
        raise InputError("is a file name; out_dir is a dataset directory (it receives {split}.h5)", out_dir)
    shards = sorted(out_dir.glob(f"{split}-*-of-*.h5")) if out_dir.is_dir() else []
    if shards:
        raise InputError(f"holds shards of split {split!r} ({shards[0].name}, ...): write into another folder, "
                         f"or name another split", out_dir)  # fmt: skip
    require_free_space(out_dir, estimated_bytes(n, int(size)), "rendering these poses")
    attrs = {
        "created_by": CREATED_BY,
        "source": source,
        "split": split,
        "config": json.dumps({"size": int(size), "margin": float(margin), "seed": int(seed)}),
        **renderer_attrs(renderer, license),
        "poses_sha256": hashlib.sha256(np.ascontiguousarray(poses).tobytes()).hexdigest(),
        "first_sample": 0,
        "num_split_samples": n,
    }
    chunks = [np.arange(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    path = shard_path(out_dir, split)
    bar = tqdm(total=n, desc=f"render {split} -> {path}", unit="img", disable=not progress)
    try:
        with StoreWriter(path, int(size), attrs=attrs) as writer:
            rendered = _render(poses, chunks, split, seed, size, margin, workers, renderer)
            for ids, arrays in zip(chunks, rendered, strict=True):
                writer.append(**arrays, frame=frames[ids], camera_id=[f"synth:{i}" for i in ids],
                              **{k: [v[i] for i in ids] for k, v in labels.items()})  # fmt: skip
                bar.update(len(ids))
    except InputError:
        raise
    except ValueError as err:  # a pose the sampled camera cannot see (render_sample), with its sample id
        raise InputError(f"cannot render {err}; are the poses in mm, world frame, Z up?", path) from err
    finally:
        bar.close()
    return path


def _render(poses: np.ndarray, chunks: list[np.ndarray], split: str, seed: int, size: int, margin: float,
            workers: int, renderer: str) -> Iterator[dict[str, np.ndarray]]:  # fmt: skip
    """The rendered arrays (:func:`~structpose.data.synth.render_split_arrays`) of each chunk of sample ids, in
    order; in ``workers`` processes when > 1."""
    args = (repeat(split), chunks, repeat(int(seed)), repeat(int(size)), repeat(float(margin)), repeat(renderer))
    if workers == 1:
        yield from map(render_split_arrays, (poses[ids] for ids in chunks), *args)
    else:
        with ProcessPoolExecutor(workers, mp_context=pool_context(renderer)) as pool:
            yield from pool.map(render_split_arrays, [poses[ids] for ids in chunks], *args)


def _checked_poses(poses_world: np.ndarray) -> np.ndarray:
    """``poses_world`` as a finite (N, 17, 3) float64 array, N >= 1."""
    try:
        poses = np.asarray(poses_world, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"poses_world must be a numeric (N, {NUM_JOINTS}, 3) array in mm: {err}") from None
    if poses.ndim != 3 or poses.shape[1:] != (NUM_JOINTS, 3) or len(poses) == 0:
        raise InputError(f"poses_world must have shape (N >= 1, {NUM_JOINTS}, 3) (mm, world frame), not {poses.shape}")
    bad = np.flatnonzero(~np.isfinite(poses).reshape(len(poses), -1).all(axis=1))
    if bad.size:
        raise InputError(f"poses_world holds non-finite values (NaN/inf), first in pose {int(bad[0])}")
    return poses


def _labels(name: str, value: str | Sequence[str], n: int) -> list[str]:
    """One label per pose: ``value`` repeated when it is a string, else its ``n`` strings."""
    if isinstance(value, str):
        return [value] * n
    values = [str(v) for v in value]
    if len(values) != n:
        raise InputError(f"{name} must be one string or {n} strings (one per pose), not {len(values)}")
    return values
