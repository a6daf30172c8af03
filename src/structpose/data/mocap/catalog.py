"""What is in the shared mocap data folder: one :class:`Take` per motion file, with rig, rate, subject, label.

The layout rules below follow ``data/README.txt`` and the ``SOURCE.txt`` files of each folder. Labels come
from ``MANIFEST.tsv`` (its ``label`` column) and, for Bandai-Namco, from each take's JSON
(``{"content": i, "style": j}`` indexing ``cfg/content_label.txt`` / ``cfg/style_label.txt``), falling back
to the file name (``dataset-1_<content>_<style>_<take>.bvh``). Header frame rates known to be wrong are
overridden by :data:`RATE_OVERRIDES`; corrupt takes are listed, with the reason, in :data:`EXCLUDED`.

``cmu_expmap_li2018`` is deliberately not in :data:`LAYOUT`: its takes are exp-map conversions of the same
cgspeed CMU BVH files (its ``train/jumping/jumping_1`` is CMU 13_11 frame for frame, already here as a
Daz-friendly BVH) and their CMU subjects are not recorded (subjects 13 and 14 both washed windows and
directed traffic), so they could not be split by subject. Read them with ``structpose.data.mocap.expmap.load_li2018``.
"""

from __future__ import annotations

import csv
import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from structpose.data.mocap.asf_amc import CMU_FPS

CMU_LICENSE = (
    "CMU Graphics Lab Motion Capture Database terms (mocap.cs.cmu.edu): free for research and commercial use, "
    "not to be resold; acknowledge: 'The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217.'"
)
BANDAI_LICENSE = (
    "CC BY-NC 4.0, (c) 2022 Bandai Namco Research Inc.; cite Kobayashi, Liao, Inoue, Yojima, Takahashi, "
    "'Motion Capture Dataset for Practical Use of AI-based Motion Editing and Stylization', arXiv:2306.08861 (2023)"
)
LICENSES = {"cmu": CMU_LICENSE, "bandai": BANDAI_LICENSE}

#: True frame rates (Hz) of files whose header is wrong (path glob relative to the data root).
RATE_OVERRIDES: dict[str, float] = {
    "cmu_bvh_przestr/16/16_0[12].bvh": 120.0,  # amc2bvh wrote Frame Time 0.033333
    "cmu_bvh_acrnn/salsa/*.bvh": 60.0,  # acRNN framerates_readme.txt: salsa 60, header 120
}

#: Takes left out of the library, with the reason (found by the plausibility checks of the build notes:
#: thigh angle to the vertical, joints far below the floor).
EXCLUDED: dict[str, str] = {
    "cmu_bvh_przestr/07/07_12.bvh": "corrupt: legs at a median 52 deg from vertical during a 'brisk walk', "
    "frame 1 a second T-pose 1 m lower",
    "cmu_bvh_przestr/09/09_10.bvh": "corrupt: frames 1-4 frozen 1 m below the rest, legs at a median 70 deg "
    "from vertical during a 'run', body floating",
}

#: CMU subjects of the acRNN folders (acRNN renumbers the trials). The two salsa files are the two
#: partners of CMU subjects 60/61, not told apart: one subject group.
ACRNN_SUBJECTS = {"indian": "cmu:94", "martial": "cmu:135", "salsa": "cmu:60+61"}


@dataclass(frozen=True)
class Take:
    """One motion file. ``path``/``skeleton`` are POSIX paths relative to the data root; ``fps`` its true rate
    (None: trust the header); ``style`` the Bandai-Namco style ("" for CMU)."""

    name: str
    path: str
    reader: str
    rig: str
    source: str
    folder: str
    subject: str
    label: str
    style: str
    fps: float | None
    skeleton: str = ""

    @property
    def license(self) -> str:
        return LICENSES[self.source]


def _cmu_bvh(rig: str, subject: str, name: str) -> dict:
    return {"reader": "bvh", "rig": rig, "source": "cmu", "subject": subject, "name": f"cmu:{name}"}


def _przestr(rel: PurePosixPath) -> dict:
    rig = "cmu_amc2bvh" if rel.parts[1] == "16" else "cmu_daz"
    return _cmu_bvh(rig, f"cmu:{int(rel.parts[1])}", rel.stem)


