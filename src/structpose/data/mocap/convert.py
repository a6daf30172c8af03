"""One take of the catalogue -> Human3.6M-17 poses in the H36M world frame at a target rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from structpose.data.mocap.asf_amc import load_asf_amc
from structpose.data.mocap.bvh import load_bvh
from structpose.data.mocap.catalog import Take
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.kinematics import MocapClip
from structpose.data.mocap.mapping import RIGS, map_clip, place_on_floor
from structpose.data.mocap.resample import resample


def load_take(data_root: Path, take: Take) -> MocapClip:
    """Read and forward-kinematise one take (source units and axes).

    Raises:
        MocapFormatError: the take's file (or its ASF skeleton) cannot be read; names the file and line.
    """
    if take.reader == "asf_amc":
        return load_asf_amc(data_root / take.skeleton, data_root / take.path)
    return load_bvh(data_root / take.path)


def take_rate(take: Take, clip: MocapClip) -> float:
    """The take's true frame rate (Hz): the catalogue's override, else the header's rounded to 0.01 Hz."""
    return take.fps if take.fps is not None else round(clip.fps, 2)


def take_to_h36m(
    data_root: Path, take: Take, fps: float, expected_fps: float | None = None
) -> tuple[np.ndarray, float]:
    """H36M-17 poses of one take, (F, 17, 3) float64 mm, Z up, floor at z = 0, resampled to ``fps`` Hz, and
    the take's true source rate (Hz). A 1-frame take gives one pose.

    ``expected_fps``: the rate a manifest lists for the take.

    Raises:
        MocapFormatError: the take cannot be read, lacks the rig's joints, has no frame (left), or its
            effective rate differs from ``expected_fps``; names the file.
    """
    clip = load_take(data_root, take)
    rate = take_rate(take, clip)
    if expected_fps is not None and abs(rate - expected_fps) > 1e-3 * expected_fps:
        raise MocapFormatError(
            data_root / take.path,
            f"frame rate {rate} Hz, but MANIFEST.tsv says {expected_fps} Hz; fix the header or the manifest, or "
            "add the true rate to catalog.RATE_OVERRIDES",
        )
    poses, contacts = map_clip(clip, RIGS[take.rig])
    return resample(place_on_floor(poses, contacts), rate, fps), rate
