"""structpose: structured prediction of 3D human pose (Tekin et al., BMVC 2016), reference implementation.

Use a trained model::

    import structpose

    model = structpose.load("runs/quick/models/ours")  # a released model folder (or a run folder, method=)
    pred = model.predict(["person.png"], boxes=[(120, 40, 200, 380)])  # boxes: optional, (x, y, w, h) px
    pred.poses  # (N, 17, 3) float32 mm, root-relative, camera frame; pred.joint_names

The names below (:func:`load`, :class:`PoseModel`, :class:`Prediction`, :func:`export_model`) come from
:mod:`structpose.release`, imported on first use (``import structpose`` imports neither torch nor numpy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_RELEASE = ("load", "PoseModel", "Prediction", "export_model")
__all__ = ["PoseModel", "Prediction", "__version__", "export_model", "load"]

if TYPE_CHECKING:
    from structpose.release import PoseModel, Prediction, export_model, load


def __getattr__(name: str) -> Any:
    if name in _RELEASE:
        from structpose import release

        return getattr(release, name)
    raise AttributeError(f"module 'structpose' has no attribute {name!r}")
