"""The synthetic-person renderers, through Human3.6M-like cameras: ``capsule`` (capsule bodies ray cast at
crop resolution, numpy only) and ``mesh`` (skinned anny bodies rasterised with OpenGL:
:mod:`structpose.render.mesh`, imported on demand).

Main API: :func:`sample_appearance`, :func:`sample_camera`, :func:`render_sample` -> :class:`RenderedSample`.
"""

from structpose.render.appearance import Appearance, sample_appearance
from structpose.render.body import PARTS
from structpose.render.cameras import sample_camera
from structpose.render.sample import RenderedSample, render_sample

#: Version of each renderer: changes whenever its images of the same seed change; part of the benchmark version.
RENDERERS: dict[str, int] = {"capsule": 1, "mesh": 1}
RENDERER_VERSION = RENDERERS["capsule"]  # stores without a "renderer" attribute are capsule stores
DEFAULT_RENDERER = "mesh"  # the embedded default draws mesh people; --renderer capsule draws capsules

__all__ = [
    "DEFAULT_RENDERER",
    "PARTS",
    "RENDERERS",
    "RENDERER_VERSION",
    "Appearance",
    "RenderedSample",
    "render_sample",
    "sample_appearance",
    "sample_camera",
]
