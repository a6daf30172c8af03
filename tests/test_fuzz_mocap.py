"""Fuzzing the BVH, ASF and AMC readers: small valid files, randomly damaged, must either read into finite
arrays of the declared shapes or raise :class:`MocapFormatError` naming the file -- no other exception, no hang.

Damage, in two kinds so that one cannot hide the other: *text* -- dropped / doubled lines, extra or missing
values on a line, tokens replaced by NaN / inf / huge / text / keywords / other counts (so CHANNELS,
``Frames:``, frame numbers and dof lists get wrong counts too); *bytes* -- flips, insertions, truncation
(often no longer UTF-8). Derandomised, no example database: the same examples run every time, in a few
seconds.
"""

from __future__ import annotations

import contextlib
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_asf_amc import ASF

from structpose.data.mocap.asf_amc import load_asf_amc
from structpose.data.mocap.bvh import load_bvh, read_bvh
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.kinematics import MocapClip

T = TypeVar("T")
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=100)
HANG_S = 2.0

BVH = """HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT leg
  {
    OFFSET 0 -10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 -5 0
    }
  }
  JOINT spine
  {
    OFFSET 0 12.5 -1
    CHANNELS 1 Xrotation
    End Site
    {
      OFFSET 0 4 0
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0083333
0 90 0 0 0 0 10 -20 30 5
1 90 0.5 5 0 0 12 -18 30 6
2 90 1 10 0 0 14 -16 30 7
"""

# the ASF fixture of test_asf_amc (two bones, one of each axis kind)

AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 0 0 0 0 0 0
a 0 0 0
b 0
2
root 1 0 0 0 0 90
a 10 0 0
b 90
"""

#: Non-finite numbers (and ones that overflow to inf when parsed).
NONFINITE = ("nan", "NaN", "-nan", "inf", "-inf", "+Infinity", "1e999", "-1e400")

#: Replacement tokens: non-finite and extreme numbers, text, counts, and the formats' own keywords.
NASTY = (
    "nan", "NaN", "inf", "-inf", "+Infinity", "1e999", "-1e308", "1e308", "4.9e-324", "1e-400", "-0", "0", "-1",
    "99999999", "x", "-", "0x10", "\u00b2", "\uff11", "{", "}", "ROOT", "JOINT", "End", "Site", "MOTION", "Frames:",
    "CHANNELS", "OFFSET", "Xposition", "Wrotation", "begin", "end", ":root", ":bonedata", "root", "a", "b", "rx", "tx",
    "R", "RW", "XYZ", "XYW", "X", "dof", "axis", "direction", "length",
)  # fmt: skip


@st.composite
def damaged_text(draw: st.DrawFn, text: str) -> bytes:
    """``text`` with 1-3 line-level damages (tokens, values, lines), still UTF-8, as bytes."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        lines = draw(_line_damage(lines))
    return ("\n".join(lines) + "\n").encode("utf-8")


@st.composite
def damaged_bytes(draw: st.DrawFn, text: str) -> bytes:
    """``text`` as bytes with 1-3 byte-level damages (flips, insertions, truncation; may break the UTF-8)."""
    data = text.encode("utf-8")
    for _ in range(draw(st.integers(1, 3))):
        data = draw(_byte_damage(data))
    return data


DAMAGE = pytest.mark.parametrize("damage", [damaged_text, damaged_bytes], ids=["text", "bytes"])


@st.composite
def _line_damage(draw: st.DrawFn, lines: list[str]) -> list[str]:
    if not lines:
        return lines
    n = draw(st.sampled_from(range(len(lines))))
    tokens = re.split(r"(\s+)", lines[n])
    words = [k for k, t in enumerate(tokens) if t and not t.isspace()]
    kind = draw(
        st.sampled_from(["token", "token", "nonfinite", "number", "number", "drop", "double", "extra", "short"])
    )
    if kind in ("token", "nonfinite", "number") and words:
        k = draw(st.sampled_from(words))
        if kind in ("token", "nonfinite"):
            tokens[k] = draw(st.sampled_from(NASTY if kind == "token" else NONFINITE))
        else:
            number = st.integers(-2, 12) | st.floats(allow_nan=True, allow_infinity=True)
            tokens[k] = repr(draw(number))
        return lines[:n] + ["".join(tokens)] + lines[n + 1 :]
    if kind == "drop":
        return lines[:n] + lines[n + 1 :]
    if kind == "double":
        return lines[: n + 1] + lines[n:]
    if kind == "extra":
        return lines[:n] + [lines[n] + " " + draw(st.sampled_from(NASTY))] + lines[n + 1 :]
    return lines[:n] + [" ".join(lines[n].split()[:-1])] + lines[n + 1 :]


