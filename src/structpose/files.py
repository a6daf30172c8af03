"""Writing files so that nothing already written is lost: a temporary file beside the target, then a rename.

:func:`atomic_path` yields a temporary path in the target's folder; when the block ends without an
exception the file is given the usual permissions (``0o666`` less the umask, as ``open`` would) and
renamed onto the target with :func:`os.replace` (atomic on POSIX). When it fails — a full disk included —
the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def disk_full_message(path: str | Path) -> str:
    """The one wording of a full disk, naming where it happened."""
    return f"{path}: no space left on the device; free some space (or write elsewhere) and run the command again"


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is a full disk: ``ENOSPC``, also where a library (h5py) only says so in its message."""
    return isinstance(err, OSError) and (err.errno == errno.ENOSPC or "No space left on device" in str(err))


def require_free_space(folder: str | Path, nbytes: int, what: str) -> None:
    """Refuse to start a write of about ``nbytes`` into ``folder`` when the disk cannot hold it (with a 5%
    margin): some writers (HDF5) cannot recover from a full disk half-way through.

    Raises:
        OSError: ``ENOSPC``, naming ``folder``, what needs the space, how much is needed and how much is free.
    """
    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path.cwd())
    free = shutil.disk_usage(probe).free
    if free < 1.05 * nbytes:
        raise OSError(errno.ENOSPC, f"{folder}: {what} needs about {nbytes / 2**20:.0f} MiB but only "
                                    f"{free / 2**20:.0f} MiB are free; free some space or write elsewhere")  # fmt: skip


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it becomes ``path`` (mode ``0o666 & ~umask``).

    Raises:
        OSError: as raised by the writer; a full disk (``ENOSPC``) is re-raised with a message that names
            ``path`` and says what to do. The temporary file is removed in every failing case.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        if is_disk_full(err):
            raise OSError(errno.ENOSPC, disk_full_message(path)) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
