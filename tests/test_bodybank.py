"""The body bank (structpose.render.bodybank): the shipped asset, its loader's errors, and a rebuild.

The rebuild needs anny (`pip install 'structpose[bodies]'`): it is skipped without it, and fails instead when
$STRUCTPOSE_REQUIRE_ANNY=1 (CI).
"""

import json
import os
import sys

import numpy as np
import pytest

from structpose.errors import ConfigError, FormatError
from structpose.render.bodybank import (
    PARTS,
    SEGMENTS,
    BodyBank,
    bone_segment,
    build_body_bank,
    load_body_bank,
    save_body_bank,
    signed_volume,
)
from structpose.skeleton import H36M

#: The parts a vertex may carry, given the segment it moves with most.
PART_SEGMENTS = {
    "head": {10}, "neck": {9}, "torso": {7, 8, 11, 14}, "upper_arm": {12, 15}, "forearm": {13, 16},
    "hand": {13, 16}, "pelvis": {0, 7}, "thigh": {2, 5}, "shin": {3, 6}, "foot": {3, 6},
}  # fmt: skip


@pytest.fixture(scope="module")
def bank() -> BodyBank:
    return load_body_bank()


@pytest.fixture(scope="module")
def anny():
    """anny, or a skip (a failure when STRUCTPOSE_REQUIRE_ANNY=1)."""
    try:
        import anny
    except ImportError as err:
        if os.environ.get("STRUCTPOSE_REQUIRE_ANNY") == "1":
            pytest.fail(f"STRUCTPOSE_REQUIRE_ANNY=1 but anny cannot be imported: {err}")
        pytest.skip(f"anny is not installed ({err}); pip install 'structpose[bodies]'")
    return anny


# --- the shipped bank ---------------------------------------------------------------------------------------


def test_shipped_shapes_and_dtypes(bank):
    k, v = bank.vertices.shape[:2]
    assert len(bank) == k == 128 and v == 1229
    assert bank.vertices.dtype == bank.joints.dtype == np.float32 and bank.joints.shape == (k, 17, 3)
    assert bank.faces.dtype == np.int32 and bank.faces.shape == (2454, 3) and bank.faces.max() == v - 1
    assert bank.segment_index.shape == bank.segment_weight.shape == (v, 4)
    assert bank.segment_index.dtype == bank.part.dtype == np.int8 and bank.part.shape == (v,)
    assert bank.phenotypes.shape == (k, len(bank.phenotype_names)) and "gender" in bank.phenotype_names
    assert np.isfinite(bank.vertices).all() and np.isfinite(bank.joints).all()
    assert bank.meta["topology"] == "notoes_collapse10pc" and "CC0" in bank.meta["license"]
    assert not bank.vertices.flags.writeable  # the cached bank is shared


def test_weights_segments_and_parts(bank):
    np.testing.assert_allclose(bank.segment_weight.sum(axis=1), 1.0, atol=1e-5)
    assert (bank.segment_weight >= 0).all() and (np.diff(bank.segment_weight, axis=1) <= 1e-7).all()
    assert np.isin(bank.segment_index, SEGMENTS).all() and set(np.unique(bank.segment_index)) == set(SEGMENTS)
    dominant = bank.segment_index[:, 0]
    bad = [i for i in range(len(dominant)) if dominant[i] not in PART_SEGMENTS[PARTS[bank.part[i]]]]
    assert not bad, f"vertices whose part and dominant segment disagree: {bad[:10]}"
    assert set(np.unique(bank.part)) == set(range(len(PARTS)))


def test_bone_table():
    assert bone_segment("toe3-2.L") == 6 and bone_segment("metacarpal4.R") == 16 and bone_segment("eye.L") == 10
    with pytest.raises(ConfigError, match="tail"):
        bone_segment("tail01")


def test_stature_and_phenotypes(bank):
    stature = bank.vertices[:, :, 2].max(axis=1) - bank.vertices[:, :, 2].min(axis=1)  # measured: 1465-1907
    assert stature.min() < 1550 and stature.max() > 1850 and (stature > 1350).all() and (stature < 2050).all()
    gender = bank.phenotypes[:, bank.phenotype_names.index("gender")]
    male, female = gender < 0.5, gender > 0.5
    assert 40 <= male.sum() <= 88 and male.sum() + female.sum() == len(bank)
    assert stature[male].mean() > stature[female].mean() + 80  # measured: 1765 vs 1613 mm
    assert ((bank.phenotypes >= 0) & (bank.phenotypes <= 1)).all()
    race = bank.phenotypes[:, [bank.phenotype_names.index(r) for r in ("african", "asian", "caucasian")]]
    np.testing.assert_allclose(race.sum(axis=1), 1.0, atol=1e-5)


