"""Byte-reproducible ``.npz`` writing (fixed member order, fixed zip timestamps, no pickles)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (in dict order) as a deflate-compressed ``.npz`` readable by :func:`numpy.load`.

    Unlike :func:`numpy.savez_compressed`, every zip entry gets the same fixed date and permissions, so the
    same arrays always give the same bytes. The file is written to a temporary name and renamed into place.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue(), compresslevel=9)
    os.replace(tmp, path)
    return path
