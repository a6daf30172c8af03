"""The pose library: every real mocap frame of the shared data as Human3.6M-17 poses, and its loader.

File format (version :data:`DEFAULT_POSELIB_VERSION`, ``assets/poselib_v1.npz``), an ``.npz`` with members

* ``poses``     (N, 17, 3) int16, millimetres, H36M world frame (right-handed, Z up, floor at z = 0, each
  sequence centred on its mean Hip x, y; the trajectory within a sequence is kept);
* ``sequence``  (N,) int32 index into the sequence table; ``frame`` (N,) int32 frame index at ``fps``;
* ``sequences`` UTF-8 JSON (uint8 bytes): one dict per sequence with ``name, source, folder, path, subject,
  action, label, style, split, license, rig, source_fps``;
* ``meta``      UTF-8 JSON (uint8 bytes): ``version, fps, joints, units, world, splits, acknowledgements``.

Build it with :func:`build_pose_library` (``structpose data mocap --data-root DATA_ROOT [--out FILE]``, or
``python -m structpose.data.poselib DATA_ROOT OUT``); the build is deterministic (same data -> byte-identical
file) and writes only where it is told (default ``./poselib_v1.npz``), never into the package's ``assets``
folder: the shipped file is compared with a rebuild, not overwritten by one. A take that cannot be read is
left out and reported (:class:`LibraryBuild`); the rest still builds. The split is described by
:func:`split_description`.
"""

from __future__ import annotations

import argparse
import collections
import importlib.resources
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from structpose.data.mocap.actions import h36m_action
from structpose.data.mocap.catalog import BANDAI_LICENSE, CMU_LICENSE, Take, discover, read_manifest
from structpose.data.mocap.convert import take_to_h36m
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.npz import write_npz
from structpose.data.mocap.splits import split_description, split_of
from structpose.errors import FormatError, InputError
from structpose.files import write_text
from structpose.skeleton import H36M

DEFAULT_POSELIB_VERSION = 1
POSELIB_ASSET = f"poselib_v{DEFAULT_POSELIB_VERSION}.npz"

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_POSELIB_VERSION",
    "LeftOut",
    "LibraryBuild",
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
            raise FormatError(f"pose library version {meta['version']}, expected {DEFAULT_POSELIB_VERSION}", path)
        library = PoseLibrary(
            poses=data["poses"].astype(np.float32),
            sequence=data["sequence"].astype(np.int32),
            frame=data["frame"].astype(np.int32),
            sequences=_json_load(data["sequences"]),
            fps=float(meta["fps"]),
        )
    return library.select(np.isin(library.column("source"), list(sources)))


@dataclass(frozen=True)
class LeftOut:
    """A take that :func:`build_pose_library` left out because it could not be read or converted.

    ``take``: its path relative to the data root (as in the library's sequence table); ``path``: its motion
    file (``data_root / take``); ``error``: why -- the error's message, which names the file at fault (the
    take's file or its ASF skeleton) and, where known, the line.
    """

    take: str
    path: Path
    error: str

    def __str__(self) -> str:
        return self.error if self.error.startswith(str(self.path)) else f"{self.path}: {self.error}"


@dataclass(frozen=True)
class LibraryBuild:
    """What :func:`build_pose_library` wrote.

    ``path``: the library ``.npz`` (its sidecar is ``path.with_suffix(".txt")``); ``sequences``: the takes in
    it; ``left_out``: the takes that could not be read, in take order (empty for a complete build).
    ``str(build)`` is the path written.
    """

    path: Path
    sequences: int
    left_out: tuple[LeftOut, ...] = ()

    def __str__(self) -> str:
        return str(self.path)


def build_pose_library(
    data_root: Path,
    out: Path | None = None,
    sources: tuple[str, ...] = ("cmu", "bandai"),
    fps: float = 20.0,
    progress: bool = True,
) -> LibraryBuild:
    """Convert all mocap of ``data_root`` (the shared data folder) into a pose-library file ``out``.

    Every take found by :func:`structpose.data.mocap.catalog.discover` is read, mapped to H36M-17 in mm,
    placed on the floor, resampled to ``fps`` Hz and rounded to int16 mm. Frame rates are cross-checked
    against ``MANIFEST.tsv`` (``fps_true``) where it lists the take. Also writes the human-readable sidecar
    ``out.with_suffix(".txt")`` (licences, attribution, split, statistics). Deterministic; both files are
    written atomically. A take that raises a :class:`~structpose.errors.FormatError` (a file that cannot be
    read, a missing joint, no frame, a rate the manifest contradicts) is left out, logged as a warning and
    listed in the result and the sidecar; the other takes still build.

    Args:
        data_root: the shared data folder (holds ``MANIFEST.tsv`` and the source folders).
        out: the ``.npz`` to write; ``None``: ``poselib_v1.npz`` in the current directory. Never inside the
            package's ``assets`` folder (the shipped library is compared with a rebuild, not replaced).
        sources: which sources to read (``"cmu"``, ``"bandai"``).
        fps: the library's frame rate (Hz).
        progress: show a progress bar.

    Returns:
        The :class:`LibraryBuild`: the path written, the number of sequences, the takes left out.

    Raises:
        InputError: ``out`` is not an ``.npz`` or lies in the package's ``assets`` folder, or ``data_root``
            holds no mocap of ``sources``.
        FormatError: no take at all could be read.
    """
    data_root = Path(data_root)
    out = _library_path(out)
    takes = discover(data_root, sources)
    if not takes:
        raise InputError(
            f"no mocap files of sources {', '.join(sources)} here; point --data-root at the shared data folder "
            "(the one holding MANIFEST.tsv and cmu_*/bandai_* folders)",
            data_root,
        )
    manifest = read_manifest(data_root)
    read: list[tuple[Take, np.ndarray, float]] = []
    left_out: list[LeftOut] = []
    for take in tqdm(takes, desc="pose library", disable=not progress):
        try:
            read.append((take, *_take_poses(data_root, take, manifest, fps)))
        except FormatError as err:
            left_out.append(LeftOut(take.path, data_root / take.path, str(err)))
            logger.warning("left out of the pose library: %s", left_out[-1])
    if not read:
        raise FormatError(f"no take could be read ({len(left_out)} tried); the first: {left_out[0]}", data_root)
    arrays, table = _library_arrays(read, fps)
    write_npz(out, arrays)
    library = PoseLibrary(arrays["poses"].astype(np.float32), arrays["sequence"], arrays["frame"], table, fps)
    write_text(out.with_suffix(".txt"), _sidecar_text(out.name, library, [p.take for p in left_out]))
    return LibraryBuild(out, len(table), tuple(left_out))


