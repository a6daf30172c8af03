"""Import the official Human3.6M release into the store: person crops, 17-joint poses and cameras.

For every (subject, sequence, camera) with poses and a video (:func:`structpose.data.h36m.find_sequences`)
the D3_Positions world poses (32 joints, mm) are cut to the 17 joints of :data:`structpose.skeleton.H36M`,
moved into the camera frame with the shipped calibration and projected with Human3.6M's distortion model;
every ``every``-th video frame is cropped around the projected joints (:func:`structpose.crop.person_box`)
and resized to ``size`` x ``size``. Stored per sample (see :mod:`structpose.data.store`): the crop,
root-relative camera-frame pose (mm), joints in crop pixels, intrinsics, box, root position (mm) and
subject / canonical action / sequence (the file stem, with its sub-action) / frame (50 fps index) / camera.

Resumable and parallel: each sequence is written to its own part file ``OUT/.parts/<subject>/<stem>.<camera>.h5``
(atomically, by :class:`~structpose.data.store.StoreWriter`) by a pool of ``workers`` processes; a finished
part made with the same settings is not redone. The parts of each protocol split are then streamed into
``OUT/{split}.h5`` or ``OUT/{split}-0000k-of-0000n.h5`` (at most :data:`MAX_SAMPLES_PER_SHARD` samples per
file). Only complete files ever carry a final name; a killed run is resumed by running it again.

Defects are reported, not fatal: the known damaged video, unreadable CDF or video files, videos whose
frame count differs from the poses' by more than :data:`MAX_FRAME_MISMATCH` (within it, both are cut to
the shorter), videos of an unexpected size. The report names each file concerned and is also written to
``OUT/h36m_import_report.txt``.
"""

from __future__ import annotations

import math
import multiprocessing
import re
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from structpose.camera import H36M_RESOLUTION, h36m_camera
from structpose.crop import DEFAULT_MARGIN, crop_resize, person_box, to_crop
from structpose.data.h36m import (
    KNOWN_DAMAGED_VIDEOS,
    PROTOCOL_SPLITS,
    VIDEO_FPS,
    H36MFormatError,
    H36MSequence,
    find_sequences,
    read_cdf_poses,
)
from structpose.data.store import META_FIELDS, StoreError, StoreReader, StoreWriter, open_store, shard_path
from structpose.data.video import VideoError, iter_frames, probe_video
from structpose.errors import InputError
from structpose.skeleton import H36M_32_TO_17

#: Largest difference (frames) between a video's length and its poses' that is cut to the shorter; the
#: release's videos are often a few frames longer than the poses. Larger differences are refused.
MAX_FRAME_MISMATCH = 5
#: Samples per output file; at 128 x 128 px about 2.3 GiB.
MAX_SAMPLES_PER_SHARD = 50_000
#: A video's size may differ from the camera's nominal size by this much (px); more means a rescaled video.
RESOLUTION_TOLERANCE_PX = 2
#: When the release's own per-camera files are present, the computed poses must agree with them this well.
CHECK_TOLERANCE_MM = 5.0
CHECK_TOLERANCE_PX = 3.0
PARTS_DIR = ".parts"
REPORT_NAME = "h36m_import_report.txt"
LICENSE_NOTE = (
    "Human3.6M (vision.imar.ro/human3.6m): licensed for non-commercial research only; "
    "do not redistribute (see the dataset's EULA)"
)
_MERGE_CHUNK = 256  # samples copied at a time while merging


@dataclass(frozen=True)
class ImportConfig:
    """The settings that determine a part file's content: crop side (px), frame step, box margin."""

    size: int
    every: int
    margin: float


@dataclass(frozen=True)
class SequenceResult:
    """The outcome of one sequence: ``status`` is imported, resumed, skipped or failed; ``notes`` are report
    lines (the reason when skipped or failed, remarks such as a truncation otherwise)."""

    key: str
    status: str
    samples: int = 0
    notes: tuple[str, ...] = ()


