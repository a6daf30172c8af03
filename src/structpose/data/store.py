"""The on-disk dataset format: one HDF5 file per split (or per shard), written atomically, read lazily.

A dataset is a directory holding ``{split}.h5`` or shards ``{split}-00000-of-00004.h5`` ... (see
:func:`shard_path` and :func:`list_shards`). Each file holds ``N`` samples::

    images      (N, S, S, 3) uint8     person-centred crops, RGB; chunked (chunk, S, S, 3), uncompressed
    poses3d     (N, 17, 3)   float32   mm, root-relative, camera frame (joint order: structpose.skeleton.H36M)
    joints2d    (N, 17, 2)   float32   crop pixels
    intrinsics  (N, 9)       float32   [fx, fy, cx, cy, k1, k2, k3, p1, p2] of the full image, px
    boxes       (N, 4)       float32   crop box [x0, y0, x1, y1] in full-image px
    root_cam    (N, 3)       float32   mm, root joint position in the camera frame
    frame       (N,)         int64     frame number in its sequence
    subject, action, sequence, camera_id  (N,)  variable-length UTF-8 strings

File attributes: ``schema_version``, ``complete`` (True only once :meth:`StoreWriter.close` succeeded),
``image_size``, ``num_samples``, ``joint_names``, ``structpose_version``, and the caller's provenance
attributes (``source``, ``created_by``, ``preset``, ``split``, ``license``, ...). Provenance values must
be JSON-serialisable: str/int/float/bool are stored as native HDF5 attributes, anything else (dicts,
lists, None) as a JSON string whose key is listed in the ``json_attrs`` attribute.

Images are stored uncompressed: a random sample is then read straight from the file without
decompressing a whole chunk (see ``benches/bench_store.py``).
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from structpose import __version__
from structpose.errors import StoreError
from structpose.files import disk_full_message, is_disk_full
from structpose.skeleton import H36M_JOINTS, NUM_JOINTS

SCHEMA_VERSION: int = 1

REBUILD_HINT = (
    "rebuild it: re-run `structpose data synth --out DIR` (synthetic data) or `structpose data h36m ...` (Human3.6M)"
)

#: name -> per-sample shape (S = image size) and on-disk dtype of the numeric datasets.
_NUMERIC: dict[str, tuple[tuple[int | str, ...], np.dtype]] = {
    "images": (("S", "S", 3), np.dtype(np.uint8)),
    "poses3d": ((NUM_JOINTS, 3), np.dtype(np.float32)),
    "joints2d": ((NUM_JOINTS, 2), np.dtype(np.float32)),
    "intrinsics": ((9,), np.dtype(np.float32)),
    "boxes": ((4,), np.dtype(np.float32)),
    "root_cam": ((3,), np.dtype(np.float32)),
    "frame": ((), np.dtype(np.int64)),
}
_STRINGS: tuple[str, ...] = ("subject", "action", "sequence", "camera_id")
_FIELDS: tuple[str, ...] = (*_NUMERIC, *_STRINGS)
#: The per-sample fields other than the images (small: readers load them eagerly).
META_FIELDS: tuple[str, ...] = tuple(f for f in _FIELDS if f != "images")
_RESERVED_ATTRS: frozenset[str] = frozenset(
    {"schema_version", "complete", "image_size", "num_samples", "joint_names", "structpose_version", "json_attrs"}
)
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<shard>\d{5})-of-(?P<total>\d{5})\.h5$")


def _error(path: Path, problem: str) -> StoreError:
    return StoreError(f"{path}: {problem}; {REBUILD_HINT}")


def _tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


# ---- writing ------------------------------------------------------------------------------------
def _encode_attrs(attrs: dict) -> tuple[dict, list[str]]:
    """Provenance attrs -> (HDF5-storable attrs, keys stored as JSON strings)."""
    out: dict = {}
    json_keys: list[str] = []
    for key, value in attrs.items():
        if key in _RESERVED_ATTRS:
            raise ValueError(f"attribute {key!r} is reserved by the store format")
        if isinstance(value, np.generic):
            value = value.item()
        try:
            text = json.dumps(value)
        except TypeError as e:
            raise ValueError(f"attribute {key!r} must be JSON-serialisable: {e}") from None
        if isinstance(value, (str, bool, int, float)):
            out[key] = value
        else:
            out[key] = text
            json_keys.append(key)
    return out, json_keys


def estimated_bytes(num_samples: int, image_size: int) -> int:
    """About how many bytes a store of ``num_samples`` crops of ``image_size`` px takes on disk (images are
    uncompressed; ~0.5 KiB of poses, cameras and strings per sample)."""
    return num_samples * (3 * image_size**2 + 512)


class StoreWriter:
    """Streams samples into one store file; the file appears at ``path`` only when :meth:`close` succeeds.

    Writes go to ``path + ".tmp"`` in the same folder; :meth:`close` marks it complete and renames it onto
    ``path`` with :func:`os.replace` (atomic), so an existing file at ``path`` is untouched until then.
    As a context manager, an exception removes the temporary file and leaves ``path`` as it was.
    Samples are buffered ``chunk`` at a time: memory use does not grow with the size of the set.
    """

    def __init__(self, path: str | Path, image_size: int, attrs: dict | None = None, chunk: int = 64) -> None:
        if image_size <= 0 or chunk <= 0:
            raise ValueError(f"image_size and chunk must be positive, got {image_size} and {chunk}")
        self.path = Path(path)
        self.image_size = int(image_size)
        self.chunk = int(chunk)
        attrs_h5, json_keys = _encode_attrs(dict(attrs or {}))
        self._tmp = _tmp_path(self.path)
        self._num = 0  # samples written to the file
        self._buffer: list[dict[str, np.ndarray]] = []
        self._buffered = 0
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self._tmp, "w")
        try:
            self._create(attrs_h5, json_keys)
        except BaseException:
            self.abort()
            raise

    def _create(self, attrs_h5: dict, json_keys: list[str]) -> None:
        f, S = self._file, self.image_size
        for name, (shape, dtype) in _NUMERIC.items():
            shape = tuple(S if d == "S" else d for d in shape)
            rows = self.chunk if name == "images" else max(self.chunk, 4096)
            f.create_dataset(name, (0, *shape), dtype=dtype, maxshape=(None, *shape), chunks=(rows, *shape))
        for name in _STRINGS:
            f.create_dataset(name, (0,), dtype=h5py.string_dtype("utf-8"), maxshape=(None,), chunks=(4096,))
        f.attrs.update(attrs_h5)
        f.attrs["json_attrs"] = json.dumps(json_keys)
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["complete"] = False
        f.attrs["image_size"] = S
        f.attrs["num_samples"] = 0
        f.attrs["joint_names"] = json.dumps(list(H36M_JOINTS))
        f.attrs["structpose_version"] = __version__

    def __len__(self) -> int:
        """Samples appended so far."""
        return self._num + self._buffered

    def append(
        self,
        *,
        images: np.ndarray,
        poses3d: np.ndarray,
        joints2d: np.ndarray,
        intrinsics: np.ndarray,
        boxes: np.ndarray,
        root_cam: np.ndarray,
        subject: Sequence[str],
        action: Sequence[str],
        sequence: Sequence[str],
        frame: np.ndarray,
        camera_id: Sequence[str],
    ) -> None:
        """Append ``n`` samples (shapes and units in the module docstring).

        Numeric inputs of another real dtype are cast (floats to float32, ``frame`` must be integer);
        ``images`` must be uint8. Raises ``ValueError`` on a wrong shape or dtype, a length mismatch, or a
        non-finite value.
        """
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        given = dict(images=images, poses3d=poses3d, joints2d=joints2d, intrinsics=intrinsics, boxes=boxes,
                     root_cam=root_cam, frame=frame, subject=subject, action=action, sequence=sequence,
                     camera_id=camera_id)  # fmt: skip
        n = len(given["images"])
        batch = {name: self._check_numeric(name, given[name], n) for name in _NUMERIC}
        batch.update({name: self._check_strings(name, given[name], n) for name in _STRINGS})
        if n == 0:
            return
        self._buffer.append(batch)
        self._buffered += n
        if self._buffered >= self.chunk:
            self._flush()

    def _check_numeric(self, name: str, value: np.ndarray, n: int) -> np.ndarray:
        shape, dtype = _NUMERIC[name]
        shape = (n, *(self.image_size if d == "S" else d for d in shape))
        a = np.asarray(value)
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
        if name == "images":
            if a.dtype != np.uint8:
                raise ValueError(f"images: expected dtype uint8, got {a.dtype}")
            return a
        if name == "frame":
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"frame: expected an integer dtype, got {a.dtype}")
            return a.astype(dtype)
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{name}: expected a real numeric dtype, got {a.dtype}")
        a = a.astype(dtype)
        if not np.isfinite(a).all():
            bad = np.unique(np.nonzero(~np.isfinite(a.reshape(n, -1)))[0])
            raise ValueError(f"{name}: non-finite values (NaN/inf) in samples {bad[:10].tolist()} of this batch")
        return a

    @staticmethod
    def _check_strings(name: str, value: Sequence[str], n: int) -> np.ndarray:
        values = list(np.asarray(value, dtype=object).reshape(-1)) if isinstance(value, np.ndarray) else list(value)
        if len(values) != n:
            raise ValueError(f"{name}: expected {n} strings, got {len(values)}")
        bad = [v for v in values if not isinstance(v, str)]
        if bad:
            raise ValueError(f"{name}: expected str values, got {type(bad[0]).__name__} ({bad[0]!r})")
        return np.array(values, dtype=object)

    def _flush(self) -> None:
        try:
            self._write_buffer()
        except OSError as err:
            if is_disk_full(err):
                raise OSError(errno.ENOSPC, disk_full_message(self.path)) from err
            raise

    def _write_buffer(self) -> None:
        if not self._buffer:
            return
        start, stop = self._num, self._num + self._buffered
        for name in _FIELDS:
            ds = self._file[name]
            ds.resize(stop, axis=0)
            ds[start:stop] = np.concatenate([b[name] for b in self._buffer])
        self._num, self._buffer, self._buffered = stop, [], 0

    def close(self) -> Path:
        """Flush, mark the file complete and atomically move it to ``path``; returns ``path``."""
        if self._closed:
            raise ValueError(f"{self.path}: writer is already closed")
        try:
            self._flush()
            self._file.attrs["num_samples"] = self._num
            self._file.attrs["complete"] = True
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Discard everything written: close and delete the temporary file; ``path`` is left untouched."""
        self._closed = True
        if self._file.id.valid:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


