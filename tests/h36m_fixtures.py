"""A miniature Human3.6M release in the official formats, for tests (the licensed data cannot be shipped).

Layout and file names are the release's (see :mod:`structpose.data.h36m`), including subject S1's
spellings, ``_ALL`` files and stray files. Poses: a person standing at the capture centre (world frame,
Z up, mm), facing +y (towards cameras 54138969 and 58860488), drifting along x and raising its arms;
stored in the release's 32-joint layout with every joint at a distinct place. Videos: 50 fps H.264 MP4s
at the cameras' real resolution, a bright disc at each of the 17 joints projected through the shipped
calibration on a dark background. Defects planted: a corrupt CDF, a corrupt video, the known damaged S11
video, a video a few frames too short or too long (cut), one far too short (refused) and a
D3_Positions_mono file off by 50 mm.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from cdflib.cdfwrite import CDF

from structpose.camera import H36M_CAMERA_IDS, H36M_RESOLUTION, h36m_camera
from structpose.skeleton import H36M_JOINTS

POSE_FRAMES = 21  # 50 fps frames of poses per sequence
EVERY = 5  # the import's frame step the expectations below assume
DISC_RADIUS = 12  # px in the full image
BACKGROUND, FOREGROUND = 16, 235

#: The release's 32 joints (its metadata's names; "Site" end effectors named after their parent here).
RAW_JOINTS: tuple[str, ...] = (
    "Hip", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "RightToeSite", "LeftUpLeg", "LeftLeg",
    "LeftFoot", "LeftToeBase", "LeftToeSite", "Spine", "Spine1", "Neck", "Head", "HeadSite", "LeftShoulder",
    "LeftArm", "LeftForeArm", "LeftHand", "LeftHandThumb", "LeftThumbSite", "L_Wrist_End", "LeftWristSite",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightHandThumb", "RightThumbSite",
    "R_Wrist_End", "RightWristSite",
)  # fmt: skip
#: Our 17 joints -> the release's joint they are (written independently of H36M_32_TO_17, to test it).
JOINT_SOURCE: dict[str, str] = {
    "Hip": "Hip", "RHip": "RightUpLeg", "RKnee": "RightLeg", "RFoot": "RightFoot", "LHip": "LeftUpLeg",
    "LKnee": "LeftLeg", "LFoot": "LeftFoot", "Spine": "Spine1", "Thorax": "Neck", "Neck/Nose": "Head",
    "Head": "HeadSite", "LShoulder": "LeftArm", "LElbow": "LeftForeArm", "LWrist": "LeftHand",
    "RShoulder": "RightArm", "RElbow": "RightForeArm", "RWrist": "RightHand",
}  # fmt: skip
#: A standing person facing +y: its right is +x, its left -x (mm, world frame, Z up).
STANDING: dict[str, tuple[float, float, float]] = {
    "Hip": (0, 0, 950), "RHip": (130, 0, 950), "RKnee": (140, 30, 520), "RFoot": (150, 0, 90),
    "LHip": (-130, 0, 950), "LKnee": (-140, 30, 520), "LFoot": (-150, 0, 90), "Spine": (0, 0, 1180),
    "Thorax": (0, 0, 1450), "Neck/Nose": (0, 60, 1560), "Head": (0, 20, 1700), "LShoulder": (-180, 0, 1430),
    "LElbow": (-420, 0, 1250), "LWrist": (-600, 60, 1050), "RShoulder": (180, 0, 1430),
    "RElbow": (420, 0, 1250), "RWrist": (600, 60, 1050),
}  # fmt: skip


def known_poses(frames: int, shift: float) -> np.ndarray:
    """(frames, 17, 3) world mm in H36M order: drifting +10 mm/frame along x, arms rising 8 mm/frame.

    Values are multiples of 1/4 mm, exact in float32 (the CDF files store float32)."""
    base = np.array([STANDING[name] for name in H36M_JOINTS], dtype=np.float64)
    f = np.arange(frames, dtype=np.float64)[:, None]
    poses = np.repeat(base[None], frames, axis=0)
    poses[..., 0] += shift + 10.0 * f
    arms = [H36M_JOINTS.index(n) for n in ("LElbow", "LWrist", "RElbow", "RWrist")]
    poses[:, arms, 2] += 8.0 * f
    return np.round(poses * 4) / 4


def to_raw(poses17: np.ndarray) -> np.ndarray:
    """(F, 17, D) -> (F, 32, D) in the release's layout; joints not in the 17 are placed 25 units off a
    neighbour, so every joint is distinct (a wrong selection index picks a wrong value)."""
    dims = poses17.shape[-1]
    raw = np.zeros((len(poses17), len(RAW_JOINTS), dims))
    placed = set()
    for j, name in enumerate(H36M_JOINTS):
        raw[:, RAW_JOINTS.index(JOINT_SOURCE[name])] = poses17[:, j]
        placed.add(RAW_JOINTS.index(JOINT_SOURCE[name]))
    for k in range(len(RAW_JOINTS)):
        if k not in placed:
            raw[:, k] = raw[:, k - 1] + np.array([25.0, 25.0, -25.0])[:dims]
    return raw


def write_cdf(path: Path, poses: np.ndarray, column_major: bool = False) -> None:
    """Write a release-style CDF: variable ``Pose`` (1, F, 32 * D) float32 from ``poses`` (F, 32, D)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = np.asarray(poses, dtype=np.float32).reshape(len(poses), -1)
    spec = {"Majority": "column_major"} if column_major else None
    if column_major:  # cdflib writes the bytes as given: hand it the column-major order
        record = np.ascontiguousarray(record.T).reshape(record.shape)
    cdf = CDF(str(path), cdf_spec=spec)
    cdf.write_var(
        {"Variable": "Pose", "Data_Type": CDF.CDF_FLOAT, "Num_Elements": 1, "Rec_Vary": True,
         "Dim_Sizes": list(record.shape)},
        var_data=record[None],
    )  # fmt: skip
    cdf.close()


