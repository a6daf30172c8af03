"""The Human3.6M import, on a miniature release written in the official formats (tests/h36m_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from h36m_fixtures import (
    EVERY,
    POSE_FRAMES,
    FixtureRelease,
    build_release,
    to_raw,
    write_cdf,
    write_video,
    write_videopose3d_npz,
)

from structpose.camera import H36M_CAMERA_IDS, h36m_camera
from structpose.data import h36m_import
from structpose.data.h36m import (
    H36MFormatError,
    check_selection,
    find_sequences,
    parse_action,
    read_cdf_poses,
    split_of,
)
from structpose.data.h36m_import import import_h36m
from structpose.data.h36m_poses import import_h36m_poses, load_h36m_poses
from structpose.data.store import list_shards, open_store
from structpose.data.video import VideoError, iter_frames, probe_video
from structpose.skeleton import H36M


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> FixtureRelease:
    return build_release(tmp_path_factory.mktemp("h36m"))


@pytest.fixture(scope="module")
def imported(release, tmp_path_factory):
    """The whole fixture release imported by two worker processes: (report, {split: StoreReader})."""
    out = tmp_path_factory.mktemp("imported")
    report = import_h36m(release.root, out, size=128, every=EVERY, workers=2, progress=False)
    stores = {split: open_store(list_shards(out, split)[0]) for split in ("train", "test")}
    yield report, stores
    for store in stores.values():
        store.close()


def _keys(store) -> np.ndarray:
    return np.array([f"{s}/{q}.{c}" for s, q, c in zip(store.subject, store.sequence, store.camera_id, strict=True)])


def _num_samples(path: Path) -> int:
    with open_store(path) as store:
        return len(store)


def _expected_camera_poses(release: FixtureRelease, subject: str, stem: str, cam_id: str) -> np.ndarray:
    """(F, 17, 3) mm: the known world poses in the camera frame (not root-relative)."""
    return h36m_camera(subject, cam_id).world_to_camera(release.world[subject, stem])


# ---- layout and formats ---------------------------------------------------------------------------
def test_action_names_are_normalised_and_sub_actions_recognised():
    assert parse_action("Directions 1") == parse_action("Directions") == parse_action("Directions 2") == "Directions"
    assert parse_action("TakingPhoto") == parse_action("Photo 1") == "Photo"
    assert parse_action("WalkingDog 1") == parse_action("WalkDog") == "WalkDog"
    assert parse_action("SittingDown 2") == "SittingDown" and parse_action("Sitting 1") == "Sitting"
    assert parse_action("WalkTogether 2") == "WalkTogether" and parse_action("Walking") == "Walking"
    for stray in ("_ALL", "_ALL 1", "Directions 1.54138969", "Dancing", "Directions1", "readme"):
        assert parse_action(stray) is None
    assert [split_of(s) for s in ("S1", "S5", "S6", "S7", "S8", "S9", "S11")] == ["train"] * 5 + ["test"] * 2
    with pytest.raises(ValueError, match="S2"):
        split_of("S2")
    with pytest.raises(ValueError, match="Dancing"):
        check_selection(None, ["Dancing"])


def test_cdf_poses_read_in_row_and_column_major(tmp_path):
    poses = np.random.default_rng(0).normal(size=(7, 32, 3)).astype(np.float32) * 1000
    write_cdf(tmp_path / "row.cdf", poses)
    write_cdf(tmp_path / "col.cdf", poses, column_major=True)  # as MATLAB writes them
    for name in ("row.cdf", "col.cdf"):
        np.testing.assert_array_equal(read_cdf_poses(tmp_path / name, 3), poses)
    with pytest.raises(H36MFormatError, match="expected \\(1, F, 64\\)"):
        read_cdf_poses(tmp_path / "row.cdf", 2)
    (tmp_path / "bad.cdf").write_bytes(b"garbage" * 50)
    with pytest.raises(H36MFormatError, match="bad.cdf"):
        read_cdf_poses(tmp_path / "bad.cdf", 3)


def test_video_frames_are_counted_and_decoded(tmp_path):
    uv = np.tile([[100.0, 120.0]], (3, 17, 1))
    write_video(tmp_path / "v.mp4", uv, (200, 160), frames=12)
    info = probe_video(tmp_path / "v.mp4")
    assert (info.frames, info.width, info.height) == (12, 200, 160)
    frames = list(iter_frames(tmp_path / "v.mp4", stop=11, every=5))
    assert [i for i, _ in frames] == [0, 5, 10]
    image = frames[0][1]
    assert image.shape == (160, 200, 3) and image.dtype == np.uint8
    assert image[120, 100].min() > 200 and image[20, 20].max() < 40  # the disc and the background
    with pytest.raises(VideoError, match="v.mp4: decoded only 12 of 13"):
        list(iter_frames(tmp_path / "v.mp4", stop=13))
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 300)
    with pytest.raises(VideoError, match="bad.mp4"):
        probe_video(tmp_path / "bad.mp4")


def test_find_sequences_follows_the_release_layout(release):
    sequences, problems = find_sequences(release.root)
    keys = {s.key for s in sequences}
    planted = {"S5/Directions 1." + c for c in H36M_CAMERA_IDS} | {release.refused_key, release.damaged_key}
    assert keys == set(release.frames) | planted | {"S5/Discussion 2.55011271"}
    assert not any("_ALL" in k or "Thumbs" in k or "readme" in k for k in keys)
    by_key = {s.key: s for s in sequences}
    photo = by_key["S1/TakingPhoto.54138969"]
    assert (photo.action, photo.name, photo.split) == ("Photo", "TakingPhoto", "train")
    assert photo.video.name == "TakingPhoto.54138969.mp4" and photo.mono is None and photo.d2 is None
    s9 = by_key["S9/Directions 1.58860488"]
    assert s9.mono == release.bad_mono and s9.d2 is not None
    assert sorted(p.split(":")[0] for p in problems) == ["S6", "S7", "S8"]  # not in the fixture
    only, _ = find_sequences(release.root, subjects=["S1"], actions=["WalkDog"])
    assert {s.key for s in only} == {f"S1/WalkingDog 1.{c}" for c in H36M_CAMERA_IDS}


# ---- the full import --------------------------------------------------------------------------------
def test_import_splits_by_subject_and_normalises_actions(release, imported):
    report, stores = imported
    train, test = stores["train"], stores["test"]
    assert set(train.subject) == {"S1", "S5"} and set(test.subject) == {"S9", "S11"}
    assert set(train.action) == {"Photo", "WalkDog", "Discussion"} and set(test.action) == {"Directions", "Waiting"}
    assert set(train.sequence) == {"TakingPhoto", "WalkingDog 1", "Discussion 2"}  # stems keep the sub-action
    assert train.attrs["split"] == "train" and test.attrs["split"] == "test"
    assert train.attrs["protocol"]["train"] == ["S1", "S5", "S6", "S7", "S8"]
    assert test.attrs["protocol"]["test"] == ["S9", "S11"] and test.attrs["subjects"] == ["S9", "S11"]
    assert train.attrs["fps"] == 10.0 and train.image_size == 128
    assert sorted(report.imported) == sorted(release.frames) and report.resumed == []
    assert report.samples == {"train": len(train), "test": len(test)}
    assert (report.out / "h36m_import_report.txt").read_text().strip() == report.summary()
    assert not (report.out / ".parts").exists()


def test_imported_frames_follow_the_step_and_the_frame_count_checks(release, imported):
    _, stores = imported
    frames: dict[str, list[int]] = {}
    for store in stores.values():
        for key, f in zip(_keys(store), store.frame, strict=True):
            frames.setdefault(key, []).append(int(f))
    assert frames == release.frames  # every 5th frame; cut videos end early; the refused one is absent
    assert frames["S9/Waiting 1.55011271"] == [0, 5, 10, 15]  # video 3 frames short: cut to 18
    assert release.refused_key not in frames and release.damaged_key not in frames


def test_imported_poses_are_the_known_poses_in_the_camera_frame(release, imported):
    _, stores = imported
    for store in stores.values():
        for i, key in enumerate(_keys(store)):
            subject, rest = key.split("/")
            stem, cam_id = rest.rsplit(".", 1)
            expected = _expected_camera_poses(release, subject, stem, cam_id)[store.frame[i]]
            # the store holds float32: ~2.4e-4 mm at 5.5 m (and ~1e-5 px), against this float64 reference
            np.testing.assert_allclose(store.root_cam[i], expected[0], atol=0.01)
            np.testing.assert_allclose(store.poses3d[i], expected - expected[0], atol=0.01)
            cam = h36m_camera(subject, cam_id)
            np.testing.assert_allclose(store.intrinsics[i], cam.intrinsics_vector(), rtol=1e-6)
            full = cam.project(expected)  # joints2d map back onto the full-image projection
            box = store.boxes[i]
            np.testing.assert_allclose(store.joints2d[i], (full - box[:2]) * 128 / (box[2] - box[0]), atol=0.02)


def test_left_is_left(release, imported):
    """The person faces camera 54138969 and turns its back to 55011271: its left hand is on the image's
    right in the first and on the left in the second; left joints are at world x < 0 (fixture layout)."""
    _, stores = imported
    store = stores["train"]
    left, right = list(H36M.left), list(H36M.right)
    for cam_id, sign in (("54138969", 1), ("58860488", 1), ("55011271", -1), ("60457274", -1)):
        rows = store.camera_id == cam_id
        u = store.joints2d[rows, :, 0]
        assert np.all(sign * (u[:, left].mean(1) - u[:, right].mean(1)) > 20), cam_id
    world = release.world["S1", "TakingPhoto"]
    assert np.all(world[:, left, 0] < world[:, 0:1, 0]) and np.all(world[:, right, 0] > world[:, 0:1, 0])
    wrist = H36M.index("LWrist")
    cam = h36m_camera("S1", "54138969")
    rows = np.flatnonzero((store.camera_id == "54138969") & (store.sequence == "TakingPhoto"))
    expected = cam.world_to_camera(world[store.frame[rows]])
    np.testing.assert_allclose(store.poses3d[rows, wrist], expected[:, wrist] - expected[:, 0], atol=0.01)  # float32


def test_crops_show_the_subject_at_the_stored_joints(imported):
    _, stores = imported
    for store in stores.values():
        images = store.images(slice(0, len(store))).astype(np.float32).mean(-1)  # (N, S, S) grey
        S = store.image_size
        yy, xx = np.mgrid[0:S, 0:S] + 0.5
        for image, joints in zip(images, store.joints2d, strict=True):
            for u, v in joints:
                x, y = int(u), int(v)
                assert image[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].max() > 150  # a disc is drawn there
            dist = np.sqrt((xx[..., None] - joints[:, 0]) ** 2 + (yy[..., None] - joints[:, 1]) ** 2).min(-1)
            assert image[dist > 6].mean() < 30 and image[dist > 6].max() < 120  # and nothing elsewhere


def test_defects_are_reported_with_their_paths_and_the_rest_imports(release, imported):
    report, stores = imported
    problems = "\n".join(report.problems)
    assert sum(str(release.corrupt_cdf) in p for p in report.problems) == 4  # its four cameras
    assert f"S5/Discussion 2.55011271: not imported: {release.corrupt_video}" in problems
    assert f"{release.damaged_key}: skipped" in problems and "damaged" in problems
    assert f"{release.refused_key}: not imported" in problems and "MAX_FRAME_MISMATCH" in problems
    notes = "\n".join(report.notes)
    assert "S9/Waiting 1.55011271: cut to 18 frames (video 18, poses 21)" in notes
    assert "S9/Waiting 1.54138969: cut to 21 frames (video 24, poses 21)" in notes
    assert str(release.bad_mono) in notes and "50.0 mm" in notes
    assert sum("Directions 1" in n and "D3_Positions_mono" in n for n in report.notes) == 1  # exact ones pass
    assert "D2_Positions" not in notes  # the 2D files agree with the projection
    train_keys = set(_keys(stores["train"]))
    assert {f"S5/Discussion 2.{c}" for c in ("54138969", "58860488", "60457274")} <= train_keys


# ---- resuming, sharding ----------------------------------------------------------------------------
def test_a_killed_import_resumes_without_redoing_finished_sequences(release, imported, tmp_path, monkeypatch):
    out = tmp_path / "out"
    original = h36m_import._write_part
    calls: list[str] = []

    def killed_on_third(seq, cfg, part):
        calls.append(seq.key)
        if len(calls) == 3:
            (part.parent / (part.name + ".tmp")).write_bytes(b"half written")  # as a kill mid-write leaves it
            raise KeyboardInterrupt
        return original(seq, cfg, part)

    monkeypatch.setattr(h36m_import, "_write_part", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        import_h36m(release.root, out, subjects=["S9"], progress=False)
    assert not list(out.glob("*.h5")) and not list(out.glob("*.h5.tmp"))  # nothing under a final name
    finished = sorted(p.name for p in (out / ".parts" / "S9").glob("*.h5"))
    assert finished == ["Directions 1.54138969.h5", "Directions 1.55011271.h5"]

    calls.clear()
    monkeypatch.setattr(h36m_import, "_write_part", lambda *a: calls.append(a[0].key) or original(*a))
    report = import_h36m(release.root, out, subjects=["S9"], progress=False)
    assert report.resumed == ["S9/Directions 1.54138969", "S9/Directions 1.55011271"]
    assert len(calls) == 6 and not set(calls) & set(report.resumed)  # the other six, once each
    assert not list(out.rglob("*.tmp"))
    assert "S9/Waiting 1.55011271: cut to 18 frames (video 18, poses 21)" in report.notes
    # The resumed output is the uninterrupted parallel import's S9 part, image for image.
    full = imported[1]["test"]
    rows = np.flatnonzero(full.subject == "S9")
    with open_store(out / "test.h5") as store:
        assert len(store) == len(rows)
        np.testing.assert_array_equal(store.images(slice(0, len(store))), full.images(rows))
        np.testing.assert_array_equal(store.poses3d, full.poses3d[rows])
        np.testing.assert_array_equal(_keys(store), _keys(full)[rows])
        np.testing.assert_array_equal(store.frame, full.frame[rows])


def test_parts_are_redone_only_for_other_settings_and_shards_are_balanced(release, tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls: list[str] = []
    original = h36m_import._write_part
    monkeypatch.setattr(h36m_import, "_write_part", lambda *a: calls.append(a[0].key) or original(*a))
    monkeypatch.setattr(h36m_import, "MAX_SAMPLES_PER_SHARD", 7)
    run = dict(subjects=["S11"], progress=False, keep_parts=True)
    report = import_h36m(release.root, out, **run)
    assert len(calls) == 3 and [_num_samples(p) for p in report.files["test"]] == [5, 5, 5]
    assert [p.name for p in list_shards(out, "test")] == [f"test-0000{k}-of-00003.h5" for k in range(3)]
    assert "train" not in report.files

    calls.clear()
    monkeypatch.setattr(h36m_import, "MAX_SAMPLES_PER_SHARD", 100)
    report = import_h36m(release.root, out, **run)
    assert calls == [] and len(report.resumed) == 3
    assert list_shards(out, "test") == [out / "test.h5"]  # the earlier shards are gone

    report = import_h36m(release.root, out, every=10, **run)  # other settings: every part is redone
    assert len(calls) == 3 and report.resumed == [] and report.samples["test"] == 3 * 3


def test_import_refuses_a_root_without_the_release(tmp_path):
    with pytest.raises(FileNotFoundError, match="D3_Positions"):
        import_h36m(tmp_path, tmp_path / "out", progress=False)


# ---- poses only -------------------------------------------------------------------------------------
def _check_poses_file(data: dict, release: FixtureRelease, sequences: dict[tuple[str, str], str]) -> None:
    """``sequences``: (subject, stem in the fixture) -> sequence name expected in the file."""
    assert list(data["camera_ids"]) == list(H36M_CAMERA_IDS)
    assert len(data["world"]) == POSE_FRAMES * len(sequences)
    for (subject, stem), name in sequences.items():
        rows = (data["subject"] == subject) & (data["sequence"] == name)
        assert rows.sum() == POSE_FRAMES and list(data["frame"][rows]) == list(range(POSE_FRAMES))
        world = release.world[subject, stem]
        np.testing.assert_allclose(data["world"][rows], world, atol=0.01)  # float32 file, float64 reference
        assert set(data["action"][rows]) == {parse_action(stem)} and set(data["split"][rows]) == {split_of(subject)}
        for c, cam_id in enumerate(H36M_CAMERA_IDS):
            pcam = _expected_camera_poses(release, subject, stem, cam_id)
            np.testing.assert_allclose(data["camera"][rows, c], pcam - pcam[:, :1], atol=0.01)


def test_poses_only_from_the_cdf_tree(release, tmp_path):
    path = import_h36m_poses(release.root, tmp_path / "poses.npz")
    data = load_h36m_poses(path)
    _check_poses_file(data, release, {key: key[1] for key in release.world})
    assert set(data["action"]) == {"Photo", "WalkDog", "Discussion", "Directions", "Waiting"}
    assert len(data["problems"]) == 1 and str(release.corrupt_cdf) in data["problems"][0]
    assert data["world"].dtype == np.float32 and data["camera"].shape[1:] == (4, 17, 3)


def test_poses_only_from_videopose3d_npz(release, tmp_path):
    src = tmp_path / "data_3d_h36m.npz"
    write_videopose3d_npz(src, release)
    path = import_h36m_poses(src, tmp_path)  # a directory: the file goes inside
    assert path == tmp_path / "h36m_poses.npz"
    data = load_h36m_poses(path)
    renamed = {"TakingPhoto": "Photo", "WalkingDog 1": "WalkDog 1"}
    _check_poses_file(data, release, {key: renamed.get(key[1], key[1]) for key in release.world})
    assert len(data["problems"]) == 0
    every = load_h36m_poses(import_h36m_poses(src, tmp_path / "every5.npz", every=5))
    assert len(every["world"]) == len(release.world) * 5 and set(every["frame"]) == {0, 5, 10, 15, 20}


def test_raw_layout_of_the_fixture_is_the_release_layout():
    """The fixture's 32-joint layout (from the release's joint names) agrees with structpose's selection."""
    from structpose.skeleton import H36M_32_TO_17

    poses = np.random.default_rng(1).normal(size=(2, 17, 3))
    np.testing.assert_array_equal(to_raw(poses)[:, list(H36M_32_TO_17)], poses)
