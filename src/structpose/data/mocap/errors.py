"""The one exception type of the mocap readers."""

from __future__ import annotations

from pathlib import Path

from structpose.errors import FormatError


class MocapFormatError(FormatError):
    """A motion-capture file that cannot be read; the message names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(message, where)
        self.path = Path(path)
        self.line = line