@st.composite
def _byte_damage(draw: st.DrawFn, data: bytes) -> bytes:
    at = draw(st.sampled_from(range(max(len(data), 1))))
    kind = draw(st.sampled_from(["flip", "insert", "truncate"]))
    if kind == "flip" and data:
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    if kind == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    return data[:at]


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the block after ``seconds`` (a hang is a failure, not a stuck test run)."""

    def fail(signum: int, frame: object) -> None:
        raise TimeoutError(f"reader still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_or_format_error(read: Callable[[], T], files: tuple[Path, ...]) -> T | None:
    """``read()``, or None when it raised a MocapFormatError naming one of ``files``; anything else fails."""
    try:
        with time_limit(HANG_S):
            return read()
    except MocapFormatError as err:
        assert err.path in files, (err.path, files)
        assert str(err).startswith(str(err.path)), str(err)
        assert err.line is None or err.line >= 1
        return None


def check_clip(clip: MocapClip) -> None:
    """A readable clip: >= 1 frame, one parent per joint (parents first), finite (F, J, 3) and (F, J, 3, 3)."""
    num_frames, num_joints = clip.positions.shape[:2]
    assert num_frames >= 1
    assert clip.positions.shape == (num_frames, num_joints, 3)
    assert clip.orientations.shape == (num_frames, num_joints, 3, 3)
    assert len(clip.names) == len(clip.parents) == num_joints
    assert all(-1 <= p < j for j, p in enumerate(clip.parents))
    assert np.isfinite(clip.positions).all() and np.isfinite(clip.orientations).all()
    assert np.isfinite(clip.fps) and clip.fps > 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def test_bases_are_valid(folder: Path) -> None:
    """The undamaged files read (else every fuzz example below would be an error case only)."""
    (folder / "base.bvh").write_text(BVH)
    check_clip(load_bvh(folder / "base.bvh"))
    (folder / "base.asf").write_text(ASF)
    (folder / "base.amc").write_text(AMC)
    check_clip(load_asf_amc(folder / "base.asf", folder / "base.amc"))


@DAMAGE
@FUZZ
@given(draw=st.data())
def test_fuzz_bvh(folder: Path, damage: Callable, draw: st.DataObject) -> None:
    path = folder / "fuzz.bvh"
    path.write_bytes(draw.draw(damage(BVH), label="file"))
    bvh = read_or_format_error(lambda: read_bvh(path), (path,))
    if bvh is not None:
        assert bvh.motion.shape[0] >= 1 and bvh.motion.shape[1] == sum(len(j.channels) for j in bvh.joints)
        assert np.isfinite(bvh.motion).all() and np.isfinite(bvh.frame_time) and bvh.frame_time > 0
        clip = read_or_format_error(bvh.to_clip, (path,))
        if clip is not None:
            check_clip(clip)
            assert clip.num_frames == bvh.motion.shape[0]


@DAMAGE
@FUZZ
@given(draw=st.data())
def test_fuzz_asf(folder: Path, damage: Callable, draw: st.DataObject) -> None:
    asf, amc = folder / "fuzz.asf", folder / "good.amc"
    asf.write_bytes(draw.draw(damage(ASF), label="asf"))
    amc.write_text(AMC)
    clip = read_or_format_error(lambda: load_asf_amc(asf, amc), (asf, amc))
    if clip is not None:
        check_clip(clip)


@DAMAGE
@FUZZ
@given(draw=st.data())
def test_fuzz_amc(folder: Path, damage: Callable, draw: st.DataObject) -> None:
    asf, amc = folder / "good.asf", folder / "fuzz.amc"
    asf.write_text(ASF)
    amc.write_bytes(draw.draw(damage(AMC), label="amc"))
    clip = read_or_format_error(lambda: load_asf_amc(asf, amc), (asf, amc))
    if clip is not None:
        check_clip(clip)
