"""Human3.6M's 3D poses alone, without videos: for training a pose auto-encoder.

Sources: the release's CDF tree (``ROOT/S*/MyPoseFeatures/D3_Positions/*.cdf``: world frame, 32 joints, mm)
or the community's preprocessed ``data_3d_h36m.npz`` (VideoPose3D's format: the pickled item
``positions_3d`` = ``{subject: {sequence: (F, 32, 3) world frame, metres}}``). That item is a pickle; it
is read by :func:`read_pickled_positions`, an unpickler that admits nothing but dicts, lists, strings,
numbers and numpy arrays (no callable, no import), so a crafted file fails with a FormatError before
any of its code could run. Output: one ``.npz`` with, for ``N`` pose frames,

    world       (N, 17, 3)     float32  mm, world frame (Z up)
    camera      (N, 4, 17, 3)  float32  mm, root-relative, in the frame of each camera of ``camera_ids``
    camera_ids  (4,)           str
    subject, action, sequence, split  (N,) str  (canonical action; sequence = the file stem; protocol split)
    frame       (N,)           int64    50 fps frame index in its sequence
    problems    (P,)           str      sequences left out (unreadable files), each naming its file
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from structpose.camera import H36M_CAMERA_IDS, h36m_camera
from structpose.data.h36m import (
    H36M_RELEASE_SUBJECTS,
    H36MFormatError,
    parse_action,
    read_cdf_poses,
    split_of,
    world_pose_files,
)
from structpose.errors import InputError
from structpose.skeleton import H36M_32_TO_17

log = logging.getLogger(__name__)


def _from_cdf_tree(root: Path, problems: list[str]) -> Iterator[tuple[str, str, np.ndarray]]:
    """(subject, sequence stem, world poses (F, 32, 3) mm) of every D3_Positions file under ``root``."""
    for subject in H36M_RELEASE_SUBJECTS:
        for stem, path in world_pose_files(root, subject).items():
            try:
                yield subject, stem, read_cdf_poses(path, 3)
            except H36MFormatError as e:
                problems.append(f"{subject}/{stem}: not imported: {e}")


#: The only globals a VideoPose3D ``positions_3d`` pickle may name: numpy's array reconstruction.
_SAFE_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds containers, numbers, strings and numpy arrays; refuses every other global (os.system, eval...)."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return super().find_class(module, name)


def read_pickled_positions(path: Path, key: str = "positions_3d") -> object:
    """The object stored as ``key`` in an ``.npz`` whose member is a pickled object array (VideoPose3D's
    ``data_3d_h36m.npz``), read without running any code the file might carry.

    Raises:
        H36MFormatError: the file is not such an npz, or its pickle names anything but numpy arrays.
    """
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as member:
            raw = io.BytesIO(member.read())
        major, _ = np.lib.format.read_magic(raw)
        header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = header(raw)
        if not dtype.hasobject:
            raw.seek(0)
            return np.lib.format.read_array(raw, allow_pickle=False)
        array = _ArraysOnlyUnpickler(raw).load()  # numpy writes an object array as one pickle after the header
        return array.item() if isinstance(array, np.ndarray) and array.shape == () else array
    except Exception as e:  # a crafted pickle can fail in many ways; none of them runs the file's code
        raise H36MFormatError(f"not a VideoPose3D data_3d_h36m.npz ({type(e).__name__}: {e})", path) from None


def _from_videopose3d_npz(path: Path, problems: list[str]) -> Iterator[tuple[str, str, np.ndarray]]:
    """(subject, sequence, world poses (F, 32, 3) mm) from VideoPose3D's ``data_3d_h36m.npz`` (metres)."""
    positions = read_pickled_positions(path)
    if not isinstance(positions, dict):
        raise H36MFormatError(f"{path}: positions_3d is a {type(positions).__name__}, expected a dict")
    for subject in sorted(positions, key=lambda s: (s not in H36M_RELEASE_SUBJECTS, s)):
        if subject not in H36M_RELEASE_SUBJECTS:
            problems.append(f"{subject}: not a Human3.6M subject with poses, left out ({path})")
            continue
        for name in sorted(positions[subject]):
            a = np.asarray(positions[subject][name], dtype=np.float64)
            if a.ndim != 3 or a.shape[1:] != (32, 3) or not np.isfinite(a).all():
                problems.append(f"{subject}/{name}: not imported: {path}: shape {a.shape}, expected finite (F, 32, 3)")
                continue
            yield subject, name, a * 1000.0


def import_h36m_poses(src: Path, out: Path, every: int = 1) -> Path:
    """Read the 3D poses of a CDF tree (``src`` a directory) or of a VideoPose3D ``data_3d_h36m.npz``
    (``src`` a file), keep every ``every``-th frame and write the ``.npz`` of the module docstring to ``out``
    (a directory gets ``h36m_poses.npz``); returns its path. The file appears only once complete.
    """
    src, out = Path(src), Path(out)
    if every <= 0:
        raise InputError(f"every must be positive, got {every}")
    if out.is_dir():
        out = out / "h36m_poses.npz"
    problems: list[str] = []
    reader = _from_cdf_tree(src, problems) if src.is_dir() else _from_videopose3d_npz(src, problems)
    names = ("world", "camera", "subject", "action", "sequence", "split", "frame")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for subject, name, raw in reader:
        action = parse_action(name)
        if action is None:
            continue
        frames = np.arange(0, len(raw), every)
        world = raw[frames][:, H36M_32_TO_17]  # (n, 17, 3) mm
        per_cam = []
        for cam_id in H36M_CAMERA_IDS:
            pcam = h36m_camera(subject, cam_id).world_to_camera(world)
            per_cam.append(pcam - pcam[:, :1])
        cols["world"].append(world.astype(np.float32))
        cols["camera"].append(np.stack(per_cam, axis=1).astype(np.float32))
        for key, value in (("subject", subject), ("action", action), ("sequence", name), ("split", split_of(subject))):
            cols[key].append(np.full(len(frames), value))
        cols["frame"].append(frames.astype(np.int64))
    for line in problems:
        log.warning(line)
    if not cols["world"]:
        raise FileNotFoundError(f"no Human3.6M poses in {src}: " + ("; ".join(problems[:8]) or "no pose files"))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    arrays["camera_ids"] = np.array(H36M_CAMERA_IDS)
    arrays["problems"] = np.array(problems, dtype=str)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def load_h36m_poses(path: Path) -> dict[str, np.ndarray]:
    """The arrays written by :func:`import_h36m_poses` (see the module docstring), loaded into memory."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
