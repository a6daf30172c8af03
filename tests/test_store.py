"""The HDF5 dataset store (writer, reader, shards) and PoseImageDataset."""

from __future__ import annotations

import json
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from structpose.data.dataset import PoseImageDataset
from structpose.data.store import (
    SCHEMA_VERSION,
    StoreError,
    StoreWriter,
    list_shards,
    open_store,
    shard_path,
)
from structpose.skeleton import H36M_JOINTS

S = 16  # image size of the test stores, px
ATTRS = {"source": "synthetic", "created_by": "test", "seed": 7, "scale": 0.5, "flip": True,
         "preset": {"name": "tiny", "sizes": [1, 2]}, "license": None}  # fmt: skip
HINT = "structpose data synth --out DIR"


def make_samples(rng: np.random.Generator, n: int, start: int = 0) -> dict:
    """``n`` random samples with every field the writer takes; ``frame`` counts from ``start``."""
    return dict(
        images=rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        poses3d=rng.normal(0, 300, (n, 17, 3)).astype(np.float32),
        joints2d=rng.uniform(0, S, (n, 17, 2)).astype(np.float32),
        intrinsics=rng.uniform(-1, 1000, (n, 9)),  # float64: the writer casts to float32
        boxes=rng.uniform(0, 1000, (n, 4)).astype(np.float32),
        root_cam=rng.normal(0, 3000, (n, 3)).astype(np.float32),
        subject=[f"S{k % 11 + 1}" for k in range(start, start + n)],
        action=["Sitting Down", "Walking", "Greeting"] * (n // 3) + ["Ümlaut ✓"] * (n % 3),
        sequence=[f"seq {k // 5}" for k in range(start, start + n)],
        frame=np.arange(start, start + n),
        camera_id=np.array(["54138969", "55011271"])[np.arange(n) % 2],
    )


def concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


def write_store(path, samples: dict, chunk: int = 4, attrs: dict | None = None):
    with StoreWriter(path, S, attrs=ATTRS if attrs is None else attrs, chunk=chunk) as w:
        w.append(**samples)
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_round_trip_of_every_field(tmp_path, rng):
    parts = [make_samples(rng, n, start) for n, start in ((3, 0), (5, 3), (0, 8), (2, 8))]
    path = tmp_path / "train.h5"
    with StoreWriter(path, S, attrs=ATTRS, chunk=4) as w:
        for p in parts:
            w.append(**p)
        assert len(w) == 10
    assert not (tmp_path / "train.h5.tmp").exists()
    want = concat(parts)
    with open_store(path) as store:
        assert len(store) == 10 and store.image_size == S and store.path == path
        assert store.attrs == ATTRS
        for name in ("poses3d", "joints2d", "intrinsics", "boxes", "root_cam"):
            got = getattr(store, name)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want[name].astype(np.float32))
        np.testing.assert_array_equal(store.frame, want["frame"])
        for name in ("subject", "action", "sequence", "camera_id"):
            assert getattr(store, name).tolist() == want[name].tolist()
        np.testing.assert_array_equal(store.images(slice(None)), want["images"])
        np.testing.assert_array_equal(store.images(7), want["images"][7])
        idx = np.array([0, 2, 3, 4, 9])
        np.testing.assert_array_equal(store.images(idx), want["images"][idx])
        with pytest.raises(ValueError, match="increasing"):
            store.images(np.array([3, 1]))
    with h5py.File(path) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION and bool(f.attrs["complete"])
        assert f.attrs["num_samples"] == 10
        assert f["images"].chunks == (4, S, S, 3) and f["images"].compression is None
        assert tuple(json.loads(f.attrs["joint_names"])) == H36M_JOINTS


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("images", np.zeros((4, S, S, 3), np.float32), "uint8"),
        ("images", np.zeros((4, S + 1, S, 3), np.uint8), "shape"),
        ("poses3d", np.zeros((4, 16, 3), np.float32), "shape"),
        ("root_cam", np.full((4, 3), np.nan, np.float32), "non-finite"),
        ("frame", np.zeros(4, np.float32), "integer"),
        ("action", ["a", "b"], "expected 4 strings"),
        ("subject", ["S1", "S1", 3, "S1"], "str"),
    ],
)
def test_append_rejects_bad_input(tmp_path, rng, field, value, message):
    samples = make_samples(rng, 4) | {field: value}
    with pytest.raises(ValueError, match=message), StoreWriter(tmp_path / "x.h5", S) as w:
        w.append(**samples)
    assert list(tmp_path.iterdir()) == []


