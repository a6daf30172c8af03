"""The embedded default dataset: real mocap poses from the shipped pose library, rendered by structpose.

Every sample is one pose-library frame seen through a camera sampled like Human3.6M's, worn by a randomly
sampled appearance. Train and test images come from the pose library's train and test subjects (CMU) and
styles (Bandai-Namco), so no person or style is in both splits; under protocol v2 (the default) test motions
without any training frame of their action go to a third split, ``unseen`` (:mod:`structpose.data.protocol`).

Determinism: the frames of a split are drawn by ``default_rng([seed, split])`` and sample ``i`` is rendered
with ``default_rng([seed, split, i])``, so a shard of a job array renders exactly the samples the single
run would have, and the same command writes the same images.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

from structpose.data.poselib import POSELIB_ASSET, PoseLibrary, load_pose_library
from structpose.data.protocol import DEFAULT_PROTOCOL, PROTOCOL_SPLITS, check_protocol, protocol_splits
from structpose.data.store import StoreWriter, estimated_bytes, shard_path
from structpose.errors import ConfigError, InputError
from structpose.files import require_free_space
from structpose.render import (
    DEFAULT_RENDERER,
    RENDERERS,
    RenderedSample,
    render_sample,
    sample_appearance,
    sample_camera,
)

SPLITS = ("train", "test")  # the splits of every protocol; v2 adds "unseen" (structpose.data.protocol)
_SPLIT_ID = {"train": 0, "test": 1, "unseen": 2}
_POSES_ONLY = 3  # the random stream of library_poses: other draws than any rendered split's


def check_renderer(name: str) -> None:
    """Raise ConfigError for a renderer that :mod:`structpose.render` does not have."""
    if name not in RENDERERS:
        raise ConfigError(f"unknown renderer {name!r}; known: {', '.join(RENDERERS)}")


@dataclass(frozen=True)
class SynthConfig:
    """How many images of which size to render from which sources."""

    size: int = 64  # crop side S, pixels
    train_images: int = 20_000
    test_images: int = 4_000
    margin: float = 0.2  # relative margin of the person box
    sources: tuple[str, ...] = ("cmu", "bandai")
    seed: int = 0
    chunk: int = 256  # samples rendered per task
    protocol: str = DEFAULT_PROTOCOL  # which frames train, test, test unseen motions (structpose.data.protocol)
    unseen_images: int = 1_000  # images of the "unseen" split (protocol v2)
    renderer: str = DEFAULT_RENDERER  # "capsule" or "mesh" (structpose.render)

    def __post_init__(self) -> None:
        check_renderer(self.renderer)

    def images(self, split: str) -> int:
        """How many images ``split`` gets."""
        return {"train": self.train_images, "test": self.test_images, "unseen": self.unseen_images}[split]


SYNTH_PRESETS: dict[str, SynthConfig] = {
    "quick": SynthConfig(),
    "paper": SynthConfig(size=128, train_images=100_000, test_images=12_000, unseen_images=2_000),
    "tiny": SynthConfig(size=32, train_images=96, test_images=48, chunk=32, unseen_images=16),
}


def _frames(lib: PoseLibrary, split: str, n: int, seed: int, protocol: str = DEFAULT_PROTOCOL) -> np.ndarray:
    """Indices into ``lib`` of the frames rendered for ``split`` (without replacement while frames last)."""
    pool = np.flatnonzero(protocol_splits(lib, protocol) == split)
    if len(pool) == 0:
        raise ConfigError(f"the pose library has no '{split}' frames for these sources under protocol {protocol}")
    rng = np.random.default_rng([seed, _SPLIT_ID[split]])
    reps = int(np.ceil(n / len(pool)))
    return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n]


@lru_cache(maxsize=2)
def _library(path: str | Path | None, sources: tuple[str, ...]) -> PoseLibrary:
    """The pose library, loaded once per process."""
    return load_pose_library(path, sources=sources)


def render_split_sample(
    pose_world: np.ndarray,
    split: str,
    index: int,
    seed: int,
    size: int,
    margin: float,
    renderer: str = DEFAULT_RENDERER,
) -> RenderedSample:
    """Sample ``index`` of ``split`` exactly as :func:`synthesize` renders it, for any pose.

    The sample's camera, appearance, light, background and noise are all drawn from
    ``default_rng([seed, split id, index])`` (split ids: train 0, test 1, unseen 2), so the same pose,
    split, index and seed give the same bytes in every process (the mesh renderer: on one machine; it also
    draws the body of the body bank, after the appearance).

    Args:
        pose_world: (17, 3) mm, world frame (Z up), Human3.6M joint order.
        split: ``"train"``, ``"test"`` or ``"unseen"``: which split's random stream draws the sample.
        index: the sample's position in its split (>= 0).
        seed: the dataset seed (``SynthConfig.seed``).
        size: crop side S, pixels.
        margin: relative margin of the person box.
        renderer: ``"capsule"`` or ``"mesh"``.

    Returns:
        The :class:`~structpose.render.RenderedSample` (image, camera-frame root-relative pose, ...). With the
        mesh renderer the pose is the rendered body's own (same bone directions, the body's bone lengths).

    Raises:
        ValueError: the pose is malformed or cannot be seen by the sampled camera (see ``render_sample``).
    """
    check_renderer(renderer)
    pose = np.asarray(pose_world, dtype=np.float64)
    if renderer == "mesh":
        return next(_mesh_samples(pose[None], split, np.array([index]), seed, size, margin))
    rng = np.random.default_rng([seed, _SPLIT_ID[split], int(index)])
    return render_sample(pose, sample_camera(rng, pose), sample_appearance(rng), rng, size, margin)


def _mesh_samples(
    poses_world: np.ndarray, split: str, ids: np.ndarray, seed: int, size: int, margin: float
) -> Iterator[RenderedSample]:
    """Samples ``ids`` of ``split`` drawn by the mesh renderer, one per pose of ``poses_world`` (n, 17, 3) mm:
    the camera, appearance and body of each are drawn first (in that order, from the sample's own stream),
    the bodies posed in one batch (the same bits as one at a time), then each rendered."""
    from structpose.render.bodybank import load_body_bank
    from structpose.render.mesh import render_mesh_sample
    from structpose.render.retarget import pose_body

    bank = load_body_bank()
    poses = np.asarray(poses_world, dtype=np.float64)
    draws = []
    for pose, i in zip(poses, ids, strict=True):
        rng = np.random.default_rng([seed, _SPLIT_ID[split], int(i)])
        draws.append((rng, sample_camera(rng, pose), sample_appearance(rng), int(rng.integers(len(bank)))))
    posed = pose_body(poses, bank.joints[[body for *_, body in draws]])
    for k, (rng, camera, appearance, body) in enumerate(draws):
        yield render_mesh_sample(poses[k], camera, appearance, body, rng, size, margin, posed=posed[k])


def render_split_arrays(
    poses_world: np.ndarray,
    split: str,
    ids: np.ndarray,
    seed: int,
    size: int,
    margin: float,
    renderer: str = DEFAULT_RENDERER,
) -> dict[str, np.ndarray]:
    """The numeric store fields of samples ``ids`` of ``split`` rendered from ``poses_world`` (one pose each),
    by :func:`render_split_sample`: ``images`` (n, S, S, 3) uint8 and ``poses3d``, ``joints2d``,
    ``intrinsics``, ``boxes``, ``root_cam`` float32 (shapes and units: :mod:`structpose.data.store`).
    A pose that cannot be rendered raises ``ValueError`` naming its sample id."""
    out: dict[str, list] = {k: [] for k in ("images", "poses3d", "joints2d", "intrinsics", "boxes", "root_cam")}
    if renderer == "mesh":
        samples = _mesh_samples(poses_world, split, ids, seed, size, margin)
    else:
        samples = (render_split_sample(pose, split, int(i), seed, size, margin, renderer)
                   for pose, i in zip(poses_world, ids, strict=True))  # fmt: skip
    for i in ids:
        try:
            sample = next(samples)
        except ValueError as err:
            raise ValueError(f"sample {int(i)} of split {split!r}: {err}") from err
        out["images"].append(sample.image)
        out["poses3d"].append(sample.pose3d)
        out["joints2d"].append(sample.joints2d)
        out["intrinsics"].append(sample.camera.intrinsics_vector())
        out["boxes"].append(sample.box)
        out["root_cam"].append(sample.root_cam)
    return {k: np.stack(v).astype(np.uint8 if k == "images" else np.float32) for k, v in out.items()}


def _render_chunk(args: tuple) -> dict[str, np.ndarray | list]:
    """Render samples ``ids`` of a split (runs in a worker process)."""
    lib_path, sources, cfg, split, ids, frames = args
    lib = _library(lib_path, sources)
    arrays = render_split_arrays(lib.poses[frames], split, ids, cfg.seed, cfg.size, cfg.margin, cfg.renderer)
    meta: dict[str, list] = {k: [] for k in ("subject", "action", "sequence", "camera_id")}
    for i, f in zip(ids, frames, strict=True):
        seq = lib.sequences[int(lib.sequence[f])]
        meta["subject"].append(str(seq["subject"]))
        meta["action"].append(str(seq["action"]))
        meta["sequence"].append(str(seq["name"]))
        meta["camera_id"].append(f"synth:{int(i)}")
    arrays["frame"] = np.asarray([int(lib.frame[f]) for f in frames], dtype=np.int64)
    return {**arrays, **meta}


def library_poses(
    n: int, attrs: dict, exclude_sequences: set[str] | frozenset[str] = frozenset(), seed: int = 0
) -> np.ndarray:
    """Poses of the pose library's training frames as the rendered images see them, without rendering.

    Each of ``n`` poses is a training frame of the library and protocol a store was rendered from (its
    shard ``attrs``), drawn as the train split draws them (without replacement while frames last), seen by
    its own camera sampled as the renderer samples them, root-relative, in mm, in the camera frame. Used to
    train the pose prior on more poses than there are images (poses are the cheap resource). For a store
    of the mesh renderer each pose is carried onto a body of the body bank (drawn after the camera), as the
    mesh renderer's labels are: the same bone directions, the body's bone lengths.

    Args:
        n: how many poses.
        attrs: the attributes of a store shard written by :func:`synthesize` (pose library, sources, protocol).
        exclude_sequences: sequence names left out (e.g. the validation sequences).
        seed: the draw.

    Returns:
        (n, 17, 3) float32 mm.

    Raises:
        ConfigError: the store was not rendered by structpose, or no training frame is left.
    """
    if attrs.get("created_by") != "structpose data synth":
        raise ConfigError("data.ae_poses=library needs a store rendered by `structpose data synth` (its pose library)")
    path = attrs.get("pose_library", "")
    lib = _library(None if path.startswith("structpose/assets/") else path, tuple(attrs["sources"].split(",")))
    names = np.array([str(q["name"]) for q in lib.sequences])
    keep = (protocol_splits(lib, attrs.get("protocol", "v1")) == "train") & ~np.isin(names[lib.sequence],
                                                                                   list(exclude_sequences))  # fmt: skip
    pool = np.flatnonzero(keep)
    if len(pool) == 0:
        raise ConfigError("the pose library has no training frame left for data.ae_poses=library")
    rng = np.random.default_rng([seed, _POSES_ONLY])
    frames = np.concatenate([rng.permutation(pool) for _ in range(int(np.ceil(n / len(pool))))])[:n]
    joints = None
    if attrs.get("renderer", "capsule") == "mesh":
        from structpose.render.bodybank import load_body_bank

        joints = load_body_bank().joints
    out = np.empty((n, 17, 3), np.float32)
    for start in range(0, n, 4096):  # in blocks: a batch of poses is carried onto its bodies at once
        ids = range(start, min(start + 4096, n))
        out[ids.start : ids.stop] = _library_views(lib.poses[frames[ids.start : ids.stop]], ids, seed, joints)
    return out


def _library_views(poses: np.ndarray, ids: range, seed: int, body_joints: np.ndarray | None) -> np.ndarray:
    """Poses (n, 17, 3) world mm of :func:`library_poses`' draws ``ids``, each seen by its sampled camera and,
    with the rest joints of a body bank ``body_joints`` (K, 17, 3), carried onto a body drawn after the camera:
    (n, 17, 3) float32 root-relative camera-frame mm."""
    from structpose.render.retarget import pose_body

    poses = np.asarray(poses, dtype=np.float64)
    rngs = [np.random.default_rng([seed, _POSES_ONLY, i]) for i in ids]
    cameras = [sample_camera(rng, pose) for rng, pose in zip(rngs, poses, strict=True)]
    if body_joints is not None:
        bodies = [int(rng.integers(len(body_joints))) for rng in rngs]
        poses = pose_body(poses, body_joints[bodies]).joints
    cam = np.stack([camera.world_to_camera(pose) for camera, pose in zip(cameras, poses, strict=True)])
    return (cam - cam[:, :1]).astype(np.float32)


def _file_digest(path: Path | None) -> str:
    if path is None:
        from importlib import resources

        data = resources.files("structpose.assets").joinpath(POSELIB_ASSET).read_bytes()
    else:
        data = Path(path).read_bytes()
    return hashlib.sha256(data).hexdigest()


def synthesize(
    out: str | Path,
    cfg: SynthConfig,
    shard: tuple[int, int] = (0, 1),
    pose_library: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
    preset: str = "custom",
) -> list[Path]:
    """Render the train and test splits into the store directory ``out``; returns the files written.

    ``shard=(i, n)`` renders only the i-th of n contiguous parts of each split into
    ``{split}-0000i-of-0000n.h5``, for a cluster job array; the union of all shards equals the
    single-process result.
    """
    index, count = shard
    if not 0 <= index < count:
        raise InputError(f"shard index {index} is not in [0, {count})")
    out = Path(out)
    if out.suffix in (".h5", ".hdf5"):
        raise InputError("is a file name; --out wants a dataset directory (it receives train.h5 and test.h5)", out)
    check_protocol(cfg.protocol)
    count_here = sum(cfg.images(s) * (index + 1) // count - cfg.images(s) * index // count for s in _SPLIT_ID)
    require_free_space(out, estimated_bytes(count_here, cfg.size), "rendering this dataset")
    out.mkdir(parents=True, exist_ok=True)
    lib = _library(pose_library, cfg.sources)
    attrs_common = {
        "created_by": "structpose data synth",
        "preset": preset,
        "config": json.dumps(asdict(cfg)),
        "pose_library": str(pose_library or f"structpose/assets/{POSELIB_ASSET}"),
        "pose_library_sha256": _file_digest(pose_library),
        "sources": ",".join(cfg.sources),
        "protocol": cfg.protocol,
        **renderer_attrs(cfg.renderer, _licence_note(cfg.sources)),
    }
    written = []
    for split in _splits(cfg, lib):
        n = cfg.images(split)
        frames = _frames(lib, split, n, cfg.seed, cfg.protocol)
        lo, hi = n * index // count, n * (index + 1) // count
        ids = np.arange(lo, hi)
        tasks = [
            (pose_library, cfg.sources, cfg, split, ids[s : s + cfg.chunk], frames[ids[s : s + cfg.chunk]])
            for s in range(0, len(ids), cfg.chunk)
        ]
        path = shard_path(out, split, index, count)
        attrs = {**attrs_common, "split": split, "first_sample": int(lo), "num_split_samples": int(n)}
        bar = tqdm(total=len(ids), desc=f"render {split} -> {path.name}", unit="img", disable=not progress)
        with StoreWriter(path, cfg.size, attrs=attrs) as writer:
            if workers > 1:
                with ProcessPoolExecutor(workers, mp_context=pool_context(cfg.renderer)) as pool:
                    for part in pool.map(_render_chunk, tasks):
                        writer.append(**part)
                        bar.update(len(part["frame"]))
            else:
                for task in tasks:
                    part = _render_chunk(task)
                    writer.append(**part)
                    bar.update(len(part["frame"]))
        bar.close()
        written.append(path)
    return written


def pool_context(renderer: str):
    """The start method of render worker processes: ``spawn`` for the mesh renderer (one GL context per
    worker, never inherited from a parent that may hold one), the platform's default otherwise."""
    import multiprocessing

    return multiprocessing.get_context("spawn") if renderer == "mesh" else None


def renderer_attrs(renderer: str, licence: str) -> dict[str, str | int]:
    """The store attributes that name what drew it: ``renderer``, ``renderer_version`` and ``license``
    (``licence``, the poses' terms, plus for the mesh renderer the body model's), and for the mesh renderer
    the body bank's digest ``body_bank_sha256``."""
    attrs: dict[str, str | int] = {"renderer": renderer, "renderer_version": RENDERERS[renderer], "license": licence}
    if renderer == "mesh":
        from structpose.render.bodybank import LICENCE, bank_digest

        attrs.update(license=f"{licence}; {LICENCE}" if licence else LICENCE, body_bank_sha256=bank_digest())
    return attrs


def _splits(cfg: SynthConfig, lib: PoseLibrary) -> list[str]:
    """The splits to render: the protocol's, less ``unseen`` when it is empty for these sources or 0 images."""
    splits = list(PROTOCOL_SPLITS[cfg.protocol])
    if "unseen" in splits and (cfg.unseen_images == 0 or not (protocol_splits(lib, cfg.protocol) == "unseen").any()):
        splits.remove("unseen")
    return splits


def _licence_note(sources: tuple[str, ...]) -> str:
    note = "CMU Graphics Lab Motion Capture Database (free for any use; mocap.cs.cmu.edu)"
    if "bandai" in sources:
        note += "; Bandai-Namco-Research-Motiondataset, CC BY-NC 4.0: NON-COMMERCIAL use only"
    return note


def default_store_dir(preset: str, protocol: str = DEFAULT_PROTOCOL, renderer: str = DEFAULT_RENDERER) -> Path:
    """Where ``structpose data synth`` and ``reproduce`` keep a rendered preset: ``data/synth/PRESET-PROTOCOL``
    for capsule people, ``data/synth/PRESET-PROTOCOL-mesh`` for mesh people."""
    return Path("data/synth") / (f"{preset}-{protocol}" + ("" if renderer == "capsule" else f"-{renderer}"))


def resolve_preset(name: str, **overrides) -> SynthConfig:
    if name not in SYNTH_PRESETS:
        raise ConfigError(f"unknown synth preset {name!r}; known: {', '.join(SYNTH_PRESETS)}")
    return replace(SYNTH_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
