"""The project's own errors: one small hierarchy, each message naming the file and the problem.

``structpose.cli.main`` turns any of these (and ``OSError``) into one line on stderr,
``structpose: error: PATH: what is wrong; what to do``, and a non-zero exit; ``--debug`` (or
``STRUCTPOSE_DEBUG=1``) shows the stack instead. Each class also derives from the built-in exception it
refines (``ValueError``, ``RuntimeError``), so callers that catch those keep working.

- :class:`FormatError` — a file that is not in the format it should be in (mocap, Human3.6M, images, npz);
- :class:`StoreError` — a dataset directory or file that is missing, incomplete, corrupt or non-finite;
- :class:`ConfigError` — a configuration, preset or override that cannot be used (also a refused resume);
- :class:`InputError` — a command-line argument or function argument that cannot be used;
- :class:`TrainingError` — a training stage that cannot go on (a non-finite loss or weights).
"""

from __future__ import annotations

from pathlib import Path


class StructposeError(Exception):
    """Base of every error structpose raises on purpose; ``path`` names the file concerned, when one is."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(f"{path}: {message}" if path is not None else message)
        self.path = None if path is None else Path(path)


class FormatError(StructposeError, ValueError):
    """A file does not hold what its documented format says."""


class StoreError(StructposeError):
    """A dataset file or directory is missing, incomplete, corrupt, non-finite or of another schema version."""


class ConfigError(StructposeError, ValueError):
    """A configuration, preset or override that cannot be used, or a run folder that refuses it."""


class InputError(StructposeError, ValueError):
    """An argument (a path, a shape, an option) that cannot be used as given."""


class TrainingError(StructposeError, RuntimeError):
    """A training stage stopped: its loss or weights became non-finite (the message names stage, step, cause)."""