# ---- reading ------------------------------------------------------------------------------------
def open_h5(path: str | Path) -> h5py.File:
    """Open a store file read-only without a chunk cache: images are uncompressed, so HDF5 then reads
    exactly the requested rows from disk instead of whole (chunk, S, S, 3) chunks."""
    return h5py.File(path, "r", rdcc_nbytes=0)


def read_rows(ds: h5py.Dataset, index: np.ndarray) -> np.ndarray:
    """Rows ``ds[index]`` for a strictly increasing int array ``index`` (n,) -> (n, *ds.shape[1:]).

    One read per run of consecutive rows: HDF5's union-of-hyperslabs selection (h5py's ``ds[index]``) is
    about 100x slower on scattered rows (~0.4 s vs ~2 ms for 128 random 128x128 images).
    """
    out = np.empty((len(index), *ds.shape[1:]), dtype=ds.dtype)
    starts = np.flatnonzero(np.diff(index, prepend=-2) != 1)  # first position of each run
    for lo, hi in zip(starts, [*starts[1:], len(index)], strict=True):
        out[lo:hi] = ds[index[lo] : index[lo] + hi - lo]
    return out


def _decode_attrs(raw: h5py.AttributeManager) -> dict:
    json_keys = set(json.loads(raw["json_attrs"]))
    out = {}
    for key, value in raw.items():
        if key in _RESERVED_ATTRS:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = json.loads(value) if key in json_keys else value
    return out


