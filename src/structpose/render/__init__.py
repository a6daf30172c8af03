"""The synthetic-person renderer: capsule bodies ray cast at crop resolution through Human3.6M-like cameras.

Main API: :func:`sample_appearance`, :func:`sample_camera`, :func:`render_sample` -> :class:`RenderedSample`.
"""

from structpose.render.appearance import Appearance, sample_appearance
from structpose.render.body import PARTS
from structpose.render.cameras import sample_camera
from structpose.render.sample import RenderedSample, render_sample

#: Changes whenever the rendered images of the same seed change; part of the benchmark version.
RENDERER_VERSION = 1

__all__ = [
    "PARTS",
    "RENDERER_VERSION",
    "Appearance",
    "RenderedSample",
    "render_sample",
    "sample_appearance",
    "sample_camera",
]
