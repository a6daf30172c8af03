"""The embedded default dataset: determinism, sharding, split hygiene, the picture."""

from dataclasses import replace

import numpy as np
import pytest

from structpose.data.dataset import PoseImageDataset
from structpose.data.poselib import load_pose_library
from structpose.data.protocol import protocol_splits
from structpose.data.show import show_store
from structpose.data.store import list_shards, open_store
from structpose.data.synth import SynthConfig, resolve_preset, synthesize
from structpose.errors import ConfigError

CFG = SynthConfig(size=32, train_images=10, test_images=6, chunk=4, unseen_images=3)


def _read(root, split):
    arrays = {}
    for path in list_shards(root, split):
        with open_store(path) as s:
            part = {"images": s.images(np.arange(len(s))), "poses3d": s.poses3d, "subject": s.subject}
        for k, v in part.items():
            arrays.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in arrays.items()}


def test_same_seed_same_bytes_and_shards_union_to_the_single_run(tmp_path):
    synthesize(tmp_path / "a", CFG, progress=False)
    synthesize(tmp_path / "b", CFG, progress=False, workers=2)
    for i in range(3):
        synthesize(tmp_path / "c", CFG, shard=(i, 3), progress=False)
    assert len(list_shards(tmp_path / "c", "train")) == 3
    for split in ("train", "test"):
        # bit-exact is sound: each sample is rendered alone from its own seeded rng, by the same function;
        # the worker count and the shard only decide which process renders it
        a, b, c = (_read(tmp_path / d, split) for d in "abc")
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
            np.testing.assert_array_equal(a[key], c[key])
    other = SynthConfig(**{**CFG.__dict__, "seed": 1})
    synthesize(tmp_path / "d", other, progress=False)
    assert not np.array_equal(_read(tmp_path / "a", "train")["images"], _read(tmp_path / "d", "train")["images"])


def test_train_and_test_subjects_are_disjoint_and_samples_are_sane(tmp_path):
    synthesize(tmp_path, CFG, progress=False)
    train, test = PoseImageDataset(tmp_path, "train"), PoseImageDataset(tmp_path, "test")
    assert len(train) == 10 and len(test) == 6
    cmu = [{s for s in ds.subject if s.startswith("cmu:")} for ds in (train, test)]
    assert not cmu[0] & cmu[1]  # CMU: split by person
    assert not set(train.sequence) & set(test.sequence)  # Bandai-Namco: by style, so by sequence too
    lib = load_pose_library()
    test_subjects = set(lib.column("subject")[lib.column("split") == "test"])
    assert set(test.subject) <= test_subjects
    for ds in (train, test):
        np.testing.assert_allclose(ds.poses3d[:, 0], 0, atol=1e-3)  # root-relative
        assert np.all((ds.joints2d >= 0) & (ds.joints2d <= 32))  # every joint inside the crop
        item = ds[0]
        assert item["image"].shape == (3, 32, 32) and item["image"].float().std() > 5  # not a blank image
    with open_store(list_shards(tmp_path, "train")[0]) as store:
        assert "NON-COMMERCIAL" in store.attrs["license"] and store.attrs["pose_library_sha256"]


def test_protocol_v2_keeps_motions_without_training_frames_out_of_the_test_split(tmp_path):
    lib = load_pose_library()
    split, action = protocol_splits(lib, "v2"), lib.column("action")
    trained = set(action[split == "train"])
    assert set(action[split == "test"]) <= trained  # every test action has training frames (of other people)
    assert set(action[split == "unseen"]) == {"balance on one leg, outstretched arms"}
    assert not set(action[split == "unseen"]) & trained
    np.testing.assert_array_equal(protocol_splits(lib, "v1"), lib.column("split"))  # v1 is the library's split
    assert (protocol_splits(lib, "v1") == "unseen").sum() == 0
    synthesize(tmp_path, CFG, progress=False)
    unseen = PoseImageDataset(tmp_path, "unseen")
    assert len(unseen) == 3 and set(unseen.action) == {"balance on one leg, outstretched arms"}
    assert open_store(list_shards(tmp_path, "test")[0]).attrs["protocol"] == "v2"
    with pytest.raises(ConfigError, match="protocol"):
        synthesize(tmp_path / "x", replace(CFG, protocol="v3"), progress=False)


def test_protocol_v1_renders_as_before(tmp_path):
    synthesize(tmp_path, replace(CFG, protocol="v1"), progress=False)
    assert not list(tmp_path.glob("unseen*.h5"))
    test = PoseImageDataset(tmp_path, "test")
    lib = load_pose_library()
    assert set(test.subject) <= set(lib.column("subject")[lib.column("split") == "test"])


def test_cmu_only_set_has_no_bandai_frames(tmp_path):
    synthesize(
        tmp_path, SynthConfig(size=32, train_images=6, test_images=4, sources=("cmu",), unseen_images=2), progress=False
    )
    ds = PoseImageDataset(tmp_path, "train")
    assert all(s.startswith("cmu:") for s in ds.subject)
    with open_store(list_shards(tmp_path, "train")[0]) as store:
        assert "NON-COMMERCIAL" not in store.attrs["license"]


def test_show_writes_a_png(tmp_path):
    synthesize(tmp_path, CFG, progress=False)
    out = show_store(tmp_path, tmp_path / "s.png", count=4)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_preset_and_shard_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown synth preset"):
        resolve_preset("huge")
    with pytest.raises(ValueError, match="shard index"):
        synthesize(tmp_path, CFG, shard=(3, 3), progress=False)


def test_library_poses_are_training_frames_seen_by_sampled_cameras():
    from structpose.data.synth import library_poses
    from structpose.skeleton import H36M_JOINTS as JOINT_NAMES

    attrs = {"created_by": "structpose data synth", "pose_library": "structpose/assets/poselib_v1.npz",
             "sources": "cmu,bandai", "protocol": "v2"}  # fmt: skip
    poses = library_poses(64, attrs, seed=1)
    assert poses.shape == (64, 17, 3) and poses.dtype == np.float32
    assert np.all(poses[:, 0] == 0)  # root-relative
    head, ankles = JOINT_NAMES.index("Head"), [JOINT_NAMES.index("RFoot"), JOINT_NAMES.index("LFoot")]
    # camera frame, y down: the head is above the feet in (nearly) every view of a mostly upright library
    assert np.mean(poses[:, head, 1] < poses[:, ankles, 1].mean(1)) > 0.8
    np.testing.assert_array_equal(library_poses(64, attrs, seed=1), poses)  # deterministic
    assert not np.allclose(library_poses(64, attrs, seed=2), poses)
    lib = load_pose_library()
    train_names = {str(q["name"]) for q, s in zip(lib.sequences, _sequence_splits(lib), strict=True) if s == "train"}
    with pytest.raises(ConfigError, match="no training frame"):
        library_poses(4, attrs, exclude_sequences=train_names)
    with pytest.raises(ConfigError, match="rendered by"):
        library_poses(4, {"created_by": "structpose data h36m"})


def _sequence_splits(lib) -> list[str]:
    """The protocol v2 split of each sequence of ``lib`` (that of its first frame)."""
    frame_split = protocol_splits(lib, "v2")
    return [str(frame_split[np.flatnonzero(lib.sequence == i)[0]]) if (lib.sequence == i).any() else ""
            for i in range(len(lib.sequences))]  # fmt: skip
