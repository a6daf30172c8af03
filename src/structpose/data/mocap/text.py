"""Reading the mocap text formats (BVH, ASF, AMC, exp-map takes): UTF-8 only, decoding errors name file and line.

The formats are ASCII in practice (all 320 files of the shared data are); a file that is not valid UTF-8 is
refused with a :class:`MocapFormatError` rather than guessed at (a latin-1 fallback would silently turn a
damaged byte into a different joint name or number). A leading UTF-8 byte-order mark is ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from structpose.data.mocap.errors import MocapFormatError


def read_lines(path: Path) -> list[str]:
    """The lines of the UTF-8 text file ``path`` (as :meth:`str.splitlines` splits them).

    Raises:
        MocapFormatError: the file is not UTF-8; names the line and the byte.
        OSError: the file cannot be read.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        prefix = data[: err.start].decode("utf-8-sig")
        line = len((prefix + "x").splitlines())
        raise MocapFormatError(
            path,
            f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); the reader takes UTF-8/ASCII "
            "files only: convert it (e.g. `iconv -f latin1 -t utf-8`) or restore the original file",
            line,
        ) from None
    return text.splitlines()


def finite_numbers(path: Path, tokens: list[str], line: int, what: str) -> np.ndarray:
    """``tokens`` as a float64 array (len(tokens),); text, NaN or inf raise MocapFormatError naming ``what``."""
    values = np.empty(len(tokens))
    for k, token in enumerate(tokens):
        try:
            values[k] = float(token)
        except ValueError:
            raise MocapFormatError(path, f"{what}: non-numeric value {token!r}", line) from None
        if not np.isfinite(values[k]):
            raise MocapFormatError(path, f"{what}: non-finite number {token!r} (NaN or inf)", line)
    return values