class StoreReader:
    """One store file, opened by :func:`open_store`. Metadata arrays are loaded eagerly, images lazily.

    Attributes: ``path``; ``image_size`` (S, px); ``attrs`` (the writer's provenance attributes);
    ``poses3d`` (N, 17, 3), ``joints2d`` (N, 17, 2), ``intrinsics`` (N, 9), ``boxes`` (N, 4),
    ``root_cam`` (N, 3) float32; ``frame`` (N,) int64; ``subject``, ``action``, ``sequence``,
    ``camera_id`` (N,) numpy unicode arrays.
    """

    def __init__(self, path: Path, file: h5py.File) -> None:
        self.path = path
        self._file = file
        self._images = file["images"]
        self.image_size = int(file.attrs["image_size"])
        self.attrs = _decode_attrs(file.attrs)
        self.poses3d: np.ndarray = file["poses3d"][:]
        self.joints2d: np.ndarray = file["joints2d"][:]
        self.intrinsics: np.ndarray = file["intrinsics"][:]
        self.boxes: np.ndarray = file["boxes"][:]
        self.root_cam: np.ndarray = file["root_cam"][:]
        self.frame: np.ndarray = file["frame"][:]
        self.subject, self.action, self.sequence, self.camera_id = (
            np.asarray(file[name].asstr()[:], dtype=str) for name in _STRINGS
        )

    def __len__(self) -> int:
        return self._images.shape[0]

    def images(self, index: int | slice | np.ndarray) -> np.ndarray:
        """Read images: an int gives (S, S, 3) uint8; a slice or strictly increasing int array (n, S, S, 3)."""
        if isinstance(index, (int, np.integer, slice)):
            return self._images[index]
        index = np.asarray(index, dtype=np.int64)
        if index.ndim != 1 or np.any(np.diff(index) <= 0):
            raise ValueError("image index arrays must be 1-D and strictly increasing")
        if index.size and (index[0] < 0 or index[-1] >= len(self)):
            raise IndexError(f"image indices must lie in [0, {len(self)}), got [{index[0]}, {index[-1]}]")
        return read_rows(self._images, index)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def _validate(path: Path, f: h5py.File) -> None:
    a = f.attrs
    if "schema_version" not in a or "complete" not in a:
        raise _error(path, "not a structpose store (no schema_version/complete attributes)")
    if int(a["schema_version"]) != SCHEMA_VERSION:
        raise _error(path, f"schema version {int(a['schema_version'])}, this structpose reads {SCHEMA_VERSION}")
    if not bool(a["complete"]):
        raise _error(path, "incomplete file (its writer never finished: interrupted or crashed)")
    missing = [name for name in _FIELDS if name not in f]
    if missing:
        raise _error(path, f"missing datasets {missing}")
    if json.loads(a["joint_names"]) != list(H36M_JOINTS):
        raise _error(path, "joint order differs from structpose.skeleton.H36M")
    n, S = int(a["num_samples"]), int(a["image_size"])
    if f["images"].shape[1:] != (S, S, 3):
        raise _error(path, f"images have shape {f['images'].shape}, expected (N, {S}, {S}, 3)")
    bad = {name: f[name].shape[0] for name in _FIELDS if f[name].shape[0] != n}
    if bad:
        raise _error(path, f"datasets {bad} do not hold num_samples={n} rows")


