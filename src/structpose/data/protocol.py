"""Protocols of the embedded benchmark: which pose-library frames train, which test, which test generalisation.

The pose library (``assets/poselib_v1.npz``) records one split per sequence (``train``/``test``; CMU by
subject, Bandai-Namco by style: :func:`structpose.data.mocap.splits.split_description`). A protocol turns
that into the splits that are rendered:

* ``v1`` — the library's split as it is: ``train`` and ``test``. Some test motions have no training frame
  at all (CMU's "balance on one leg, outstretched arms", performed by one test subject only), so every
  method fails on them alike and they weigh on the mean over actions as much as any other action.
* ``v2`` (default) — the same held-out subjects and styles, but a test frame whose action has no training
  frame in ANY source is moved to a third split, ``unseen``, reported in a table of its own (generalisation
  to unseen motions) and never inside the Table 1 mean. Every action of the ``test`` split then has training
  frames performed by other people (CMU) or in other styles (Bandai-Namco, whose styles share actors, so
  "different subjects" holds for CMU only), as in Human3.6M's protocol. Actions are matched by their label
  (CMU's "run" is trained by Bandai-Namco's "run").
"""

from __future__ import annotations

import numpy as np

from structpose.data.poselib import PoseLibrary
from structpose.errors import ConfigError

PROTOCOLS: tuple[str, ...] = ("v1", "v2")
DEFAULT_PROTOCOL = "v2"
#: The splits a protocol renders, in order.
PROTOCOL_SPLITS: dict[str, tuple[str, ...]] = {"v1": ("train", "test"), "v2": ("train", "test", "unseen")}


def check_protocol(protocol: str) -> str:
    """``protocol`` if known; :class:`~structpose.errors.ConfigError` otherwise."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown benchmark protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return protocol


def protocol_splits(lib: PoseLibrary, protocol: str = DEFAULT_PROTOCOL) -> np.ndarray:
    """The split of every library frame under ``protocol``.

    Args:
        lib: the pose library (any selection of its sources).
        protocol: ``"v1"`` or ``"v2"`` (module docstring).

    Returns:
        (N,) str array of ``"train"``, ``"test"`` and, for ``v2``, ``"unseen"``.
    """
    split = lib.column("split").astype(str)
    if check_protocol(protocol) == "v1":
        return split
    action = lib.column("action").astype(str)
    trained = np.unique(action[split == "train"])
    return np.where((split == "test") & ~np.isin(action, trained), "unseen", split)


def describe_protocol(lib: PoseLibrary, protocol: str = DEFAULT_PROTOCOL) -> str:
    """One paragraph for a report: frames per split and the actions moved to ``unseen``."""
    split = protocol_splits(lib, protocol)
    action = lib.column("action").astype(str)
    counts = ", ".join(f"{s} {int((split == s).sum())} frames" for s in PROTOCOL_SPLITS[protocol])
    unseen = sorted(set(action[split == "unseen"]))
    moved = f"; unseen motions (no training frame of their action): {', '.join(unseen)}" if unseen else ""
    return f"protocol {protocol}: {counts}{moved}"