def test_joints_mirror_and_chain(bank):
    j = bank.joints
    for left, right in zip(H36M.left, H36M.right, strict=True):
        np.testing.assert_allclose(j[:, left, 0], -j[:, right, 0], atol=0.5)
        # anny's elbow bone heads are up to 1.5 mm asymmetric in y for some phenotypes (the mesh: 0.3 mm)
        np.testing.assert_allclose(j[:, left, 1:], j[:, right, 1:], atol=2.0)
        assert (j[:, left, 0] > 50).all()  # +X is the body's left
    np.testing.assert_allclose(j[:, 0], 0.5 * (j[:, 1] + j[:, 4]), atol=1e-3)
    z = j[:, :, 2]
    assert (z[:, 3] < z[:, 2]).all() and (z[:, 2] < z[:, 0]).all() and (z[:, 0] < z[:, 7]).all()
    assert (z[:, 7] < z[:, 8]).all() and (z[:, 8] < z[:, 9]).all() and (z[:, 9] < z[:, 10]).all()


def test_landmarks(bank):
    v = bank.vertices
    nose, top = v[:, bank.nose_vertex], v[:, bank.head_top_vertex]
    head = bank.part == PARTS.index("head")
    assert np.allclose(nose[:, 0], 0, atol=1) and np.allclose(top[:, 0], 0, atol=1)
    assert (nose[:, 1] <= v[:, head, 1].min(axis=1) + 1e-3).all()  # the most forward point of the head
    assert (top[:, 2] >= v[:, :, 2].max(axis=1) - 5).all()  # within 5 mm of the highest point


def test_outward_normals(bank):
    for k in (0, 1, len(bank) - 1):
        n = bank.rest_normals(k)
        assert n.dtype == np.float32 and n.shape == bank.vertices[k].shape
        np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
        out = bank.vertices[k] - bank.vertices[k].mean(axis=0)
        assert (n * out).sum(axis=1).mean() > 0
        assert signed_volume(bank.vertices[k], bank.faces) > 0


# --- the loader's errors ------------------------------------------------------------------------------------


def _write_members(bank: BodyBank, path, **changes):
    """Save ``bank`` to ``path``, then rewrite it with members replaced (``None`` drops one)."""
    save_body_bank(bank, path)
    with np.load(path) as data:
        members = {name: data[name] for name in data.files}
    for name, value in changes.items():
        if value is None:
            members.pop(name)
        else:
            members[name] = value
    with open(path, "wb") as f:
        np.savez(f, **members)
    return path


def test_save_load_round_trip(bank, tmp_path):
    path = save_body_bank(bank, tmp_path / "bank.npz")
    again = load_body_bank(path)
    np.testing.assert_array_equal(again.vertices, bank.vertices)
    np.testing.assert_array_equal(again.segment_index, bank.segment_index)
    assert again.meta == bank.meta and again.phenotype_names == bank.phenotype_names
    assert (again.nose_vertex, again.head_top_vertex) == (bank.nose_vertex, bank.head_top_vertex)
    assert [p.name for p in tmp_path.iterdir()] == ["bank.npz"]  # no temporary file left


@pytest.mark.parametrize("cut", [0.5, 0.0])
def test_truncated_file(bank, tmp_path, cut):
    good = save_body_bank(bank, tmp_path / "good.npz").read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(good[: int(cut * len(good))] or b"not an npz")
    with pytest.raises(FormatError, match="truncated.npz") as info:
        load_body_bank(path)
    assert info.value.path == path


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"joints": np.zeros((128, 16, 3), np.float32)}, "joints has shape"),
        ({"vertices": np.zeros((128, 1229, 3), np.float64)}, "vertices is float64"),
        ({"segment_index": np.full((1229, 4), 1, np.int8)}, "segment_index holds ids"),
        ({"meta": None}, "missing member"),
        ({"meta": np.array("{not json")}, "meta is not JSON"),
        ({"phenotypes": np.full((128, 9), np.nan, np.float32)}, "non-finite"),
    ],
)
def test_bad_members(bank, tmp_path, change, problem):
    path = _write_members(bank, tmp_path / "bad.npz", **change)
    with pytest.raises(FormatError, match=problem) as info:
        load_body_bank(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_body_bank(tmp_path / "none.npz")


def test_build_without_anny(monkeypatch):
    monkeypatch.setitem(sys.modules, "anny", None)  # makes `import anny` raise ImportError
    with pytest.raises(ConfigError, match=r"structpose\[bodies\]"):
        build_body_bank(1, progress=False)


# --- a rebuild (needs anny) ---------------------------------------------------------------------------------


def test_rebuild_matches_shipped(anny, bank):
    three = build_body_bank(3, seed=0, progress=False)
    two = build_body_bank(2, seed=0, progress=False)
    np.testing.assert_allclose(three.vertices, bank.vertices[:3], atol=0.01)
    np.testing.assert_allclose(three.joints, bank.joints[:3], atol=0.01)
    np.testing.assert_allclose(three.phenotypes, bank.phenotypes[:3], atol=1e-6)
    np.testing.assert_array_equal(two.vertices, three.vertices[:2])  # body i does not depend on n
    for name in ("faces", "segment_index", "segment_weight", "part"):
        np.testing.assert_array_equal(getattr(three, name), getattr(bank, name))
    assert (three.nose_vertex, three.head_top_vertex) == (bank.nose_vertex, bank.head_top_vertex)
    assert json.loads(json.dumps(three.meta))["seed"] == 0
    other = build_body_bank(1, seed=1, progress=False)
    assert np.abs(other.vertices[0] - bank.vertices[0]).max() > 1.0