def write_video(path: Path, uv: np.ndarray, size: tuple[int, int], frames: int) -> None:
    """Write ``frames`` frames (width, height = ``size``) of discs at ``uv`` (F, 17, 2) px; frames past F
    repeat the last pose."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    r = DISC_RADIUS
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = xx**2 + yy**2 <= r * r
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=50)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "12"}
        for i in range(frames):
            image = np.full((height, width, 3), BACKGROUND, np.uint8)
            for u, v in uv[min(i, len(uv) - 1)]:
                cx, cy = int(u), int(v)  # the pixel holding (u, v)
                window = image[cy - r : cy + r + 1, cx - r : cx + r + 1]
                window[disc] = FOREGROUND
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@dataclass
class FixtureRelease:
    """The written release: ``world`` (subject, stem) -> (F, 17, 3) known world poses, mm, H36M order;
    ``frames`` sequence key -> the 50 fps frames an import with ``every=EVERY`` keeps; the planted defects."""

    root: Path
    world: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    frames: dict[str, list[int]] = field(default_factory=dict)
    corrupt_cdf: Path | None = None
    corrupt_video: Path | None = None
    damaged_key: str = "S11/Directions.54138969"
    refused_key: str = "S9/Waiting 1.58860488"
    cut_keys: tuple[str, ...] = ("S9/Waiting 1.54138969", "S9/Waiting 1.55011271")
    bad_mono: Path | None = None


#: (subject, file stem) of the fixture's sequences, with the video length (frames) of cameras that
#: differ from the poses' POSE_FRAMES.
SEQUENCES: dict[tuple[str, str], dict[str, int]] = {
    ("S1", "TakingPhoto"): {},
    ("S1", "WalkingDog 1"): {},
    ("S5", "Discussion 2"): {},
    ("S9", "Directions 1"): {},
    ("S9", "Waiting 1"): {"54138969": POSE_FRAMES + 3, "55011271": POSE_FRAMES - 3, "58860488": POSE_FRAMES - 7},
    ("S11", "Directions"): {},
}


def build_release(root: Path) -> FixtureRelease:
    """Write the miniature release under ``root`` (a few seconds)."""
    rel = FixtureRelease(root=root)
    for k, ((subject, stem), lengths) in enumerate(SEQUENCES.items()):
        world = known_poses(POSE_FRAMES, shift=40.0 * k - 100.0)
        rel.world[subject, stem] = world
        d3 = root / subject / "MyPoseFeatures"
        write_cdf(d3 / "D3_Positions" / f"{stem}.cdf", to_raw(world), column_major=(subject == "S9"))
        for cam_id in H36M_CAMERA_IDS:
            cam = h36m_camera(subject, cam_id)
            uv = cam.project_world(world)
            n = lengths.get(cam_id, POSE_FRAMES)
            write_video(root / subject / "Videos" / f"{stem}.{cam_id}.mp4", uv, H36M_RESOLUTION[cam_id], n)
            key = f"{subject}/{stem}.{cam_id}"
            if abs(n - POSE_FRAMES) <= 5 and key != rel.damaged_key:
                rel.frames[key] = list(range(0, min(n, POSE_FRAMES), EVERY))
            if (subject, stem) == ("S9", "Directions 1"):
                off = 50.0 if cam_id == "58860488" else 0.0  # a mono file that disagrees with the calibration
                mono = to_raw(cam.world_to_camera(world) + off)
                write_cdf(d3 / "D3_Positions_mono" / f"{stem}.{cam_id}.cdf", mono)
                write_cdf(d3 / "D2_Positions" / f"{stem}.{cam_id}.cdf", to_raw(uv))
    rel.bad_mono = root / "S9/MyPoseFeatures/D3_Positions_mono/Directions 1.58860488.cdf"

    # A corrupt video (the other cameras of its sequence import) and a corrupt CDF (its four videos do not).
    rel.corrupt_video = root / "S5/Videos/Discussion 2.55011271.mp4"
    rel.corrupt_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    del rel.frames["S5/Discussion 2.55011271"]
    rel.corrupt_cdf = root / "S5/MyPoseFeatures/D3_Positions/Directions 1.cdf"
    rel.corrupt_cdf.write_bytes(b"\xcd\xf3\x00\x01" + b"not really a CDF" * 64)
    for cam_id in H36M_CAMERA_IDS:
        shutil.copy(root / "S5/Videos/Discussion 2.54138969.mp4", root / f"S5/Videos/Directions 1.{cam_id}.mp4")

    # What the release also holds and an import ignores: _ALL files and stray files.
    (root / "S1/Videos/_ALL 1.54138969.mp4").write_bytes(b"not a video")
    (root / "S1/MyPoseFeatures/D3_Positions/_ALL.cdf").write_bytes(b"not a CDF")
    (root / "S1/Videos/Thumbs.db").write_bytes(b"\x00")
    (root / "S1/MyPoseFeatures/D3_Positions/readme.txt").write_text("stray")
    return rel


def write_videopose3d_npz(path: Path, rel: FixtureRelease) -> None:
    """The fixture's poses in VideoPose3D's ``data_3d_h36m.npz`` format: positions_3d = {subject:
    {canonical sequence name: (F, 32, 3) float32 world metres}}."""
    renamed = {"TakingPhoto": "Photo", "WalkingDog 1": "WalkDog 1"}
    positions: dict[str, dict[str, np.ndarray]] = {}
    for (subject, stem), world in rel.world.items():
        positions.setdefault(subject, {})[renamed.get(stem, stem)] = (to_raw(world) / 1000).astype(np.float32)
    np.savez_compressed(path, positions_3d=positions)
