"""One loose motion-capture file -> Human3.6M-17 poses in the pose library's world frame: :func:`read_mocap`.

The pose library (:mod:`structpose.data.poselib`) reads the shared data folder through its catalogue
(:mod:`structpose.data.mocap.catalog`: one ``Take`` per file, fixed folder layout). :func:`read_mocap` reads
any single ``.bvh`` file, or an ``.asf`` skeleton with its ``.amc`` motion, from anywhere, by the same steps:
the reader (:mod:`~structpose.data.mocap.bvh`, :mod:`~structpose.data.mocap.asf_amc`), the rig's mapping to
the 17 joints (:data:`structpose.data.mocap.mapping.RIGS`), placement on the floor, and linear resampling.
So a take of the shared data read here gives the library's poses (before their rounding to int16 mm).

Rigs (:data:`RIG_CHOICES`): the exact names of :data:`~structpose.data.mocap.mapping.RIGS` (``cmu_daz``:
Daz-friendly CMU BVH, frame 0 an added T-pose; ``cmu_max``: 3dsMax-friendly CMU BVH; ``cmu_asf``: CMU
ASF/AMC; ``cmu_amc2bvh``: amc2bvh CMU BVH with raw ASF joint names; ``bandai``: Bandai-Namco BVH), plus
``cmu``: whichever CMU layout the file's joint names show. ``None`` detects the rig from the joint names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structpose.data.mocap.asf_amc import CMU_FPS, load_asf_amc
from structpose.data.mocap.bvh import load_bvh
from structpose.data.mocap.kinematics import MocapClip
from structpose.data.mocap.mapping import RIGS, Rig, map_clip, place_on_floor
from structpose.data.mocap.resample import resample
from structpose.errors import InputError
from structpose.skeleton import H36M

#: Rig families: a family name picks, among its rigs, the one the file's joint names fit.
RIG_FAMILIES: dict[str, tuple[str, ...]] = {
    "cmu": tuple(name for name in RIGS if name.startswith("cmu")),
    "bandai": ("bandai",),
}
#: Every value ``rig`` may take (besides ``None``, detection among all rigs).
RIG_CHOICES: tuple[str, ...] = tuple(dict.fromkeys(("cmu", *RIGS)))

#: amc2bvh drops the ASF ``thorax`` bone's length (``lowerneck`` sits at the thorax joint): the test, in
#: source units, that tells an amc2bvh BVH (rig ``cmu_amc2bvh``) from a file with the length kept (``cmu_asf``).
_DROPPED_THORAX_UNITS = 1e-6


@dataclass(frozen=True)
class MocapPoses:
    """The poses of one mocap file, as :func:`read_mocap` returns them.

    Attributes:
        poses: (N, 17, 3) float32 mm, world frame (right-handed, Z up, the pose library's): joint order
            :data:`joints`; placed as the library places a take (floor at z = 0, mean Hip x, y at the
            origin) unless read with ``place=False``.
        joints: the 17 Human3.6M joint names (:data:`structpose.skeleton.H36M`), the order of ``poses``.
        fps: frame rate of ``poses`` (Hz): the requested ``fps``, else the file's.
        source_fps: the file's frame rate (Hz): its header's (BVH, to 0.01 Hz), the ``source_fps`` given,
            or 120 Hz for AMC files (which state no rate; CMU records at 120 Hz).
        rig: the name of the rig that mapped the file (a key of ``mapping.RIGS``).
        path: the motion file (the ``.bvh`` or the ``.amc``).
        source_joints: the joint names the file defines (BVH joints, ASF bones, ``<joint>_end`` End Sites).
    """

    poses: np.ndarray
    joints: tuple[str, ...]
    fps: float
    source_fps: float
    rig: str
    path: Path
    source_joints: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.poses.shape[0])


def read_mocap(
    path: str | Path,
    rig: str | None = None,
    fps: float | None = None,
    amc: str | Path | None = None,
    *,
    source_fps: float | None = None,
    place: bool = True,
) -> MocapPoses:
    """Read one loose mocap file into 17-joint Human3.6M poses, in mm, in the pose library's world frame.

    The steps are the pose library's (:func:`structpose.data.poselib.build_pose_library`): forward
    kinematics of the file, the rig's map to the 17 joints (mm; source Y up -> world Z up; a ``cmu_daz``
    file's added T-pose frame 0 dropped), placement (the floor, a low percentile of the toes' height, to
    z = 0 and the mean Hip x, y to the origin; the trajectory within the take is kept), then linear
    resampling (:func:`structpose.data.mocap.resample.resample`: output frame k at k / fps seconds,
    interpolated between the two nearest input frames, within the take's span).

    Args:
        path: a ``.bvh`` file, or an ``.asf`` skeleton (then ``amc`` is its motion).
        rig: which mapping to the 17 joints: a name of :data:`RIG_CHOICES` (``"cmu"``: the CMU layout the
            joint names show; ``"bandai"``; or an exact rig such as ``"cmu_daz"``). ``None``: detected from
            the file's joint names.
        fps: resample to this rate (Hz); ``None`` keeps the file's frames.
        amc: the ``.amc`` motion of the ``.asf`` skeleton ``path`` (required for an ``.asf``; refused for a
            ``.bvh``).
        source_fps: the file's true rate (Hz), where its header is wrong; default the header's rate (BVH)
            or 120 Hz (AMC, which states none).
        place: place the take on the floor and centre it as the pose library does; ``False`` keeps the
            file's own origin (the mapped positions, rotated to Z up and scaled to mm, only).

    Returns:
        :class:`MocapPoses`: ``poses`` (N, 17, 3) float32 mm, the joint names, the rate of ``poses`` and the
        file's, the rig used.

    Raises:
        InputError: an unknown ``rig`` (the message lists :data:`RIG_CHOICES`); no rig, or more than one, fits
            the file's joint names when detecting; a file type other than ``.bvh``/``.asf``, an ``.asf``
            without ``amc``; a rate that is not positive and finite.
        FormatError: the file (or the ASF skeleton) cannot be read, lacks joints the given rig needs, or has
            no frame left; the message names the file and, where known, the line
            (:class:`~structpose.data.mocap.errors.MocapFormatError`).
        OSError: a file cannot be opened (e.g. it does not exist).
    """
    path = Path(path)
    for name, rate in (("fps", fps), ("source_fps", source_fps)):
        if rate is not None and not (np.isfinite(rate) and rate > 0):
            raise InputError(f"{name} must be a positive number of frames per second, not {rate}")
    candidates = _rig_candidates(rig)
    clip = _load(path, amc, source_fps)
    chosen = _choose_rig(clip, candidates, rig)
    rate = round(clip.fps, 2) if source_fps is None else float(source_fps)
    poses, contacts = map_clip(clip, chosen)
    if place:
        poses = place_on_floor(poses, contacts)
    if fps is not None:
        poses = resample(poses, rate, fps)
    return MocapPoses(
        poses=poses.astype(np.float32),
        joints=tuple(H36M.names),
        fps=float(rate if fps is None else fps),
        source_fps=float(rate),
        rig=chosen.name,
        path=clip.path,
        source_joints=tuple(clip.names),
    )


def _rig_candidates(rig: str | None) -> tuple[Rig, ...]:
    """The rigs ``rig`` allows, in :data:`RIGS` order."""
    if rig is None:
        return tuple(RIGS.values())
    if rig in RIG_FAMILIES:
        return tuple(RIGS[name] for name in RIG_FAMILIES[rig])
    if rig in RIGS:
        return (RIGS[rig],)
    raise InputError(f"unknown rig {rig!r}; known rigs: {', '.join(RIG_CHOICES)} (or None: detect it from the file)")


def _load(path: Path, amc: str | Path | None, source_fps: float | None) -> MocapClip:
    """Read and forward-kinematise ``path`` (+ ``amc``) in source units and axes."""
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        if amc is not None:
            raise InputError(f"amc={amc} is for an .asf skeleton; a BVH file holds its own motion", path)
        return load_bvh(path)
    if suffix == ".asf":
        if amc is None:
            raise InputError("an .asf file is a skeleton only: pass its motion too, amc='..._01.amc'", path)
        return load_asf_amc(path, amc, CMU_FPS if source_fps is None else source_fps)
    if suffix == ".amc":
        raise InputError("an .amc file needs its skeleton: pass the .asf as path and this file as amc=", path)
    raise InputError("not a mocap file read here: expected a .bvh, or an .asf with its .amc", path)


def _choose_rig(clip: MocapClip, candidates: tuple[Rig, ...], asked: str | None) -> Rig:
    """The one rig of ``candidates`` that fits ``clip``'s joint names (one candidate: itself, checked later)."""
    if len(candidates) == 1:
        return candidates[0]
    names = set(clip.names)
    fitting = [r for r in candidates if r.required_joints() <= names]
    if {r.name for r in fitting} >= {"cmu_asf", "cmu_amc2bvh"}:  # same joint names: tell them by the thorax
        at = clip.positions
        gap = np.linalg.norm(at[:, clip.index("lowerneck")] - at[:, clip.index("thorax")], axis=-1)
        drop = "cmu_asf" if gap.max() < _DROPPED_THORAX_UNITS else "cmu_amc2bvh"
        fitting = [r for r in fitting if r.name != drop]
    if len(fitting) == 1:
        return fitting[0]
    among = f"among {asked!r} ({', '.join(r.name for r in candidates)})" if asked else "among the known rigs"
    if not fitting:
        closest = min(candidates, key=lambda r: len(r.required_joints() - names))
        missing = sorted(closest.required_joints() - names)
        raise InputError(
            f"no rig {among} fits the file's joint names (closest, {closest.name}, lacks {missing[:6]}"
            f"{' ...' if len(missing) > 6 else ''}); known rigs: {', '.join(RIG_CHOICES)}; name one with rig=, "
            "or add a Rig to structpose.data.mocap.mapping.RIGS",
            clip.path,
        )
    raise InputError(
        f"several rigs {among} fit the file's joint names ({', '.join(r.name for r in fitting)}): name one with rig=",
        clip.path,
    )