def _package_assets() -> Path:
    """The installed package's ``assets`` folder, where the shipped library lives."""
    return Path(str(importlib.resources.files("structpose.assets")))


def _library_path(out: Path | None) -> Path:
    """Where a build may write: ``out`` (default ``./poselib_v1.npz``), an .npz outside the package's assets."""
    out = Path(out) if out is not None else Path.cwd() / POSELIB_ASSET
    if out.suffix != ".npz":
        raise InputError(f"a pose library is an .npz file (its sidecar gets .txt): name it e.g. {out.stem}.npz", out)
    assets = _package_assets()
    if out.resolve().is_relative_to(assets.resolve()):
        raise InputError(
            f"refusing to write into the package's assets folder {assets}: the shipped library is rebuilt "
            f"elsewhere and compared, not overwritten; leave out --out (writes ./{POSELIB_ASSET}) or give "
            f"another path, then e.g. `cmp {POSELIB_ASSET} {assets / POSELIB_ASSET}`",
            out,
        )
    return out


def _take_poses(
    data_root: Path, take: Take, manifest: dict[str, dict[str, str]], fps: float
) -> tuple[np.ndarray, float]:
    """One take's library poses (F, 17, 3) int16 mm at ``fps`` Hz and its source rate (Hz).

    Raises:
        FormatError: the take cannot be read or converted, its manifest rate is not a number, or its
            positions do not fit int16 millimetres.
    """
    listed = manifest.get(take.path, {}).get("fps_true")
    try:
        expected = float(listed) if listed else None
    except ValueError:
        raise MocapFormatError(
            data_root / "MANIFEST.tsv", f"fps_true {listed!r} of {take.path} is not a number"
        ) from None
    seq, source_fps = take_to_h36m(data_root, take, fps, expected_fps=expected)
    if np.abs(seq).max() > np.iinfo(np.int16).max:
        raise MocapFormatError(
            data_root / take.path, "positions beyond the int16 mm range (+-32.767 m): a wrong unit or a corrupt take"
        )
    return np.round(seq).astype(np.int16), source_fps


def _library_arrays(read: list[tuple[Take, np.ndarray, float]], fps: float) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The library's members (in file order) and its sequence table, from the takes read and their poses."""
    poses, sequence, frame, table = [], [], [], []
    for index, (take, seq, source_fps) in enumerate(read):
        poses.append(seq)
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
    return arrays, table


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


def _sidecar_text(name: str, library: PoseLibrary, left_out: list[str]) -> str:
    """The human-readable companion of a library file: licences, attribution, split, statistics and the
    takes left out (relative paths; nothing is added when none was)."""
    parts = [
        f"{name}: structpose pose library v{DEFAULT_POSELIB_VERSION} (Human3.6M 17 joints, mm, Z up)",
        "Built by structpose.data.poselib.build_pose_library from real motion capture:",
        "CMU sequences -- " + CMU_LICENSE,
        "Bandai-Namco sequences -- " + BANDAI_LICENSE,
        "Split -- " + split_description(),
        summary(library),
    ]
    if left_out:
        parts.append(f"Left out (could not be read): {len(left_out)} takes\n" + "\n".join(f"  {t}" for t in left_out))
    return "\n\n".join(parts) + "\n"


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
    """``python -m structpose.data.poselib DATA_ROOT OUT [--fps 20]``: build and summarise a pose library;
    exits with status 1 when takes were left out (they are logged as warnings)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--fps", type=float, default=20.0)
    args = parser.parse_args()
    build = build_pose_library(args.data_root, args.out, fps=args.fps)
    print(f"{build.path}: {build.path.stat().st_size / 2**20:.2f} MiB")
    print(summary(load_pose_library(build.path)))
    if build.left_out:
        print(f"{len(build.left_out)} takes left out (listed above and in the .txt sidecar)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
