"""The pose library: every real mocap frame of the shared data as Human3.6M-17 poses, and its loader.

File format (version :data:`DEFAULT_POSELIB_VERSION`, ``assets/poselib_v1.npz``), an ``.npz`` with members

* ``poses``     (N, 17, 3) int16, millimetres, H36M world frame (right-handed, Z up, floor at z = 0, each
  sequence centred on its mean Hip x, y; the trajectory within a sequence is kept);
* ``sequence``  (N,) int32 index into the sequence table; ``frame`` (N,) int32 frame index at ``fps``;
* ``sequences`` UTF-8 JSON (uint8 bytes): one dict per sequence with ``name, source, folder, path, subject,
  action, label, style, split, license, rig, source_fps``;
* ``meta``      UTF-8 JSON (uint8 bytes): ``version, fps, joints, units, world, splits, acknowledgements``.

Build it with :func:`build_pose_library` (``python -m structpose.data.poselib DATA_ROOT OUT``); the build is
deterministic (same data -> byte-identical file). The split is described by :func:`split_description`.
"""

from __future__ import annotations

import argparse
import collections
import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from structpose.data.mocap.actions import h36m_action
from structpose.data.mocap.catalog import BANDAI_LICENSE, CMU_LICENSE, discover, read_manifest
from structpose.data.mocap.convert import take_to_h36m
from structpose.data.mocap.npz import write_npz
from structpose.data.mocap.splits import split_description, split_of
from structpose.skeleton import H36M

DEFAULT_POSELIB_VERSION = 1
POSELIB_ASSET = f"poselib_v{DEFAULT_POSELIB_VERSION}.npz"

__all__ = [
    "DEFAULT_POSELIB_VERSION",
    "PoseLibrary",
    "build_pose_library",
    "load_pose_library",
    "split_description",
    "summary",
]


