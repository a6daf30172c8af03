"""Bad input never costs code execution: crafted pickles are refused before any of their code runs."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from structpose.data.h36m import H36MFormatError
from structpose.data.h36m_poses import import_h36m_poses, read_pickled_positions
from structpose.errors import FormatError


class _Plant:
    """Unpickling this would create ``self.target`` (through os.system)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _npz_with_object_member(path: Path, payload: object) -> Path:
    """An npz whose ``positions_3d.npy`` is a numpy object-array header followed by ``pickle(payload)``."""
    raw = io.BytesIO()
    np.lib.format.write_array_header_1_0(raw, {"descr": "|O", "fortran_order": False, "shape": ()})
    raw.write(pickle.dumps(payload, protocol=3))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("positions_3d.npy", raw.getvalue())
    return path


def test_a_planted_pickle_in_a_poses_npz_runs_no_code(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    src = _npz_with_object_member(tmp_path / "data_3d_h36m.npz", {"S1": _Plant(target)})
    with pytest.raises(FormatError, match="data_3d_h36m.npz.*posix.system|system"):
        import_h36m_poses(src, tmp_path / "out.npz")
    assert not target.exists() and not (tmp_path / "out.npz").exists()


def test_the_community_npz_is_still_read_without_allow_pickle(tmp_path: Path) -> None:
    poses = {"S1": {"Walking 1": np.zeros((3, 32, 3)), "Eating": np.ones((2, 32, 3))}, "S9": {}}
    path = tmp_path / "d.npz"
    np.savez(path, positions_3d=poses)  # how VideoPose3D wrote it (an object array, pickled)
    got = read_pickled_positions(path)
    assert set(got) == {"S1", "S9"} and got["S1"]["Eating"].shape == (2, 32, 3)
    np.testing.assert_array_equal(got["S1"]["Eating"], 1.0)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04broken", b"not a zip at all"])
def test_a_broken_poses_npz_is_a_format_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(H36MFormatError, match="bad.npz"):
        read_pickled_positions(path)


def test_no_module_loads_with_allow_pickle() -> None:
    src = Path(__file__).parents[1] / "src" / "structpose"
    offenders = [str(p) for p in src.rglob("*.py") if "allow_pickle=True" in p.read_text()]
    assert offenders == []


def test_a_planted_checkpoint_is_not_unpickled_on_resume(tmp_path: Path) -> None:
    import torch

    from structpose.train.engine import LAST, readable_checkpoint

    target = tmp_path / "pwned"
    last = tmp_path / "stage" / LAST
    last.parent.mkdir()
    torch.save({"state_dict": {}, "payload": _Plant(target)}, last)  # a checkpoint that would run code
    with pytest.warns(UserWarning, match="damaged or unsafe checkpoint"):
        assert not readable_checkpoint(last)  # weights_only=True refuses it: the stage starts afresh
    assert not target.exists() and (tmp_path / "stage" / f"{LAST}.damaged").is_file()