def test_reserved_and_unserialisable_attrs_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        StoreWriter(tmp_path / "x.h5", S, attrs={"complete": True})
    with pytest.raises(ValueError, match="JSON"):
        StoreWriter(tmp_path / "x.h5", S, attrs={"obj": object()})
    assert list(tmp_path.iterdir()) == []


def assert_refused(path, *fragments: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(path)
    message = str(info.value)
    assert str(path) in message and HINT in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_truncated_file_is_refused(tmp_path, rng):
    good = write_store(tmp_path / "good.h5", make_samples(rng, 12))
    bad = tmp_path / "bad.h5"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    assert_refused(bad, "truncated")
    bad.write_bytes(data[:100])
    assert_refused(bad)


def test_incomplete_and_leftover_tmp_files_are_refused(tmp_path, rng):
    path = tmp_path / "train.h5"
    w = StoreWriter(path, S, chunk=4)
    w.append(**make_samples(rng, 8))  # two full chunks: flushed into train.h5.tmp
    w._file.flush()
    assert not path.exists()
    assert_refused(path, "no such file", "interrupted write")
    shutil.copy(tmp_path / "train.h5.tmp", tmp_path / "copy.h5")
    shutil.copy(tmp_path / "train.h5.tmp", tmp_path / "copy.h5.tmp")
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.h5", "copy.h5.tmp"]
    assert_refused(tmp_path / "copy.h5", "incomplete")
    assert_refused(tmp_path / "copy.h5.tmp", "leftover temporary file")


def test_wrong_schema_version_is_refused(tmp_path, rng):
    path = write_store(tmp_path / "train.h5", make_samples(rng, 4))
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    assert_refused(path, "schema version")


def test_missing_dataset_is_refused(tmp_path, rng):
    path = write_store(tmp_path / "train.h5", make_samples(rng, 4))
    with h5py.File(path, "r+") as f:
        del f["boxes"]
    assert_refused(path, "missing datasets ['boxes']")


def test_exception_in_writer_leaves_existing_file_intact(tmp_path, rng):
    path = write_store(tmp_path / "train.h5", make_samples(rng, 5))
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"), StoreWriter(path, S, chunk=2) as w:
        w.append(**make_samples(rng, 9))
        assert (tmp_path / "train.h5.tmp").exists()
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.h5"]
    assert path.read_bytes() == before
    with open_store(path) as store:
        assert len(store) == 5

    fresh = tmp_path / "fresh.h5"
    with pytest.raises(RuntimeError), StoreWriter(fresh, S) as w:
        raise RuntimeError
    assert not fresh.exists() and not (tmp_path / "fresh.h5.tmp").exists()

    new = make_samples(rng, 3)
    write_store(path, new)  # a successful write replaces the old file
    with open_store(path) as store:
        np.testing.assert_array_equal(store.images(slice(None)), new["images"])


def test_shard_paths_and_listing(tmp_path, rng):
    assert shard_path(tmp_path, "val") == tmp_path / "val.h5"
    assert shard_path(tmp_path, "train", 2, 4) == tmp_path / "train-00002-of-00004.h5"
    with pytest.raises(ValueError):
        shard_path(tmp_path, "train", 4, 4)
    write_store(shard_path(tmp_path, "val"), make_samples(rng, 2))
    assert list_shards(tmp_path, "val") == [tmp_path / "val.h5"]
    for i in (3, 0, 2):
        write_store(shard_path(tmp_path, "train", i, 4), make_samples(rng, 2))
    with pytest.raises(StoreError, match=r"1 of 4 shards .*train-00001-of-00004\.h5") as info:
        list_shards(tmp_path, "train")
    assert str(tmp_path) in str(info.value) and HINT in str(info.value)
    write_store(shard_path(tmp_path, "train", 1, 4), make_samples(rng, 2))
    assert list_shards(tmp_path, "train") == [shard_path(tmp_path, "train", i, 4) for i in range(4)]
    with pytest.raises(StoreError, match="no store for split 'test'"):
        list_shards(tmp_path, "test")
    with pytest.raises(StoreError, match="no such dataset directory"):
        list_shards(tmp_path / "nowhere", "train")
    write_store(shard_path(tmp_path, "train"), make_samples(rng, 2))
    with pytest.raises(StoreError, match="both"):
        list_shards(tmp_path, "train")


@pytest.fixture
def sharded(tmp_path, rng) -> tuple:
    """A dataset directory with a 3-shard train split of 7 + 5 + 9 samples, and the samples written."""
    parts, start = [], 0
    for i, n in enumerate((7, 5, 9)):
        parts.append(make_samples(rng, n, start))
        write_store(shard_path(tmp_path, "train", i, 3), parts[-1], attrs={"source": "synthetic", "shard": i})
        start += n
    return tmp_path, concat(parts)


def test_dataset_items_match_the_store(sharded):
    root, want = sharded
    ds = PoseImageDataset(root, "train")
    assert len(ds) == 21 and ds.image_size == S
    assert [a["shard"] for a in ds.shard_attrs] == [0, 1, 2]
    for i in (0, 6, 7, 12, 20, -1):
        item = ds[i]
        j = i % 21
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, S, S)
        np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy(), want["images"][j])
        np.testing.assert_array_equal(item["pose3d"].numpy(), want["poses3d"][j])
        np.testing.assert_array_equal(item["joints2d"].numpy(), want["joints2d"][j])
        np.testing.assert_array_equal(item["intrinsics"].numpy(), want["intrinsics"][j].astype(np.float32))
        assert item["index"].dtype == torch.int64 and item["index"].ndim == 0 and int(item["index"]) == j
    with pytest.raises(IndexError):
        ds[21]
    assert ds.action.tolist() == want["action"].tolist() and ds.subject.tolist() == want["subject"].tolist()