@dataclass
class ImportReport:
    """What :func:`import_h36m` did. ``files``/``samples``: per split; ``imported``: keys (``S1/Directions
    1.54138969``) of the sequences in the output, ``resumed`` those taken from a previous run's parts;
    ``problems``: one line per sequence or file left out, naming the path; ``notes``: remarks on imported
    sequences (truncations, disagreements with the release's per-camera files)."""

    out: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    imported: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Human3.6M import into {self.out}"]
        for split, files in self.files.items():
            lines.append(f"{split}: {self.samples[split]} samples in {', '.join(p.name for p in files)}")
        lines.append(f"{len(self.imported)} sequences imported ({len(self.resumed)} resumed from a previous run)")
        lines += [f"{len(self.problems)} problems:", *(f"  {p}" for p in self.problems)]
        lines += [f"{len(self.notes)} notes:", *(f"  {n}" for n in self.notes)]
        return "\n".join(lines)


def import_h36m(
    root: Path,
    out: Path,
    size: int = 128,
    every: int = 5,
    subjects: list[str] | None = None,
    actions: list[str] | None = None,
    workers: int = 0,
    margin: float = DEFAULT_MARGIN,
    progress: bool = True,
    keep_parts: bool = False,
) -> ImportReport:
    """Import the release under ``root`` into the dataset directory ``out`` (see the module docstring).

    ``subjects``/``actions``: a selection (None: all seven subjects, all 15 canonical actions);
    ``workers``: processes (0: in this process); ``keep_parts``: keep ``OUT/.parts`` after the merge, so
    a later import with more subjects or actions redoes nothing already done (costs the output's size again).
    Raises ``FileNotFoundError`` if ``root`` holds no sequence at all.
    """
    root, out = Path(root), Path(out)
    if size <= 0 or every <= 0 or margin < 0:
        raise InputError(f"size and every must be positive and margin >= 0, got {size}, {every}, {margin}")
    cfg = ImportConfig(size, every, float(margin))
    sequences, problems = find_sequences(root, subjects, actions)
    if not sequences:
        raise FileNotFoundError(
            f"no Human3.6M sequence under {root}: expected S*/MyPoseFeatures/D3_Positions/*.cdf and "
            f"S*/Videos/*.mp4 (see `structpose data h36m --help`). Found: {'; '.join(problems[:8])}"
        )
    out.mkdir(parents=True, exist_ok=True)
    parts_dir = out / PARTS_DIR
    for stale in [*parts_dir.glob("*/*.h5.tmp"), *out.glob("*.h5.tmp")]:  # left by a killed run
        stale.unlink()
    parts = {s.key: parts_dir / s.subject / f"{s.name}.{s.camera_id}.h5" for s in sequences}
    results = _run(sequences, parts, cfg, workers, progress)

    report = ImportReport(out=out, problems=problems)
    for seq in sequences:
        r = results[seq.key]
        (report.notes if r.status in ("imported", "resumed") else report.problems).extend(r.notes)
        if r.status in ("imported", "resumed") and r.samples:
            report.imported.append(seq.key)
        if r.status == "resumed":
            report.resumed.append(seq.key)
    for split, split_subjects in PROTOCOL_SPLITS.items():
        keys = [s.key for s in sequences if s.split == split and s.key in report.imported]
        if keys:
            present = sorted({k.split("/")[0] for k in keys}, key=split_subjects.index)
            attrs = _split_attrs(split, present, cfg)
            sizes = [results[k].samples for k in keys]
            report.files[split] = _merge([parts[k] for k in keys], sizes, out, split, cfg.size, attrs, progress)
            report.samples[split] = sum(results[k].samples for k in keys)
    (out / REPORT_NAME).write_text(report.summary() + "\n")
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return report


# ---- one sequence -------------------------------------------------------------------------------
def _run(
    sequences: list[H36MSequence], parts: dict[str, Path], cfg: ImportConfig, workers: int, progress: bool
) -> dict[str, SequenceResult]:
    """Import the sequences whose part is not finished yet, in ``workers`` processes; results by key."""
    results = {}
    todo = []
    for seq in sequences:
        done = _finished_part(parts[seq.key], cfg)
        if done is None:
            todo.append(seq)
        else:
            results[seq.key] = SequenceResult(seq.key, "resumed", *done)
    bar = tqdm(total=len(sequences), initial=len(results), desc="Human3.6M sequences", unit="seq",
               disable=not progress)  # fmt: skip
    if workers > 0 and todo:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_import_sequence, seq, cfg, parts[seq.key]) for seq in todo]
            for future in as_completed(futures):
                r = future.result()
                results[r.key] = r
                bar.update()
    else:
        for seq in todo:
            results[seq.key] = _import_sequence(seq, cfg, parts[seq.key])
            bar.update()
    bar.close()
    return results