def _check_finite(reader: StoreReader) -> StoreReader:
    """``reader``, or a :class:`StoreError` if a float field it loaded (all but the images) holds NaN/inf."""
    for name, (_, dtype) in _NUMERIC.items():
        if name == "images" or dtype.kind != "f":
            continue
        values = getattr(reader, name)
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
        if bad.size:
            raise _error(reader.path, f"{name} holds non-finite values (NaN/inf), first in sample {int(bad[0])}")
    return reader


def open_store(path: str | Path) -> StoreReader:
    """Open and validate one store file; raises :class:`StoreError` naming the file and how to rebuild it."""
    path = Path(path)
    if path.name.endswith(".tmp"):
        raise _error(path, "leftover temporary file of an interrupted write, not a finished store")
    if not path.is_file():
        tmp = " (an interrupted write left a .tmp file beside it)" if _tmp_path(path).exists() else ""
        raise _error(path, f"no such file{tmp}")
    try:
        f = open_h5(path)
    except OSError as e:
        raise _error(path, f"unreadable or truncated HDF5 file ({e})") from None
    try:
        _validate(path, f)
        return _check_finite(StoreReader(path, f))  # on the metadata the reader loads anyway: no second read
    except StoreError:
        f.close()
        raise
    except (OSError, KeyError, ValueError) as e:
        f.close()
        raise _error(path, f"corrupt store ({type(e).__name__}: {e})") from None


# ---- directories and shards ---------------------------------------------------------------------
def shard_path(root: str | Path, split: str, shard: int = 0, num_shards: int = 1) -> Path:
    """Where shard ``shard`` of ``num_shards`` of ``split`` lives: ``{split}.h5`` or ``{split}-00000-of-00004.h5``."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} out of range for {num_shards} shards")
    name = f"{split}.h5" if num_shards == 1 else f"{split}-{shard:05d}-of-{num_shards:05d}.h5"
    return Path(root) / name


def list_shards(root: str | Path, split: str) -> list[Path]:
    """The sorted store files of ``split`` in dataset directory ``root``; raises :class:`StoreError` if the
    directory has none, a mix of layouts, or an incomplete set of shards."""
    root = Path(root)
    if not root.is_dir():
        raise _error(root, "no such dataset directory")
    single = shard_path(root, split)
    shards: dict[int, set[int]] = {}  # total -> shard numbers present
    for p in root.iterdir():
        m = _SHARD_RE.match(p.name)
        if m and m["split"] == split:
            shards.setdefault(int(m["total"]), set()).add(int(m["shard"]))
    if single.is_file():
        if shards:
            raise _error(root, f"holds both {single.name} and sharded files of split {split!r}")
        return [single]
    if not shards:
        found = sorted(p.name for p in root.glob("*.h5"))
        raise _error(root, f"no store for split {split!r} (expected {single.name} or shards "
                           f"{split}-00000-of-NNNNN.h5; found {found or 'no .h5 files'})")  # fmt: skip
    if len(shards) > 1:
        raise _error(root, f"shards of split {split!r} disagree on their count: {sorted(shards)}")
    ((total, present),) = shards.items()
    missing = sorted(set(range(total)) - present)
    if missing:
        names = [shard_path(root, split, i, total).name for i in missing[:5]]
        raise _error(root, f"{len(missing)} of {total} shards of split {split!r} are missing: {names}")
    return [shard_path(root, split, i, total) for i in range(total)]
