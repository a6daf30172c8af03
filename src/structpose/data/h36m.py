"""Human3.6M's official release: directory layout, action names, the CDF pose files, and its sequences.

The per-subject archives of http://vision.imar.ro/human3.6m extract to (``ROOT`` is any folder)::

    ROOT/S1/MyPoseFeatures/D3_Positions/Directions 1.cdf               world frame, 32 joints, mm
    ROOT/S1/MyPoseFeatures/D3_Positions_mono/Directions 1.54138969.cdf  camera frame, mm (optional)
    ROOT/S1/MyPoseFeatures/D2_Positions/Directions 1.54138969.cdf       image pixels (optional)
    ROOT/S1/Videos/Directions 1.54138969.mp4                            50 fps, one per camera

Every CDF holds one variable ``Pose`` of shape ``(1, F, 32 * D)`` (D = 3 or 2), one row per 50 fps
video frame. A file stem is ``Action`` or ``Action N`` (a sub-action); subject S1 spells two actions
``TakingPhoto`` and ``WalkingDog`` where the others say ``Photo`` and ``WalkDog``. Stems that name no
action (``_ALL``, ``_ALL 1``) and stray files are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structpose.camera import H36M_CAMERA_IDS
from structpose.errors import FormatError, InputError

#: The 15 actions, as named in the 3D pose estimation literature.
H36M_ACTIONS: tuple[str, ...] = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)  # fmt: skip
#: Subject S1's spellings -> the canonical action names.
ACTION_ALIASES: dict[str, str] = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
#: The standard protocol (#1 and #2 of the literature): train on five subjects, test on two.
PROTOCOL_SPLITS: dict[str, tuple[str, ...]] = {"train": ("S1", "S5", "S6", "S7", "S8"), "test": ("S9", "S11")}
H36M_RELEASE_SUBJECTS: tuple[str, ...] = (*PROTOCOL_SPLITS["train"], *PROTOCOL_SPLITS["test"])
VIDEO_FPS = 50
NUM_RAW_JOINTS = 32
#: (subject, file stem, camera id) -> why the release's video cannot be used.
KNOWN_DAMAGED_VIDEOS: dict[tuple[str, str, str], str] = {
    ("S11", "Directions", "54138969"): "the release's video of this sequence and camera is damaged",
}

_STEM_RE = re.compile(r"(?P<base>[A-Za-z]+)(?: (?P<sub>\d+))?")


class H36MFormatError(FormatError):
    """A Human3.6M file does not hold what the documented format says (the message names the file)."""


def parse_action(stem: str) -> str | None:
    """The canonical action of a file stem (``"WalkingDog 1"`` -> ``"WalkDog"``), or None for non-actions."""
    m = _STEM_RE.fullmatch(stem)
    if m is None:
        return None
    action = ACTION_ALIASES.get(m["base"], m["base"])
    return action if action in H36M_ACTIONS else None


def split_of(subject: str) -> str:
    """The protocol split (``"train"`` or ``"test"``) of a release subject."""
    for split, subjects in PROTOCOL_SPLITS.items():
        if subject in subjects:
            return split
    raise InputError(f"{subject!r} is not a Human3.6M subject with poses; known: {', '.join(H36M_RELEASE_SUBJECTS)}")


def check_selection(subjects: Iterable[str] | None, actions: Iterable[str] | None) -> tuple[list[str], list[str]]:
    """Validate a subject and action selection (None: all); returns them in the release's order."""
    subjects = list(H36M_RELEASE_SUBJECTS if subjects is None else subjects)
    actions = list(H36M_ACTIONS if actions is None else actions)
    for s in subjects:
        split_of(s)
    unknown = [a for a in actions if a not in H36M_ACTIONS]
    if unknown:
        raise InputError(f"unknown Human3.6M actions {unknown}; known: {', '.join(H36M_ACTIONS)}")
    return [s for s in H36M_RELEASE_SUBJECTS if s in subjects], actions


def pose_dir(root: Path, subject: str, kind: str = "D3_Positions") -> Path:
    """``ROOT/S*/MyPoseFeatures/<kind>``; ``kind`` is D3_Positions, D3_Positions_mono or D2_Positions."""
    return Path(root) / subject / "MyPoseFeatures" / kind