def _finished_part(part: Path, cfg: ImportConfig) -> tuple[int, tuple[str, ...]] | None:
    """(samples, notes) of a finished part made with ``cfg``, or None if it must be (re)done."""
    if not part.is_file():
        return None
    try:
        with open_store(part) as store:
            if store.attrs.get("import_config") != asdict(cfg):
                return None
            return len(store), tuple(store.attrs.get("notes", ()))
    except StoreError:
        return None


def _import_sequence(seq: H36MSequence, cfg: ImportConfig, part: Path) -> SequenceResult:
    """Write one sequence's part file; never raises for bad input files (runs in a worker process)."""
    damaged = KNOWN_DAMAGED_VIDEOS.get((seq.subject, seq.name, seq.camera_id))
    if damaged is not None:
        return SequenceResult(seq.key, "skipped", notes=(f"{seq.key}: skipped, {damaged}: {seq.video}",))
    try:
        samples, notes = _write_part(seq, cfg, part)
    except (H36MFormatError, VideoError) as e:  # their messages name the file
        return SequenceResult(seq.key, "failed", notes=(f"{seq.key}: not imported: {e}",))
    except Exception as e:
        line = f"{seq.key}: not imported: {type(e).__name__}: {e} (poses {seq.poses}, video {seq.video})"
        return SequenceResult(seq.key, "failed", notes=(line,))
    return SequenceResult(seq.key, "imported", samples, tuple(notes))


def _write_part(seq: H36MSequence, cfg: ImportConfig, part: Path) -> tuple[int, list[str]]:
    """Read, check, crop and store one sequence into ``part``; returns (samples, report notes)."""
    world = read_cdf_poses(seq.poses, 3)[:, H36M_32_TO_17]  # (F, 17, 3) mm
    cam = h36m_camera(seq.subject, seq.camera_id)
    pcam = cam.world_to_camera(world)
    if np.any(pcam[..., 2] <= 0):
        raise H36MFormatError(f"{seq.poses}: joints behind camera {seq.camera_id} (wrong subject's poses?)")
    uv = cam.project(pcam)  # (F, 17, 2) full-image px
    notes = _cross_check(seq, pcam, uv)

    info = probe_video(seq.video)
    width, height = H36M_RESOLUTION[seq.camera_id]
    if max(abs(info.width - width), abs(info.height - height)) > RESOLUTION_TOLERANCE_PX:
        raise VideoError(f"{seq.video}: {info.width}x{info.height} px, expected the camera's {width}x{height}")
    if abs(info.frames - len(world)) > MAX_FRAME_MISMATCH:
        raise VideoError(
            f"{seq.video}: {info.frames} frames but {len(world)} poses in {seq.poses}; refused, they differ by "
            f"more than MAX_FRAME_MISMATCH={MAX_FRAME_MISMATCH} frames"
        )
    n = min(info.frames, len(world))
    if info.frames != len(world):
        notes.append(f"{seq.key}: cut to {n} frames (video {info.frames}, poses {len(world)})")

    boxes = person_box(uv[:n], cfg.margin)  # (n, 4)
    joints2d = to_crop(uv[:n], boxes, cfg.size)
    root = pcam[:n, 0]
    poses3d = pcam[:n] - root[:, None]
    intrinsics = cam.intrinsics_vector()[None]
    attrs = {"source": "Human3.6M", "created_by": "structpose data h36m", "sequence_key": seq.key,
             "import_config": asdict(cfg), "notes": notes}  # fmt: skip
    part.parent.mkdir(parents=True, exist_ok=True)
    with StoreWriter(part, cfg.size, attrs=attrs) as writer:
        for i, image in iter_frames(seq.video, n, cfg.every):
            s = slice(i, i + 1)
            writer.append(
                images=crop_resize(image, boxes[i], cfg.size)[None], poses3d=poses3d[s], joints2d=joints2d[s],
                intrinsics=intrinsics, boxes=boxes[s], root_cam=root[s], subject=[seq.subject],
                action=[seq.action], sequence=[seq.name], frame=np.array([i]), camera_id=[seq.camera_id],
            )  # fmt: skip
        samples = len(writer)
    return samples, notes