def _acrnn(rel: PurePosixPath) -> dict:
    return _cmu_bvh("cmu_daz", ACRNN_SUBJECTS[rel.parts[1]], f"acrnn_{rel.parts[1]}_{rel.stem}")


def _max(rel: PurePosixPath) -> dict:
    return _cmu_bvh("cmu_max", f"cmu:{int(rel.stem.split('_')[0])}", rel.stem)


def _asf_amc(rel: PurePosixPath) -> dict:
    subject = rel.parts[1]
    return {
        "reader": "asf_amc",
        "rig": "cmu_asf",
        "source": "cmu",
        "subject": f"cmu:{int(subject)}",
        "name": f"cmu:{rel.stem}",
        "skeleton": str(rel.parent / f"{subject}.asf"),
        "fps": CMU_FPS,
    }


def _bandai(rel: PurePosixPath) -> dict:
    dataset = rel.parts[1]
    return {
        "reader": "bvh",
        "rig": "bandai",
        "source": "bandai",
        "subject": f"bandai:{dataset}",
        "name": f"bandai:{rel.stem}",
    }


#: (glob relative to the data root, record builder of a matching file).
LAYOUT = (
    ("cmu_bvh_przestr/*/*.bvh", _przestr),
    ("cmu_bvh_acrnn/*/*.bvh", _acrnn),
    ("cmu_bvh_max_bvh11/*.bvh", _max),
    ("cmu_asf_amc_gpmat/*/*.amc", _asf_amc),
    ("bandai_namco_motion/*/data/*.bvh", _bandai),
)


def read_manifest(data_root: Path) -> dict[str, dict[str, str]]:
    """``MANIFEST.tsv`` rows keyed by path ({} if the file is absent)."""
    manifest = data_root / "MANIFEST.tsv"
    if not manifest.exists():
        return {}
    with manifest.open(newline="") as fh:
        return {row["path"]: row for row in csv.DictReader(fh, delimiter="\t")}


def true_rate(path: str) -> float | None:
    """The overridden frame rate of ``path`` (relative POSIX path) or None."""
    return next((fps for pattern, fps in RATE_OVERRIDES.items() if fnmatch.fnmatch(path, pattern)), None)


def _bandai_content_style(data_root: Path, rel: PurePosixPath) -> tuple[str, str]:
    """Content and style labels of a Bandai-Namco take from its JSON + cfg files, else from its file name."""
    dataset = rel.parts[1]
    label_json = data_root / rel.with_suffix(".json")
    cfg = data_root / rel.parts[0] / dataset / "cfg"
    if label_json.exists() and (cfg / "content_label.txt").exists():
        labels = json.loads(label_json.read_text())
        contents = (cfg / "content_label.txt").read_text().split()
        styles = (cfg / "style_label.txt").read_text().split()
        strip = len(dataset) + 1
        return contents[labels["content"]][strip:], styles[labels["style"]][strip:]
    _, content, style, _ = rel.stem.split("_")
    return content, style


def discover(data_root: Path, sources: tuple[str, ...] = ("cmu", "bandai")) -> list[Take]:
    """All takes under ``data_root`` of the given sources, sorted by path (deterministic)."""
    manifest = read_manifest(data_root)
    takes: dict[str, Take] = {}
    for pattern, build in LAYOUT:
        for file in sorted(data_root.glob(pattern)):
            rel = PurePosixPath(file.relative_to(data_root).as_posix())
            if str(rel) in takes or str(rel) in EXCLUDED:
                continue
            record = build(rel)
            if record["source"] not in sources:
                continue
            style = ""
            label = manifest.get(str(rel), {}).get("label", "")
            if record["source"] == "bandai":
                content, style = _bandai_content_style(data_root, rel)
                label = label or f"{content} (style: {style})"
            fps = record.pop("fps", None) or true_rate(str(rel))
            takes[str(rel)] = Take(
                path=str(rel), folder=rel.parts[0], label=label or "unlabelled", style=style, fps=fps, **record
            )
    return [takes[k] for k in sorted(takes)]
