"""The paper's own numbers (Tekin et al. 2016, Tables 1 and 2), shipped as ``assets/paper_tekin2016.json``.

The embedded benchmark's numbers are not comparable with the paper's (other images, other actions); what
is tested is the paper's claim, a *ratio*: OURS / direct CNN regression (structpose's direct CNN is the
same-trunk stand-in for DconvMP-HML) and OURS / LinKDE. :func:`paper_ratios` gives them; on a Human3.6M
import the report prints the paper's per-action numbers beside ours (:func:`paper_table1`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np


@lru_cache(maxsize=1)
def paper_tables() -> dict:
    """The shipped transcription of the paper's Tables 1 and 2 (see the JSON file's ``source``)."""
    return json.loads(resources.files("structpose.assets").joinpath("paper_tekin2016.json").read_text())


def paper_table1() -> dict[str, dict[str, float]]:
    """Table 1 as {row name: {structpose action name: MPJPE mm}}, plus each row's mean over the six actions
    under ``"mean"`` (the paper prints none)."""
    t = paper_tables()["table1"]
    actions = list(t["actions"].values())
    out = {}
    for row, values in t["rows"].items():
        out[row] = dict(zip(actions, values, strict=True)) | {"mean": float(np.mean(values))}
    return out


def paper_ratios() -> dict[str, float]:
    """The paper's claim as ratios of the six-action means: ``ours/cnn`` (OURS / DconvMP-HML) and
    ``ours/linkde``, and ``cnn/linkde``."""
    t1, names = paper_table1(), paper_tables()["table1"]["structpose"]
    mean = {key: t1[row]["mean"] for key, row in names.items()}
    return {"ours/cnn": mean["ours"] / mean["cnn"], "ours/linkde": mean["ours"] / mean["linkde"],
            "cnn/linkde": mean["cnn"] / mean["linkde"]}  # fmt: skip
