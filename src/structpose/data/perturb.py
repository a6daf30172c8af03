"""Test-time regimes: the same test poses seen through damaged images, with no retraining.

* :class:`Occlusion` — a rectangle over 10–40% of the person's box (the box of the 2D joints), of a flat
  random colour or a two-colour blocky texture, placed with its centre inside the box;
* :class:`Truncation` — the crop cut at an image border: everything beyond a line that removes 10–40% of
  the person's box on one random side is black, as where a person crop reaches past the frame.

Each is a deterministic function of (seed, sample position): the same test set is damaged the same way for
every method and every seed, so the comparison stays paired. Apply one with
:meth:`structpose.data.dataset.PoseImageDataset.perturbed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _person_box(joints2d: np.ndarray, size: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) crop px: the box of the 2D joints (17, 2), grown by 10%, clipped to the crop."""
    lo, hi = joints2d.min(0), joints2d.max(0)
    pad = 0.1 * (hi - lo)
    (x0, y0), (x1, y1) = np.clip(lo - pad, 0, size), np.clip(hi + pad, 0, size)
    return float(x0), float(y0), float(max(x1, x0 + 1)), float(max(y1, y0 + 1))


@dataclass(frozen=True)
class _Regime:
    """Damage of each sample drawn from ``default_rng([seed, KIND, sample id])``: over ``min_fraction`` to
    ``max_fraction`` of the person box."""

    seed: int = 0
    min_fraction: float = 0.1
    max_fraction: float = 0.4
    KIND = 0

    def __call__(self, images: np.ndarray, ids: np.ndarray, joints2d: np.ndarray) -> np.ndarray:
        """images (n, S, S, 3) uint8, sample ids (n,), 2D joints (n, 17, 2) crop px -> damaged copies."""
        out = images.copy()
        for image, i, joints in zip(out, ids, joints2d, strict=True):
            rng = np.random.default_rng([self.seed, self.KIND, int(i)])
            self.damage(image, _person_box(joints, image.shape[0]), rng.uniform(self.min_fraction, self.max_fraction),
                        rng)  # fmt: skip
        return out

    def damage(self, image: np.ndarray, box: tuple[float, float, float, float], fraction: float,
               rng: np.random.Generator) -> None:  # fmt: skip
        """Damage ``image`` (S, S, 3) in place over ``fraction`` of the person ``box`` (x0, y0, x1, y1)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Occlusion(_Regime):
    """An occluder over ``fraction`` of the person box's area (module docstring)."""

    KIND = 1

    def damage(self, image, box, fraction, rng) -> None:
        x0, y0, x1, y1 = box
        area = fraction * (x1 - x0) * (y1 - y0)
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        rows = slice(max(0, round(cy - h / 2)), max(0, round(cy + h / 2)))
        cols = slice(max(0, round(cx - w / 2)), max(0, round(cx + w / 2)))
        image[rows, cols] = _fill(rng, image[rows, cols].shape)


def _fill(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A flat random colour, or (half the time) a two-colour texture of 3-px blocks, of ``shape`` (h, w, 3)."""
    colours = rng.integers(0, 256, (2, 3), dtype=np.uint8)
    if rng.random() < 0.5:
        return np.broadcast_to(colours[0], shape)
    h, w = shape[:2]
    blocks = rng.integers(0, 2, (h // 3 + 1, w // 3 + 1))
    return colours[np.kron(blocks, np.ones((3, 3), dtype=int))[:h, :w]]


@dataclass(frozen=True)
class Truncation(_Regime):
    """The crop cut at an image border on one random side, removing ``fraction`` of the person box."""

    KIND = 2

    def damage(self, image, box, fraction, rng) -> None:
        x0, y0, x1, y1 = box
        side = int(rng.integers(4))  # left, right, top, bottom
        if side == 0:
            image[:, : round(x0 + fraction * (x1 - x0))] = 0
        elif side == 1:
            image[:, round(x1 - fraction * (x1 - x0)) :] = 0
        elif side == 2:
            image[: round(y0 + fraction * (y1 - y0))] = 0
        else:
            image[round(y1 - fraction * (y1 - y0)) :] = 0