def _cross_check(seq: H36MSequence, pcam: np.ndarray, uv: np.ndarray) -> list[str]:
    """Compare the computed camera-frame poses (F, 17, 3) mm and projections (F, 17, 2) px with the release's
    D3_Positions_mono and D2_Positions files where present; a report line per disagreement."""
    notes = []
    checks = ((seq.mono, pcam, 3, CHECK_TOLERANCE_MM, "mm"), (seq.d2, uv, 2, CHECK_TOLERANCE_PX, "px"))
    for path, computed, dims, tolerance, unit in checks:
        if path is None:
            continue
        try:
            official = read_cdf_poses(path, dims)[:, H36M_32_TO_17]
        except H36MFormatError as e:
            notes.append(f"{seq.key}: not cross-checked: {e}")
            continue
        if len(official) != len(computed):
            notes.append(f"{seq.key}: {path} has {len(official)} frames, D3_Positions {len(computed)}; not compared")
            continue
        err = float(np.abs(official - computed).max())
        if err > tolerance:
            notes.append(f"{seq.key}: {path} differs from the D3_Positions poses through the shipped camera "
                         f"by up to {err:.1f} {unit} (tolerance {tolerance} {unit})")  # fmt: skip
    return notes


# ---- merging the parts of a split ---------------------------------------------------------------
def _split_attrs(split: str, subjects: list[str], cfg: ImportConfig) -> dict:
    return {
        "source": "Human3.6M official release (vision.imar.ro/human3.6m)",
        "created_by": "structpose data h36m",
        "split": split,
        "protocol": {"name": "Human3.6M standard protocol", **{k: list(v) for k, v in PROTOCOL_SPLITS.items()}},
        "subjects": subjects,
        "import_config": asdict(cfg),
        "fps": VIDEO_FPS / cfg.every,
        "license": LICENSE_NOTE,
    }


def _merge(
    parts: list[Path], sizes: list[int], out: Path, split: str, size: int, attrs: dict, progress: bool
) -> list[Path]:
    """Stream ``parts`` (in order; ``sizes``: their sample counts) into balanced shards of ``split`` under
    ``out``; returns the shard paths. Other files of the split (an earlier import's shards) are removed once
    the new ones are in place.
    """
    total = sum(sizes)
    num_shards = max(1, math.ceil(total / MAX_SAMPLES_PER_SHARD))
    quota = math.ceil(total / num_shards)
    paths = [shard_path(out, split, k, num_shards) for k in range(num_shards)]
    bar = tqdm(total=total, desc=f"merge {split}", unit="img", disable=not progress)
    shard, writer = 0, None
    try:
        for p in parts:
            with open_store(p) as store:
                for start in range(0, len(store), _MERGE_CHUNK):
                    stop = min(start + _MERGE_CHUNK, len(store))
                    while start < stop:
                        if writer is None:
                            shard_attrs = {**attrs, "shard": shard, "num_shards": num_shards}
                            writer = StoreWriter(paths[shard], size, attrs=shard_attrs)
                        take = min(stop - start, quota - len(writer))
                        writer.append(**_rows(store, start, start + take))
                        bar.update(take)
                        start += take
                        if len(writer) == quota:
                            writer.close()
                            shard, writer = shard + 1, None
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    own = re.compile(rf"{re.escape(split)}(-\d{{5}}-of-\d{{5}})?\.h5")
    for stale in out.glob("*.h5"):
        if own.fullmatch(stale.name) and stale not in paths:
            stale.unlink()
    return paths


def _rows(store: StoreReader, start: int, stop: int) -> dict:
    """Samples ``start:stop`` of a store as :meth:`StoreWriter.append` keyword arguments."""
    s = slice(start, stop)
    return {"images": store.images(s), **{f: getattr(store, f)[s] for f in META_FIELDS}}
