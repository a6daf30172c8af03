"""Which Python runs the detector: MediaPipe 0.10.21 needs numpy < 2 and protobuf < 5, so it lives in its own
virtual environment (``make detector`` makes ``.venv-detect``) and runs as a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from structpose.errors import InputError

#: the environment variable naming the detector's Python
ENV_PYTHON = "STRUCTPOSE_DETECTOR_PYTHON"
#: the detector's virtual environment, made by ``make detector`` in the repository
VENV_DIR = ".venv-detect"

HOW_TO_GET_ONE = (
    f"run `make detector` in the structpose repository (it makes {VENV_DIR}/ with mediapipe==0.10.21), or point "
    f"${ENV_PYTHON} at a Python that has mediapipe==0.10.21 (`pip install 'structpose[detect]'` in an environment "
    "of its own: it needs numpy<2 and protobuf<5)"
)


def find_detector_python(python: str | os.PathLike | None = None) -> str:
    """The interpreter that runs the detector worker, in this order: ``python``; ``$STRUCTPOSE_DETECTOR_PYTHON``;
    ``.venv-detect/bin/python`` of the repository structpose runs from, then of the current directory; this
    interpreter, when ``mediapipe`` is importable in it.

    Raises:
        InputError: ``python`` or the variable names no executable, or none is found (saying how to get one).
    """
    if python is not None:
        return _executable(python, "the detector python")
    if os.environ.get(ENV_PYTHON):
        return _executable(os.environ[ENV_PYTHON], f"${ENV_PYTHON}")
    for candidate in venv_candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if mediapipe_here():
        return sys.executable
    raise InputError(f"no detector python found; {HOW_TO_GET_ONE}")


def venv_candidates() -> list[Path]:
    """``<repository>/.venv-detect/bin/python`` (when structpose runs from a checkout), ``./.venv-detect/...``."""
    repo = Path(__file__).resolve().parents[3]
    roots = [repo] if (repo / "pyproject.toml").is_file() else []
    return [root / VENV_DIR / "bin" / "python" for root in (*roots, Path.cwd())]


def mediapipe_here() -> bool:
    """Whether ``mediapipe`` can be imported by this interpreter (without importing it)."""
    return importlib.util.find_spec("mediapipe") is not None


def _executable(python: str | os.PathLike, what: str) -> str:
    path = Path(python)
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    found = shutil.which(str(python)) if path.name == str(python) else None
    if found is None:
        raise InputError(f"{what} {str(python)!r} is not an executable file; {HOW_TO_GET_ONE}")
    return found