def world_pose_files(root: Path, subject: str, actions: Iterable[str] | None = None) -> dict[str, Path]:
    """The D3_Positions files of a subject whose stem names one of ``actions`` (None: all): stem -> path."""
    wanted = set(H36M_ACTIONS if actions is None else actions)
    d = pose_dir(root, subject)
    files = sorted(d.glob("*.cdf")) if d.is_dir() else []
    return {p.stem: p for p in files if parse_action(p.stem) in wanted}


def read_cdf_poses(path: Path, dims: int) -> np.ndarray:
    """The ``Pose`` variable of a Human3.6M CDF file as (F, 32, dims) float64 (mm for 3D, px for 2D).

    Raises :class:`H36MFormatError` naming ``path`` if the file is unreadable or of another shape.
    """
    try:
        import cdflib
    except ImportError as e:  # an optional dependency: the "h36m" extra
        raise ImportError("reading Human3.6M's CDF files needs cdflib: pip install 'structpose[h36m]'") from e
    try:
        raw = cdflib.CDF(str(path)).varget("Pose")
    except Exception as e:  # cdflib raises OSError, ValueError, KeyError... on damaged files
        raise H36MFormatError(f"{path}: unreadable CDF file ({type(e).__name__}: {e})") from None
    a = np.asarray(raw, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or a.shape[1] != NUM_RAW_JOINTS * dims or a.shape[0] == 0:
        expected = f"(1, F, {NUM_RAW_JOINTS * dims})"
        raise H36MFormatError(f"{path}: variable Pose has shape {np.shape(raw)}, expected {expected}")
    if not np.isfinite(a).all():
        raise H36MFormatError(f"{path}: variable Pose holds non-finite values")
    return a.reshape(-1, NUM_RAW_JOINTS, dims)


@dataclass(frozen=True)
class H36MSequence:
    """One (subject, sequence, camera) of the release: its poses, its video and the optional per-camera files."""

    subject: str
    name: str  # the file stem, with its sub-action: "Directions 1", "TakingPhoto"
    camera_id: str
    poses: Path  # D3_Positions/<name>.cdf, world frame
    video: Path  # Videos/<name>.<camera_id>.mp4
    mono: Path | None = None  # D3_Positions_mono/<name>.<camera_id>.cdf, camera frame
    d2: Path | None = None  # D2_Positions/<name>.<camera_id>.cdf, image pixels

    @property
    def action(self) -> str:
        action = parse_action(self.name)
        if action is None:
            raise InputError(f"expected action is not None, got {self.name}")
        return action

    @property
    def split(self) -> str:
        return split_of(self.subject)

    @property
    def key(self) -> str:
        """``S1/Directions 1.54138969``: unique within the release."""
        return f"{self.subject}/{self.name}.{self.camera_id}"


def find_sequences(
    root: Path, subjects: Iterable[str] | None = None, actions: Iterable[str] | None = None
) -> tuple[list[H36MSequence], list[str]]:
    """All (subject, sequence, camera) of the release under ``root`` that have poses and a video.

    Returns the sequences (ordered by subject, stem, camera) and one line per problem found in the layout
    (a missing subject folder, a missing video, a video without poses), naming the path concerned.
    """
    root = Path(root)
    subjects, actions = check_selection(subjects, actions)
    found: list[H36MSequence] = []
    problems: list[str] = []
    for subject in subjects:
        if not (root / subject).is_dir():
            problems.append(f"{subject}: not found ({root / subject})")
            continue
        world = world_pose_files(root, subject, actions)
        videos = root / subject / "Videos"
        if not world:
            problems.append(f"{subject}: no pose files {pose_dir(root, subject)}/*.cdf for the selected actions")
        for stem, poses in world.items():
            for cam in H36M_CAMERA_IDS:
                video = videos / f"{stem}.{cam}.mp4"
                if not video.is_file():
                    problems.append(f"{subject}/{stem}.{cam}: missing video {video}")
                    continue
                extra = {k: pose_dir(root, subject, d) / f"{stem}.{cam}.cdf"
                         for k, d in (("mono", "D3_Positions_mono"), ("d2", "D2_Positions"))}  # fmt: skip
                extra = {k: (p if p.is_file() else None) for k, p in extra.items()}
                found.append(H36MSequence(subject, stem, cam, poses, video, **extra))
        for video in sorted(videos.glob("*.mp4")) if videos.is_dir() else []:
            stem, _, cam = video.stem.rpartition(".")
            if cam in H36M_CAMERA_IDS and parse_action(stem) in actions and stem not in world:
                problems.append(f"{subject}/{stem}.{cam}: video without poses {video}")
    return found, problems
