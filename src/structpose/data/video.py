"""Video decoding with PyAV: a video's frame count and size, and its frames as RGB arrays.

Frames are numbered from 0 in presentation order; a frame is converted to RGB only when it is asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from structpose.errors import FormatError


class VideoError(FormatError, RuntimeError):
    """A video cannot be read, or holds fewer frames than asked for (the message names the file)."""


def _av():
    try:
        import av
    except ImportError as e:  # an optional dependency: the "h36m" extra
        raise ImportError("decoding videos needs PyAV: pip install 'structpose[h36m]'") from e
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds: ``frames`` (count), ``width`` and ``height`` (px)."""

    frames: int
    width: int
    height: int


def probe_video(path: Path) -> VideoInfo:
    """Count the frames of a video's first video stream by demuxing it (no decoding; headers can lie)."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            frames = sum(1 for packet in container.demux(stream) if packet.size)
            return VideoInfo(frames, stream.codec_context.width, stream.codec_context.height)
    except av.FFmpegError as e:
        raise VideoError(f"{path}: unreadable video ({e})") from None


def iter_frames(path: Path, stop: int, every: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(i, image)`` for frames ``i = 0, every, 2 every, ... < stop``; image (H, W, 3) uint8 RGB.

    Raises :class:`VideoError` if the video cannot be decoded or ends before frame ``stop - 1``.
    """
    av = _av()
    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if decoded >= stop:
                    break
                if decoded % every == 0:
                    yield decoded, frame.to_ndarray(format="rgb24")
                decoded += 1
    except av.FFmpegError as e:
        raise VideoError(f"{path}: decoding failed after {decoded} frames ({e})") from None
    if decoded < stop:
        raise VideoError(f"{path}: decoded only {decoded} of {stop} frames")