def test_dataset_subset_orders_metadata_and_items(sharded):
    root, want = sharded
    subset = np.array([20, 3, 8, 8, 0])
    ds = PoseImageDataset(list_shards(root, "train"), indices=subset)
    assert len(ds) == 5
    np.testing.assert_array_equal(ds.poses3d, want["poses3d"][subset])
    assert ds.sequence.tolist() == want["sequence"][subset].tolist()
    np.testing.assert_array_equal(ds.frame, subset)
    for i, j in enumerate(subset):
        np.testing.assert_array_equal(ds[i]["image"].permute(1, 2, 0).numpy(), want["images"][j])
        assert int(ds[i]["index"]) == i
    with pytest.raises(IndexError):
        PoseImageDataset(root, "train", indices=np.array([21]))


def test_getitems_equals_per_item_reads(sharded):
    root, _ = sharded
    ds = PoseImageDataset(root, "train")
    indices = [19, 2, 7, 3, 3, 11, 0, 20, 8, 2]  # unsorted, repeated, across all shards
    batch = ds.__getitems__(indices)
    assert len(batch) == len(indices)
    for i, got in zip(indices, batch, strict=True):
        want = ds[i]
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), key
    sub = ds.subset(indices)  # a view on the same samples, metadata included
    np.testing.assert_array_equal(sub.poses3d, ds.poses3d[indices])
    assert torch.equal(sub[4]["image"], ds[indices[4]]["image"]) and len(sub) == len(indices)
    hwc = ds.images(indices)  # the same crops as an HWC uint8 array, in the given order
    assert hwc.shape == (len(indices), ds.image_size, ds.image_size, 3) and hwc.dtype == np.uint8
    np.testing.assert_array_equal(hwc, np.stack([b["image"].numpy().transpose(1, 2, 0) for b in batch]))


def collect(loader: DataLoader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    assert all(len(b["index"]) == 8 for b in batches[:-1])
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def test_dataloader_reads_agree_across_worker_counts(sharded):
    root, want = sharded
    ds = PoseImageDataset(root, "train")
    ds[0]  # the parent holds open handles before the workers fork: they must open their own
    serial = collect(DataLoader(ds, batch_size=8, shuffle=False, num_workers=0))
    parallel = collect(DataLoader(ds, batch_size=8, shuffle=False, num_workers=2))
    for key in serial:  # bit-exact is sound: reads and copies, no arithmetic that the worker count could change
        assert torch.equal(serial[key], parallel[key]), key
    assert serial["index"].tolist() == list(range(21))
    np.testing.assert_array_equal(serial["image"].permute(0, 2, 3, 1).numpy(), want["images"])
    np.testing.assert_array_equal(serial["pose3d"].numpy(), want["poses3d"])


def test_dataset_pickles_without_file_handles(sharded):
    root, _ = sharded
    ds = PoseImageDataset(root, "train")
    first = ds[5]
    clone = pickle.loads(pickle.dumps(ds))
    assert all(torch.equal(clone[5][k], first[k]) for k in first)
    ds.close()
    assert torch.equal(ds[5]["image"], first["image"])  # reopens after close


def test_dataset_refuses_broken_shards(sharded):
    root, _ = sharded
    shard_path(root, "train", 1, 3).unlink()
    with pytest.raises(StoreError, match="1 of 3 shards"):
        PoseImageDataset(root, "train")
    with pytest.raises(ValueError, match="split"):
        PoseImageDataset(root)
