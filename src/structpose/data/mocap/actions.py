"""Grouping of the sources' own action labels into Human3.6M action names where they fit.

Human3.6M's actions are Directions, Discussion, Eating, Greeting, Phoning, Photo, Posing, Purchases,
Sitting, SittingDown, Smoking, Waiting, WalkDog, Walking, WalkTogether. Of these only Walking, Greeting and
Directions have real counterparts here; every other label is kept as the source states it (minus the
Bandai-Namco ``(style: ...)`` suffix), e.g. ``"run"``, ``"salsa dance"``, ``"punch"``.
"""

from __future__ import annotations

import re

#: (pattern on the style-free label, H36M action); the first match wins.
H36M_ACTION_RULES: tuple[tuple[str, str], ...] = (
    (r"\bwalk", "Walking"),  # walk, slow/brisk walk, walk-back/-left/-right/-turn-*, "start walk stop"
    (r"^(bow|bye|byebye|call|respond|wave-|raise-up-)", "Greeting"),  # Bandai greeting gestures
    (r"^guide$|directing traffic", "Directions"),
)

_STYLE = re.compile(r"\s*\(style:[^)]*\)\s*$")


def content_label(label: str) -> str:
    """The label without a Bandai-Namco ``(style: ...)`` suffix."""
    return _STYLE.sub("", label)


def h36m_action(label: str) -> str:
    """H36M action name for a source label, or the style-free label itself where none fits."""
    content = content_label(label)
    return next((action for pattern, action in H36M_ACTION_RULES if re.search(pattern, content)), content)
