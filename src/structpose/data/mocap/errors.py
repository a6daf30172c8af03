"""The one exception type of the mocap readers."""

from __future__ import annotations

from pathlib import Path


class MocapFormatError(ValueError):
    """A motion-capture file that cannot be read; the message names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line
