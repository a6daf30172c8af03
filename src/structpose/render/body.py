"""The volumetric body: capsules hung on the 17 H36M joints, sized by an :class:`Appearance`.

A capsule is the set of points within ``radius`` of the segment ``a``-``b`` (a sphere when ``a == b``).
The body has a head sphere with a nose, a neck, a torso of five capsules (chest, belly, pelvis, shoulder
bar, two flanks), upper arms, forearms, hands, thighs, shins and feet. The head carries an orientation
(forward and up axes) used to paint a face on its front and hair on its back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from structpose.errors import InputError
from structpose.render.appearance import BOTTOM, HEAD, SHOES, SKIN, TOP, Appearance
from structpose.skeleton import H36M

#: Body part of each capsule, in the order :func:`build_body` emits them.
PARTS: tuple[str, ...] = (
    "head", "nose", "neck", "chest", "belly", "pelvis", "shoulders", "l_flank", "r_flank",
    "l_upper_arm", "l_forearm", "l_hand", "r_upper_arm", "r_forearm", "r_hand",
    "l_thigh", "l_shin", "l_foot", "r_thigh", "r_shin", "r_foot",
)  # fmt: skip

_J = {name: H36M.index(name) for name in H36M.names}


@dataclass(frozen=True)
class Body:
    """Capsules in one frame (world or camera), mm, plus the head's orientation in that frame.

    ``a``, ``b``: (N, 3) segment ends; ``radius``: (N,); ``material``: (N,) indices into
    :data:`~structpose.render.appearance.MATERIALS`; ``head_forward``, ``head_up``: (3,) unit vectors.
    """

    a: np.ndarray
    b: np.ndarray
    radius: np.ndarray
    material: np.ndarray
    head_forward: np.ndarray
    head_up: np.ndarray

    def transformed(self, R: np.ndarray, t: np.ndarray) -> Body:
        """The body under ``X -> R X + t`` (e.g. world -> camera); directions are only rotated."""
        return Body(
            self.a @ R.T + t,
            self.b @ R.T + t,
            self.radius,
            self.material,
            R @ self.head_forward,
            R @ self.head_up,
        )

    def lowest_point(self) -> float:
        """The lowest z of the body surface (world frame: the floor it stands on), mm."""
        return float(min((self.a[:, 2] - self.radius).min(), (self.b[:, 2] - self.radius).min()))


def _norm(v: np.ndarray) -> float:
    return float(np.sqrt(v @ v))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(_norm(v), 1e-9)


def _cross(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.array([p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]])


def _lerp(p: np.ndarray, q: np.ndarray, w: float) -> np.ndarray:
    return p + w * (q - p)


def build_body(pose: np.ndarray, app: Appearance) -> Body:
    """Capsules for one pose (17, 3) mm in any right-handed frame; left/right are the subject's own.

    The subject's forward axis is ``left x up`` (``left`` from right to left hip and shoulder, ``up``
    from hip to thorax), so a subject facing +y with z up has its left side at -x.
    """
    P = np.asarray(pose, dtype=np.float64)
    j = _J
    left = _unit(P[j["LShoulder"]] - P[j["RShoulder"]] + P[j["LHip"]] - P[j["RHip"]])
    up = _unit(P[j["Thorax"]] - P[j["Hip"]])
    forward = _unit(_cross(left, up))

    # Head: a sphere hanging below the head-top joint, up along thorax->head. It faces where the
    # Neck/Nose joint sits off that axis (in mocap it is 30-80 mm in front), else where the torso faces.
    head_r = 95.0 * app.head_size
    head_up = _unit(P[j["Head"]] - P[j["Thorax"]])
    nose_off = P[j["Neck/Nose"]] - P[j["Thorax"]]
    nose_off -= (nose_off @ head_up) * head_up
    w = min(max((_norm(nose_off) - 10.0) / 20.0, 0.0), 1.0)
    torso_fwd = _unit(forward - (forward @ head_up) * head_up)
    blend = w * _unit(nose_off) + (1 - w) * torso_fwd
    head_fwd = _unit(blend) if _norm(blend) > 0.1 else torso_fwd
    head_c = P[j["Head"]] - 0.95 * head_r * head_up
    nose = head_c + head_r * (0.93 * head_fwd - 0.2 * head_up)

    thorax, hip = P[j["Thorax"]], P[j["Hip"]]
    lsh, rsh = P[j["LShoulder"]], P[j["RShoulder"]]
    th, bu = app.thickness, app.build
    sleeve = TOP if app.long_sleeves else SKIN
    leg = BOTTOM if app.long_pants else SKIN

    # The torso is sized in absolute terms around the spine (mocap rigs disagree on hip-joint spacing),
    # except for the shoulder bar, which follows the shoulder joints. The thorax joint sits at the base
    # of the neck, only a few cm below the chin: the chest stops short of it so as not to hood the face.
    caps: list[tuple[np.ndarray, np.ndarray, float, int]] = [
        (head_c, head_c, head_r, HEAD),
        (nose, nose, 0.2 * head_r, SKIN),
        (thorax, _lerp(thorax, head_c, 0.6), 50.0 * th, SKIN),
        (P[j["Spine"]], thorax - 80.0 * bu * up, 115.0 * bu, TOP),
        (hip, P[j["Spine"]], 105.0 * bu, TOP),
        (hip + 75.0 * bu * left, hip - 75.0 * bu * left, 80.0 * bu, BOTTOM),
        (_lerp(thorax, lsh, 0.8), _lerp(thorax, rsh, 0.8), 60.0 * bu, TOP),
        (thorax + 75.0 * bu * left - 70.0 * up, hip + 65.0 * bu * left + 60.0 * up, 75.0 * bu, TOP),
        (thorax - 75.0 * bu * left - 70.0 * up, hip - 65.0 * bu * left + 60.0 * up, 75.0 * bu, TOP),
    ]
    for side in ("L", "R"):
        sh, el, wr = P[j[f"{side}Shoulder"]], P[j[f"{side}Elbow"]], P[j[f"{side}Wrist"]]
        caps += [
            (sh, el, 48.0 * th, TOP),
            (el, wr, 40.0 * th, sleeve),
            (wr, wr + 70.0 * _unit(wr - el), 42.0 * th, SKIN),
        ]
    for side in ("L", "R"):
        hp, kn, an = P[j[f"{side}Hip"]], P[j[f"{side}Knee"]], P[j[f"{side}Foot"]]
        shin_up = _unit(kn - an)
        toe_dir = _unit(forward - (forward @ shin_up) * shin_up)
        caps += [
            (hp, kn, 76.0 * th, BOTTOM),
            (kn, an, 52.0 * th, leg),
            (an, an + 120.0 * toe_dir - 25.0 * shin_up, 42.0 * th, SHOES),
        ]
    if len(caps) != len(PARTS):
        raise InputError(f"expected one capsule per body part ({len(PARTS)}), got {len(caps)}")
    a, b, r, m = zip(*caps, strict=True)
    return Body(np.array(a), np.array(b), np.array(r), np.array(m, dtype=np.int64), head_fwd, head_up)