@dataclass
class PoseLibrary:
    """Library frames and their sequence table.

    ``poses``: (N, 17, 3) float32 mm, world frame, Z up. ``sequence``: (N,) int32 index into ``sequences``.
    ``frame``: (N,) int32 frame index at the library rate ``fps`` (Hz). ``sequences``: dicts with at least
    ``name, source, subject, action, label, split, license, path``.
    """

    poses: np.ndarray
    sequence: np.ndarray
    frame: np.ndarray
    sequences: list[dict]
    fps: float

    def column(self, key: str) -> np.ndarray:
        """Per-frame (N,) array of a sequence-table key, e.g. ``"subject"``, ``"action"``, ``"split"``."""
        return np.asarray([s[key] for s in self.sequences])[self.sequence]

    def select(self, mask: np.ndarray) -> PoseLibrary:
        """The frames where ``mask`` (N,) bool (or an index array) holds; unused sequences are dropped and
        the sequence indices renumbered (order kept)."""
        sequence = self.sequence[mask]
        used = np.unique(sequence)
        remap = np.full(len(self.sequences), -1, dtype=np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        return PoseLibrary(
            poses=self.poses[mask],
            sequence=remap[sequence],
            frame=self.frame[mask],
            sequences=[self.sequences[i] for i in used],
            fps=self.fps,
        )

    def __len__(self) -> int:
        return int(self.poses.shape[0])


def _json_bytes(obj: object) -> np.ndarray:
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _json_load(array: np.ndarray) -> object:
    return json.loads(array.tobytes().decode("utf-8"))


def load_pose_library(path: str | Path | None = None, sources: tuple[str, ...] = ("cmu", "bandai")) -> PoseLibrary:
    """Load a pose library (``None``: the shipped ``structpose/assets/poselib_v1.npz``), keeping ``sources``."""
    if path is None:
        resource = importlib.resources.files("structpose.assets") / POSELIB_ASSET
        with importlib.resources.as_file(resource) as shipped:
            return load_pose_library(shipped, sources)
    with np.load(path, allow_pickle=False) as data:
        meta = _json_load(data["meta"])
        if meta["version"] != DEFAULT_POSELIB_VERSION:
            raise ValueError(f"{path}: pose library version {meta['version']}, expected {DEFAULT_POSELIB_VERSION}")
        library = PoseLibrary(
            poses=data["poses"].astype(np.float32),
            sequence=data["sequence"].astype(np.int32),
            frame=data["frame"].astype(np.int32),
            sequences=_json_load(data["sequences"]),
            fps=float(meta["fps"]),
        )
    return library.select(np.isin(library.column("source"), list(sources)))


def build_pose_library(
    data_root: Path,
    out: Path | None,
    sources: tuple[str, ...] = ("cmu", "bandai"),
    fps: float = 20.0,
    progress: bool = True,
) -> Path:
    """Convert all mocap of ``data_root`` (the shared data folder) into a pose-library file ``out``
    (``None``: the package's ``assets/poselib_v1.npz``, i.e. rebuild the shipped library).

    Every take found by :func:`structpose.data.mocap.catalog.discover` is read, mapped to H36M-17 in mm,
    placed on the floor, resampled to ``fps`` Hz and rounded to int16 mm. Frame rates are cross-checked
    against ``MANIFEST.tsv`` (``fps_true``) where it lists the take. Also writes the human-readable sidecar
    ``out.with_suffix(".txt")`` (licences, attribution, split, statistics). Deterministic. Returns ``out``.
    """
    data_root = Path(data_root)
    out = Path(out) if out is not None else Path(__file__).resolve().parents[1] / "assets" / POSELIB_ASSET
    takes = discover(data_root, sources)
    if not takes:
        raise FileNotFoundError(f"no mocap of sources {sources} under {data_root}")
    manifest = read_manifest(data_root)
    poses, sequence, frame, table = [], [], [], []
    for index, take in enumerate(tqdm(takes, desc="pose library", disable=not progress)):
        listed = manifest.get(take.path, {}).get("fps_true")
        seq, source_fps = take_to_h36m(data_root, take, fps, expected_fps=float(listed) if listed else None)
        if np.abs(seq).max() > np.iinfo(np.int16).max:
            raise ValueError(f"{take.path}: positions beyond the int16 mm range")
        poses.append(np.round(seq).astype(np.int16))
        sequence.append(np.full(len(seq), index, dtype=np.int32))
        frame.append(np.arange(len(seq), dtype=np.int32))
        table.append(
            {
                "name": take.name, "source": take.source, "folder": take.folder, "path": take.path,
                "subject": take.subject, "action": h36m_action(take.label), "label": take.label,
                "style": take.style, "split": split_of(take), "license": take.license, "rig": take.rig,
                "source_fps": source_fps,
            }
        )  # fmt: skip
    arrays = {
        "poses": np.concatenate(poses),
        "sequence": np.concatenate(sequence),
        "frame": np.concatenate(frame),
        "sequences": _json_bytes(table),
        "meta": _json_bytes(_meta(fps)),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    library = PoseLibrary(arrays["poses"].astype(np.float32), arrays["sequence"], arrays["frame"], table, fps)
    out.with_suffix(".txt").write_text(_sidecar_text(out.name, library))
    return write_npz(out, arrays)


def _meta(fps: float) -> dict:
    return {
        "version": DEFAULT_POSELIB_VERSION,
        "fps": fps,
        "joints": list(H36M.names),
        "units": "millimetres (int16)",
        "world": "Human3.6M world frame: right-handed, Z up, floor z = 0, each sequence centred on its mean Hip x, y",
        "splits": split_description(),
        "acknowledgements": [CMU_LICENSE, BANDAI_LICENSE],
    }


def _sidecar_text(name: str, library: PoseLibrary) -> str:
    """The human-readable companion of a library file: licences, attribution, split and statistics."""
    return (
        "\n\n".join(
            [
                f"{name}: structpose pose library v{DEFAULT_POSELIB_VERSION} (Human3.6M 17 joints, mm, Z up)",
                "Built by structpose.data.poselib.build_pose_library from real motion capture:",
                "CMU sequences -- " + CMU_LICENSE,
                "Bandai-Namco sequences -- " + BANDAI_LICENSE,
                "Split -- " + split_description(),
                summary(library),
            ]
        )
        + "\n"
    )


def summary(library: PoseLibrary) -> str:
    """Frames per source, and per source and split / action, as text."""
    source = library.column("source")
    lines = [f"{len(library)} frames at {library.fps:g} Hz, {len(library.sequences)} sequences"]
    lines += [f"  {s}: {n}" for s, n in sorted(collections.Counter(source).items())]
    for key in ("split", "action"):
        lines.append(f"frames by source and {key}:")
        counts = collections.Counter(zip(source, library.column(key), strict=True))
        lines += [f"  {s:6} {k}: {n}" for (s, k), n in sorted(counts.items())]
    return "\n".join(lines)


def main() -> None:
    """``python -m structpose.data.poselib DATA_ROOT OUT [--fps 20]``: build and summarise a pose library."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--fps", type=float, default=20.0)
    args = parser.parse_args()
    out = build_pose_library(args.data_root, args.out, fps=args.fps)
    print(f"{out}: {out.stat().st_size / 2**20:.2f} MiB")
    print(summary(load_pose_library(out)))


if __name__ == "__main__":
    main()
