"""CMU readers: ASF/AMC on a tiny hand-written skeleton (hand-computed positions), the Li et al. exp-map format,
and their error reporting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from structpose.data.mocap.asf_amc import load_asf_amc, read_amc, read_asf
from structpose.data.mocap.errors import MocapFormatError
from structpose.data.mocap.expmap import LI2018_JOINTS, LI2018_PARENTS, load_li2018
from structpose.data.mocap.mapping import RIGS

ASF = """# tiny skeleton
:version 1.10
:name TEST
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 0 1 0
     length 2
     axis 0 0 0 XYZ
    dof rx ry rz
  end
  begin
     id 2
     name b
     direction 1 0 0
     length 1
     axis 0 0 90 XYZ
    dof rx
  end
:hierarchy
  begin
    root a
    a b
  end
"""

AMC_FRAMES = ["1", "root 0 0 0 0 0 0", "a 0 0 0", "b 0", "2", "root 1 0 0 0 0 90", "a 0 0 0", "b 90"]
AMC_HEADER = ["#!OML:ASF test.asf", ":FULLY-SPECIFIED", ":DEGREES"]


def write(tmp_path: Path, amc_lines: list[str]) -> tuple[Path, Path]:
    asf, amc = tmp_path / "t.asf", tmp_path / "t_01.amc"
    asf.write_text(ASF)
    amc.write_text("\n".join(AMC_HEADER + amc_lines) + "\n")
    return asf, amc


def test_fk_by_hand(tmp_path: Path) -> None:
    clip = load_asf_amc(*write(tmp_path, AMC_FRAMES))
    assert clip.names == ("root", "a", "b", "b_end")
    assert clip.parents == (-1, 0, 1, 2)
    assert clip.fps == 120.0
    # frame 1 (rest): a from the root up 2, b from (0, 2, 0) along +x by 1
    np.testing.assert_allclose(clip.positions[0], [[0, 0, 0], [0, 0, 0], [0, 2, 0], [1, 2, 0]], atol=1e-9)
    # frame 2: root at (1, 0, 0) turned Rz(90): a ends at (1, 0, 0) + 2 * (-1, 0, 0) = (-1, 0, 0).
    # b's rx = 90 acts about its local x axis C x = Rz(90) x = +y (a rotation Ry(90) in world axes), so
    # b's direction (1, 0, 0) becomes Rz(90) @ Ry(90) @ (1, 0, 0) = Rz(90) @ (0, 0, -1) = (0, 0, -1).
    np.testing.assert_allclose(clip.positions[1], [[1, 0, 0], [1, 0, 0], [-1, 0, 0], [-1, 0, -1]], atol=1e-9)


def test_skeleton_fields(tmp_path: Path) -> None:
    skeleton = read_asf(write(tmp_path, AMC_FRAMES)[0])
    assert skeleton.root_order == ("TX", "TY", "TZ", "RX", "RY", "RZ")
    assert skeleton.parent == {"a": "root", "b": "a"}
    assert skeleton.bones["b"].dof == ("rx",)
    assert skeleton.bones["a"].length == 2.0
    motion = read_amc(tmp_path / "t_01.amc", skeleton)
    assert motion["root"].shape == (2, 6) and motion["b"].tolist() == [[0.0], [90.0]]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (AMC_FRAMES[:-1], 8, "missing in frame 2"),  # truncated: last frame lacks bone b
        (AMC_FRAMES[:-1] + ["b 90 0"], 11, "has 2 values"),  # wrong value count
        (AMC_FRAMES[:-1] + ["b nan"], 11, "NaN"),
        (AMC_FRAMES[:-1] + ["b ninety"], 11, "non-numeric"),
        (AMC_FRAMES[:4] + ["3"] + AMC_FRAMES[5:], 8, "frame 3 where frame 2"),
        (AMC_FRAMES + ["c 1"], 12, "unknown bone"),
    ],
)
def test_bad_amc_names_file_and_line(tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    asf, amc = write(tmp_path, lines)
    with pytest.raises(MocapFormatError, match=message) as info:
        load_asf_amc(asf, amc)
    assert info.value.line == line
    assert f"t_01.amc:{line}:" in str(info.value)


def test_bad_asf(tmp_path: Path) -> None:
    asf = tmp_path / "bad.asf"
    asf.write_text(ASF.replace("length 2\n", "length two\n"))
    with pytest.raises(MocapFormatError, match="bad.asf:18: bad 'length'"):
        read_asf(asf)
    asf.write_text(ASF.replace("    a b\n", "    a b z\n"))
    with pytest.raises(MocapFormatError, match="unknown bone 'z'"):
        read_asf(asf)


# --- the exp-map text format of Li et al. 2018 (same CMU tree, amc2bvh layout) ---------------------------------
def li2018_files(tmp_path: Path, frames: list[list[float]]) -> tuple[Path, Path]:
    offsets = np.zeros((38, 3))
    offsets[1:] = [0.0, 1.0, 0.0]  # every bone one unit along +y
    skeleton = tmp_path / "skeleton.json"
    skeleton.write_text(json.dumps({"parent_0based": list(LI2018_PARENTS), "offset_raw_units": offsets.tolist()}))
    take = tmp_path / "take.txt"
    take.write_text("\n".join(",".join(repr(v) for v in row) for row in frames) + "\n")
    return take, skeleton


def test_li2018_fk(tmp_path: Path) -> None:
    rest = [0.0] * (3 + 3 * 38)
    turned = [1.0, 2.0, 3.0] + [0.0, 0.0, np.pi / 2] + [0.0] * (3 * 37)  # root exp-map: 90 deg about z
    clip = load_li2018(*li2018_files(tmp_path, [rest, turned]))
    assert clip.names == LI2018_JOINTS and clip.names[19] == "head_end" and clip.fps == 120.0
    head_end = clip.index("head_end")  # 7 unit bones above the root: lowerback .. head_end
    np.testing.assert_allclose(clip.positions[0, head_end], [0, 7, 0], atol=1e-12)
    # the authors' row-vector FK turns children by expmap(r).T: +y goes to +x
    np.testing.assert_allclose(clip.positions[1, head_end], [1 + 7, 2, 3], atol=1e-12)
    assert set(RIGS["cmu_amc2bvh"].contacts) <= set(clip.names)


def test_li2018_errors(tmp_path: Path) -> None:
    rest = [0.0] * (3 + 3 * 38)
    take, skeleton = li2018_files(tmp_path, [rest, rest[:-1]])
    with pytest.raises(MocapFormatError, match="take.txt:2: 116 values"):
        load_li2018(take, skeleton)
    take, skeleton = li2018_files(tmp_path, [rest, [float("nan")] + rest[1:]])
    with pytest.raises(MocapFormatError, match="take.txt:2: NaN"):
        load_li2018(take, skeleton)


# --- regressions: encodings, values the kinematics cannot use, hierarchies that are not trees --------------------
def test_non_utf8_asf_and_amc_name_file_and_line(tmp_path: Path) -> None:
    asf, amc = write(tmp_path, AMC_FRAMES)
    asf.write_bytes(ASF.replace("# tiny skeleton", "# tiny skeleton, caf\u00e9").encode("latin-1"))
    with pytest.raises(MocapFormatError, match="not UTF-8") as info:
        load_asf_amc(asf, amc)
    assert info.value.path == asf and str(info.value).startswith(f"{asf}:1: ")
    asf.write_text(ASF)
    amc.write_bytes(("\n".join(AMC_HEADER + AMC_FRAMES) + "\n").replace("test.asf", "t\u00e9st.asf").encode("latin-1"))
    with pytest.raises(MocapFormatError, match="not UTF-8") as info:
        load_asf_amc(asf, amc)
    assert info.value.path == amc and str(info.value).startswith(f"{amc}:1: ")


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("   axis XYZ\n", "   axis XYW\n", 10, "bad axis order 'XYW'"),
        ("   axis XYZ\n", "   axis XY\n", 10, "bad axis order 'XY'"),
        ("RX RY RZ\n", "RX RY RW\n", 9, "bad :root order value 'RW'"),
        ("RX RY RZ\n", "RX RY R\n", 9, "bad :root order value 'R'"),
        ("   position 0 0 0\n", "   position 0 0\n", 11, "bad 'position' line: 3 numbers expected, found 2"),
        ("   orientation 0 0 0\n", "   orientation 0 nan 0\n", 12, "non-finite"),
        ("direction 0 1 0\n", "direction 0 1\n", 17, "bad 'direction' line: 3 numbers expected, found 2"),
        ("direction 0 1 0\n", "direction 0 inf 0\n", 17, "non-finite"),
        ("length 2\n", "length nan\n", 18, "non-finite"),
        ("axis 0 0 0 XYZ\n", "axis 0 0 0 XY\n", 19, "bad axis order 'XY'"),
        ("axis 0 0 0 XYZ\n", "axis 0 0 0 ZZT\n", 19, "bad axis order 'ZZT'"),
        ("name b\n", "name a\n", 24, "bone 'a' defined twice"),
        ("name b\n", "name root\n", 24, "'root'"),
        ("    a b\n", "    a b\n    b root\n", 34, "'root' cannot be a child"),
        ("    a b\n", "    a b\n    b a\n", 34, "bone 'a' attached twice"),
    ],
)
def test_bad_asf_values_name_file_and_line(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    asf, amc = write(tmp_path, AMC_FRAMES)
    assert old in ASF
    asf.write_text(ASF.replace(old, new, 1))
    with pytest.raises(MocapFormatError, match=message) as info:
        load_asf_amc(asf, amc)
    assert info.value.path == asf and info.value.line == line, str(info.value)


def test_empty_root_section(tmp_path: Path) -> None:
    asf, amc = write(tmp_path, AMC_FRAMES)
    start, end = ASF.index(":root\n") + len(":root\n"), ASF.index(":bonedata")
    asf.write_text(ASF[:start] + ASF[end:])
    with pytest.raises(MocapFormatError, match="bad :root section") as info:
        load_asf_amc(asf, amc)
    assert info.value.line == 8


def test_unicode_digit_frame_number(tmp_path: Path) -> None:
    asf, amc = write(tmp_path, AMC_FRAMES[:4] + ["\u00b2"] + AMC_FRAMES[5:])
    with pytest.raises(MocapFormatError, match="motion values before|unknown bone") as info:
        load_asf_amc(asf, amc)
    assert info.value.path == amc and info.value.line == 8
