"""Byte-reproducible ``.npz`` writing (fixed member order, fixed zip timestamps, no pickles)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from structpose.files import atomic_path

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (in dict order) as a deflate-compressed ``.npz`` readable by :func:`numpy.load`.

    Unlike :func:`numpy.savez_compressed`, every zip entry gets the same fixed date and permissions, so the
    same arrays always give the same bytes. Written atomically (:func:`structpose.files.atomic_path`): a
    temporary file beside ``path``, renamed into place; on any failure it is removed and ``path`` is untouched.

    Raises:
        ValueError: an array of objects (pickles are not written).
        OSError: the file cannot be written (a full disk named as such).
    """
    path = Path(path)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compresslevel=9)
    return path
