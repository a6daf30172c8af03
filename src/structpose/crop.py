"""Person-centred square crops: one definition shared by the renderer and the Human3.6M importer.

A box is ``[x0, y0, x1, y1]`` in full-image pixels (continuous coordinates: pixel ``i`` covers
``[i, i+1)``); a crop of size ``S`` maps the box onto ``S x S`` pixels.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from structpose.errors import InputError

DEFAULT_MARGIN = 0.2


def person_box(joints2d: np.ndarray, margin: float = DEFAULT_MARGIN, min_size: float = 8.0) -> np.ndarray:
    """Square box around 2D joints with a relative margin. joints2d (..., J, 2) px -> (..., 4) px.

    The side is ``max(width, height) * (1 + 2 * margin)``, centred on the joints' bounding box.
    """
    j = np.asarray(joints2d, dtype=np.float64)
    if j.shape[-1] != 2:
        raise InputError(f"expected 2D joints (..., 2) in px, got shape {j.shape}")
    lo, hi = j.min(axis=-2), j.max(axis=-2)
    centre = (lo + hi) / 2
    side = np.maximum((hi - lo).max(axis=-1) * (1 + 2 * margin), min_size)
    half = side[..., None] / 2
    return np.concatenate([centre - half, centre + half], axis=-1)


def to_crop(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Full-image pixels (..., J, 2) -> crop pixels (..., J, 2) for a square ``box`` (..., 4) resized to ``size``."""
    box = np.asarray(box, dtype=np.float64)
    scale = size / (box[..., 2] - box[..., 0])
    return (np.asarray(points) - box[..., None, 0:2]) * scale[..., None, None]


def from_crop(points: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Inverse of :func:`to_crop`."""
    box = np.asarray(box, dtype=np.float64)
    scale = (box[..., 2] - box[..., 0]) / size
    return np.asarray(points) * scale[..., None, None] + box[..., None, 0:2]


def crop_resize(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Cut ``box`` out of ``image`` (H, W, 3) uint8 and resize it to (size, size, 3); outside is black."""
    if not (image.ndim == 3 and image.shape[2] == 3):
        raise InputError(f"expected an (H, W, 3) image, got shape {image.shape}")
    x0, y0, x1, y1 = (float(v) for v in box)
    pil = Image.fromarray(image)
    # PIL's EXTENT transform samples the source rectangle; pixels outside the image come out as 0.
    out = pil.transform((size, size), Image.Transform.EXTENT, (x0, y0, x1, y1), resample=Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)
