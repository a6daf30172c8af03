"""Per-subject appearance: body build, clothing, skin and hair colours, sampled from a seeded generator.

Colours are RGB triples in [0, 1] (display space). The renderer looks every surface colour up through
:meth:`Appearance.palette` by material index (:data:`MATERIALS`).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

RGB = tuple[float, float, float]

#: Material indices of body primitives. ``head`` is resolved per pixel into face skin, eyes or hair.
MATERIALS: tuple[str, ...] = ("skin", "top", "bottom", "shoes", "head")
SKIN, TOP, BOTTOM, SHOES, HEAD = range(len(MATERIALS))

_LIGHT_SKIN: RGB = (0.96, 0.80, 0.69)
_DARK_SKIN: RGB = (0.33, 0.21, 0.14)
_HAIR_COLOURS: tuple[RGB, ...] = (
    (0.07, 0.06, 0.05),  # black
    (0.24, 0.15, 0.08),  # dark brown
    (0.45, 0.30, 0.16),  # brown
    (0.82, 0.68, 0.40),  # blonde
    (0.62, 0.62, 0.60),  # grey
    (0.55, 0.24, 0.10),  # red
)


@dataclass(frozen=True)
class Appearance:
    """How one synthetic subject looks. Scales are relative to the body model's nominal radii."""

    thickness: float  # limb radius scale (arms, legs, neck)
    build: float  # torso radius scale (chest, belly, pelvis, flanks, shoulders)
    head_size: float  # head radius scale
    skin: RGB
    hair: RGB
    top: RGB  # shirt: torso, upper arms, forearms when sleeves are long
    bottom: RGB  # trousers: pelvis, thighs, shins when trousers are long
    shoes: RGB
    long_sleeves: bool
    long_pants: bool
    hairline: float  # face/hair boundary on the front of the head: hair where normal . head_up > hairline
    hair_low: float  # hair ends where normal . head_up < hair_low (short hair ~ -0.3, long ~ -0.8)
    stripe_period: float  # mm, horizontal stripes on the shirt (world height); 0 for a plain shirt
    stripe_colour: RGB

    def palette(self) -> np.ndarray:
        """Base colour per material, (len(MATERIALS), 3) float32; ``head`` is given its skin colour."""
        colours = [self.skin, self.top, self.bottom, self.shoes, self.skin]
        return np.array(colours, dtype=np.float32)


def _random_colour(rng: np.random.Generator) -> RGB:
    """A clothing-like colour: uniform hue, saturation skewed low (many greys), value 0.12-0.95."""
    h, s, v = rng.random(), rng.random() ** 1.5, rng.uniform(0.12, 0.95)
    return _rgb(np.array(colorsys.hsv_to_rgb(h, s, v)))


def _rgb(values: np.ndarray) -> RGB:
    r, g, b = (float(c) for c in np.clip(values, 0, 1))
    return r, g, b


def _jitter(rng: np.random.Generator, colour: RGB, amount: float) -> RGB:
    return _rgb(np.asarray(colour) + rng.uniform(-amount, amount, 3))


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw one subject's appearance (deterministic given ``rng``'s state)."""
    u = rng.random()
    skin = _jitter(rng, _rgb((1 - u) * np.array(_LIGHT_SKIN) + u * np.array(_DARK_SKIN)), 0.03)
    hair = _jitter(rng, _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))], 0.04)
    top = _random_colour(rng)
    if rng.random() < 0.35:  # denim or dark trousers
        bottom = _jitter(rng, (0.16, 0.22, 0.38) if rng.random() < 0.6 else (0.12, 0.12, 0.13), 0.05)
    else:
        bottom = _random_colour(rng)
    shoes = _jitter(rng, (0.08, 0.07, 0.07) if rng.random() < 0.6 else (0.85, 0.85, 0.83), 0.05)
    striped = rng.random() < 0.2
    return Appearance(
        thickness=float(rng.uniform(0.85, 1.2)),
        build=float(rng.uniform(0.85, 1.25)),
        head_size=float(rng.uniform(0.92, 1.08)),
        skin=skin,
        hair=hair,
        top=top,
        bottom=bottom,
        shoes=shoes,
        long_sleeves=bool(rng.random() < 0.6),
        long_pants=bool(rng.random() < 0.8),
        hairline=float(rng.uniform(0.25, 0.6)),
        hair_low=float(rng.uniform(-0.85, -0.3)),
        stripe_period=float(rng.uniform(60, 160)) if striped else 0.0,
        stripe_colour=_random_colour(rng),
    )
