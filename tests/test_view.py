"""``structpose view``: the self-contained HTML page, its inputs, and the page in a headless browser."""

from __future__ import annotations

import html.parser
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_train import make_store

from structpose.data.dataset import PoseImageDataset
from structpose.errors import FormatError, InputError
from structpose.metrics import mpjpe
from structpose.skeleton import H36M_JOINTS
from structpose.train.config import load_config
from structpose.view import evenly_spaced, load_view_inputs, view_html, write_view

pytest.importorskip("plotly", reason="the view needs plotly: pip install plotly==5.24.1")


def camera_poses(n: int, seed: int = 0) -> np.ndarray:
    """(n, 17, 3) real mocap poses (the shipped pose library), mm, root-relative, camera frame (y down)."""
    lib = importlib.resources.files("structpose.assets").joinpath("poselib_v1.npz")
    with importlib.resources.as_file(lib) as path, np.load(path, allow_pickle=False) as z:
        rows = np.random.default_rng(seed).choice(len(z["poses"]), n, replace=False)
        world = z["poses"][np.sort(rows)].astype(np.float64)  # world: Z up
    cam = np.stack([world[..., 0], -world[..., 2], world[..., 1]], axis=-1)  # camera looking along world +Y
    return cam - cam[:, :1]


def noisy(poses: np.ndarray, sd: float = 40.0, seed: int = 1) -> np.ndarray:
    return poses + np.random.default_rng(seed).normal(0, sd, poses.shape)


def figure(page: str) -> tuple[list, dict, list]:
    """The (data, layout, frames) that the page hands to plotly.js, parsed back from its script."""
    decoder = json.JSONDecoder()
    start = page.rindex("Plotly.newPlot(")

    def value_after(marker: str, at: int) -> tuple[object, int]:
        i = page.index(marker, at) + len(marker)
        while page[i] in " \n\t,":
            i += 1
        return decoder.raw_decode(page, i)

    data, end = value_after('"structpose-view",', start)
    layout, end = value_after("", end)
    frames, _ = value_after("Plotly.addFrames('structpose-view',", end)
    return data, layout, frames


class _Tags(html.parser.HTMLParser):
    """Every start tag of a page with its attributes (script bodies are not parsed as HTML)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def external_references(page: str) -> list[str]:
    """The page's tags that would fetch something: any ``src``, a ``link``/``iframe``/``object``, a remote href."""
    parser = _Tags()
    parser.feed(page)
    found = []
    for tag, attrs in parser.tags:
        if "src" in attrs or tag in ("link", "iframe", "object", "embed", "base"):
            found.append(f"<{tag} {attrs}>")
        elif str(attrs.get("href", "")).startswith(("http:", "https:", "//")):
            found.append(f"<{tag} {attrs}>")
    return found


# ------------------------------------------------------------------------------------------------ page


def test_page_is_self_contained_with_joint_names_frames_and_errors():
    gt = camera_poses(7)
    pred = noisy(gt)
    labels = [f"S9 Walking frame {10 * i}" for i in range(7)]
    page = view_html(pred, gt, labels, title="a test <page>")
    assert external_references(page) == [] and not re.search(r"<script[^>]*\ssrc\s*=", page)
    assert "plotly.js v" in page and len(page) > 3_000_000  # the library itself is inlined
    assert "<title>a test &lt;page&gt;</title>" in page
    data, layout, frames = figure(page)
    assert len(frames) == 7 and [f["name"] for f in frames] == [str(i) for i in range(7)]
    assert {t["scene"] for t in data} == {"scene", "scene2"} and "scene2" in layout
    markers = [t for t in data if t["mode"] == "markers"]
    assert len(markers) == 2 and all(t["hovertext"] == list(H36M_JOINTS) for t in markers)
    errors = mpjpe(pred, gt, reduce=False)
    steps = layout["sliders"][0]["steps"]
    assert [s["label"] for s in steps] == [f"{lb}: MPJPE {e:.1f} mm" for lb, e in zip(labels, errors, strict=True)]
    assert [s["args"][0] for s in steps] == [[str(i)] for i in range(7)]


def test_page_shows_the_person_upright_at_the_given_coordinates():
    gt = camera_poses(3)
    _, layout, frames = figure(view_html(gt, gt))
    joints = frames[2]["data"][3]  # the prediction's marker trace of the third sample
    np.testing.assert_allclose(joints["z"], -gt[2, :, 1], atol=0.051)  # up = -y
    np.testing.assert_allclose(joints["y"], gt[2, :, 2], atol=0.051)  # depth = z
    np.testing.assert_allclose(np.array(joints["customdata"])[:, :3], gt[2], atol=0.051)  # hover: camera frame
    assert joints["z"][H36M_JOINTS.index("Head")] > joints["z"][H36M_JOINTS.index("RFoot")]
    ranges = {tuple(layout["scene"][a]["range"]) for a in ("xaxis", "yaxis", "zaxis")}
    assert len(ranges) == 1 and layout["scene"]["aspectmode"] == "cube"  # equal aspect
    assert "MPJPE 0.0 mm" in layout["sliders"][0]["steps"][0]["label"]


def test_page_without_ground_truth_has_one_scene_and_no_error():
    pred = camera_poses(4)
    data, layout, frames = figure(view_html(pred, None, None, "predictions only"))
    assert {t["scene"] for t in data} == {"scene"} and "scene2" not in layout
    assert [s["label"] for s in layout["sliders"][0]["steps"]] == ["#0", "#1", "#2", "#3"]
    assert len(frames) == 4 and "error" not in json.dumps(data)


@pytest.mark.parametrize(
    ("pred", "gt", "labels", "match"),
    [
        (np.zeros((2, 16, 3)), None, None, r"\(N, 17, 3\)"),
        (np.zeros((0, 17, 3)), None, None, "N >= 1"),
        (np.zeros((2, 17, 3)), np.zeros((3, 17, 3)), None, "one ground truth per prediction"),
        (np.zeros((2, 17, 3)), None, ["a"], "one label per sample"),
        (np.full((2, 17, 3), np.nan), None, None, "non-finite"),
    ],
)
def test_page_refuses_bad_arguments(pred, gt, labels, match):
    with pytest.raises(InputError, match=match):
        view_html(pred, gt, labels)


# ----------------------------------------------------------------------------------------------- inputs


def write_run(tmp_path: Path, root: Path, preds: dict[str, np.ndarray]) -> Path:
    """A reproduce-like run folder: ``config.yaml`` (the real writer) and ``seed0/predictions.npz``."""
    run = tmp_path / "run"
    (run / "seed0").mkdir(parents=True)
    (run / "config.yaml").write_text(load_config("tiny", [f"data.root={root}"]).to_yaml())
    with open(run / "seed0" / "predictions.npz", "wb") as f:
        np.savez_compressed(f, **preds)
    return run


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), n_train=16, n_test=12)


def test_run_folder_with_its_store_shows_ground_truth(tmp_path, store):
    gt = PoseImageDataset(store, "test").poses3d
    pred = noisy(gt).astype(np.float32)
    run = write_run(tmp_path, store, {"test/ours": pred, "test/cnn": gt, "occluded/ours": gt})
    inputs = load_view_inputs(run)
    np.testing.assert_allclose(inputs.pred, pred)
    np.testing.assert_allclose(inputs.gt, gt)
    assert inputs.note == "" and "test/ours" in inputs.title
    assert inputs.labels[3] == "#3 S0 walk frame 3"
    assert load_view_inputs(run, "occluded/ours").gt is not None
    with pytest.raises(InputError, match=r"'test/linkde'.*occluded/ours, test/cnn, test/ours"):
        load_view_inputs(run, "linkde")


def test_write_view_subsamples_evenly_and_titles_the_mean_error(tmp_path, store):
    gt = PoseImageDataset(store, "test").poses3d.astype(np.float64)
    pred = noisy(gt)
    run = write_run(tmp_path, store, {"test/ours": pred})
    out = write_view(run, tmp_path / "page.html", max_samples=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html", "run"]  # no temporary file left
    _, layout, frames = figure(out.read_text(encoding="utf-8"))
    keep = evenly_spaced(12, 5)
    assert keep.tolist() == [0, 3, 6, 8, 11] and len(frames) == 5
    errors = mpjpe(pred, gt, reduce=False)
    assert f"MPJPE {errors.mean():.1f} mm (those shown: {errors[keep].mean():.1f} mm)" in layout["title"]["text"]
    assert [s["label"] for s in layout["sliders"][0]["steps"]][1] == f"#3 S0 walk frame 3: MPJPE {errors[3]:.1f} mm"
    assert write_view(run).name == "view.html" and (run / "view.html").is_file()


def test_run_folder_without_its_data_shows_predictions_and_says_why(tmp_path, caplog):
    pred = camera_poses(5)
    run = write_run(tmp_path, tmp_path / "gone", {"test/ours": pred})
    inputs = load_view_inputs(run)
    assert inputs.gt is None and "gone" in inputs.note and "is missing" in inputs.title
    _, layout, frames = figure(write_view(run).read_text(encoding="utf-8"))
    assert "no ground truth" in layout["title"]["text"] and len(frames) == 5
    assert "ground truth not shown" in caplog.text and f"{tmp_path / 'gone'} (data.root in" in caplog.text


def test_run_folder_whose_store_does_not_match_shows_predictions(tmp_path, store):
    run = write_run(tmp_path, store, {"test/ours": camera_poses(5)})
    inputs = load_view_inputs(run)
    assert inputs.gt is None and "12 test samples but the predictions 5" in inputs.note


def test_predict_outputs(tmp_path):
    poses = camera_poses(3)
    with open(tmp_path / "poses.npz", "wb") as f:
        np.savez(f, poses=poses.astype(np.float32), names=np.array(["a/x.jpg", "b/y.png", "z.png"]), model="ours")
    for src in (tmp_path, tmp_path / "poses.npz"):
        inputs = load_view_inputs(src)
        assert inputs.gt is None and inputs.labels == ["x.jpg", "y.png", "z.png"]
        np.testing.assert_allclose(inputs.pred, poses, atol=1e-3)
    order = list(reversed(H36M_JOINTS))
    doc = {"joint_names": order, "poses_mm": poses[0, ::-1].tolist(), "units": "mm", "image": "crops/x.jpg"}
    (tmp_path / "x.json").write_text(json.dumps(doc))
    inputs = load_view_inputs(tmp_path / "x.json")
    np.testing.assert_allclose(inputs.pred, poses[:1])  # joints back in Human3.6M order
    assert inputs.labels == ["x.jpg"]
    assert write_view(tmp_path / "x.json").name == "x.html"


def truncated_npz(path: Path) -> Path:
    with open(path, "wb") as f:
        np.savez(f, poses=camera_poses(4))
    path.write_bytes(path.read_bytes()[:300])
    return path


@pytest.mark.parametrize(
    ("name", "content", "error", "match"),
    [
        ("nopose.json", json.dumps({"joint_names": list(H36M_JOINTS), "units": "mm"}), FormatError, "no 'poses_mm'"),
        ("broken.json", '{"poses_mm": [[1, 2', FormatError, "not valid JSON"),
        ("shape.json", json.dumps({"poses_mm": [[1, 2, 3]] * 16}), FormatError, r"shape \(16, 3\)"),
        ("units.json", json.dumps({"poses_mm": [[0, 0, 0]] * 17, "units": "m"}), FormatError, "units 'm'"),
        ("names.json", json.dumps({"poses_mm": [[0, 0, 0]] * 17, "joint_names": ["a"] * 17}), FormatError, "joint"),
        ("poses.txt", "hello", InputError, "not a predict JSON"),
    ],
)
def test_bad_inputs_name_the_file(tmp_path, name, content, error, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(error, match=match) as info:
        load_view_inputs(tmp_path / name)
    assert name in str(info.value)


def test_truncated_npz_and_missing_files_name_the_file(tmp_path):
    with pytest.raises(FormatError, match="poses.npz: cannot read this .npz"):
        load_view_inputs(truncated_npz(tmp_path / "poses.npz"))
    run = tmp_path / "run"
    (run / "seed0").mkdir(parents=True)
    with pytest.raises(InputError, match="holds no predictions.npz"):
        load_view_inputs(run)
    truncated_npz(run / "seed0" / "predictions.npz")
    with pytest.raises(FormatError, match=r"seed0/predictions.npz: cannot read"):
        load_view_inputs(run)
    with pytest.raises(InputError, match="missing.json: no such file"):
        load_view_inputs(tmp_path / "missing.json")


def test_evenly_spaced():
    assert evenly_spaced(3, 200).tolist() == [0, 1, 2]
    assert evenly_spaced(1000, 4).tolist() == [0, 333, 666, 999]
    with pytest.raises(InputError):
        evenly_spaced(5, 0)


# ------------------------------------------------------------------------------------- headless browser

#: Injected first in <head>: console.error and uncaught errors become log lines the test can find.
PROBE_HEAD = """<script>(function () {
  var error = console.error;
  console.error = function () {
    error.call(console, "PROBE-CONSOLE-ERROR " + Array.prototype.join.call(arguments, " "));
  };
  window.addEventListener("error", function (ev) { console.log("PROBE-UNCAUGHT " + ev.message); });
  window.addEventListener("unhandledrejection", function (ev) {
    console.log("PROBE-UNCAUGHT (in promise) " + ev.reason);
  });
})();</script>"""

#: Injected last in <body>: once plotly has drawn, move the slider to the last sample, rotate the left
#: scene, and report what the page holds.
PROBE_BODY = """<script>(function () {
  var gd = document.getElementById("structpose-view");
  var last = "LAST", tries = 0;
  var wait = setInterval(function () {
    var frames = gd._transitionData && gd._transitionData._frames;
    if (!(gd._fullLayout && frames && frames.length) && ++tries < 200) { return; }
    clearInterval(wait);
    var shown = {mode: "immediate", frame: {duration: 0, redraw: true}, transition: {duration: 0}};
    Plotly.animate(gd, [last], shown).then(function () {
      var title = gd.layout.title.text;
      return Plotly.relayout(gd, {"scene.camera": {eye: {x: 1.9, y: -0.4, z: 0.3}}}).then(function () {
        setTimeout(function () {
          var scene2 = gd.layout.scene2 && gd.layout.scene2.camera;
          console.log("PROBE-REPORT " + JSON.stringify({frames: frames.length, title: title,
            canvases: gd.querySelectorAll("canvas").length, scene2_eye_x: scene2 ? scene2.eye.x : null}));
        }, 100);
      });
    });
  }, 50);
})();</script>"""

ERROR_MARKS = ("PROBE-CONSOLE-ERROR", "PROBE-UNCAUGHT", "Uncaught", "Failed to load resource", "net::ERR_")


def find_browser() -> str:
    """A Chromium binary ($STRUCTPOSE_CHROMIUM, else chromium / chrome on PATH); skips the test without one,
    or fails it where $STRUCTPOSE_REQUIRE_BROWSER=1 (CI, which installs Chromium)."""
    names = [os.environ.get("STRUCTPOSE_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    found = next((shutil.which(n) for n in names if n and shutil.which(n)), None)
    if found is None:
        reason = ("no Chromium found (chromium, chromium-browser, google-chrome or $STRUCTPOSE_CHROMIUM): the "
                  "headless-browser check of the view page needs one; Debian: apt-get install -y chromium")  # fmt: skip
        if os.environ.get("STRUCTPOSE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def browse(page: Path, screenshot: Path, profile: Path) -> list[str]:
    """Open ``page`` in headless Chromium (software WebGL, every host unresolvable: nothing can be fetched),
    save a 1200x700 screenshot, return the page's console lines."""
    cmd = [find_browser(), "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
           "--enable-unsafe-swiftshader", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}", "--window-size=1200,700",
           "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", f"--screenshot={screenshot}",
           page.resolve().as_uri()]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env={**os.environ, "LANG": "C.UTF-8"})
    assert run.returncode == 0 and screenshot.is_file(), f"chromium failed ({run.returncode}):\n{run.stderr[-3000:]}"
    return [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Failed to load resource" in line]


def probed(page: str) -> str:
    page = page.replace("<head>", "<head>" + PROBE_HEAD, 1)
    head, _, tail = page.rpartition("</body>")
    return head + PROBE_BODY + "</body>" + tail


def console_errors(lines: list[str]) -> list[str]:
    return [line for line in lines if any(mark in line for mark in ERROR_MARKS)]


@pytest.mark.slow
def test_browser_probe_sees_console_errors(tmp_path):
    """The console scan of the browser test is not vacuous: a page that logs and throws is caught."""
    page = tmp_path / "bad.html"
    page.write_text(probed("<html><head></head><body><script>console.error('bad thing'); throw new Error('boom')"
                           "</script><img src='https://example.com/x.png'></body></html>"))  # fmt: skip
    errors = " ".join(console_errors(browse(page, tmp_path / "bad.png", tmp_path / "profile")))
    assert "PROBE-CONSOLE-ERROR bad thing" in errors and "boom" in errors


@pytest.mark.slow
def test_page_renders_in_a_headless_browser(tmp_path):
    from PIL import Image

    gt = camera_poses(30)
    pred = noisy(gt)
    labels = [f"sample {i}" for i in range(30)]
    page = view_html(pred, gt, labels, "browser test")
    path = tmp_path / "view.html"
    path.write_text(probed(page).replace('var last = "LAST"', 'var last = "29"'), encoding="utf-8")
    t0 = time.perf_counter()
    lines = browse(path, tmp_path / "view.png", tmp_path / "profile")
    seconds = time.perf_counter() - t0
    assert console_errors(lines) == [], "\n".join(lines)
    reports = [json.loads(line.split("PROBE-REPORT ", 1)[1].rsplit('", source', 1)[0].replace('\\"', '"'))
               for line in lines if "PROBE-REPORT" in line]  # fmt: skip
    assert reports, f"the page never finished drawing (after {seconds:.1f} s):\n" + "\n".join(lines)
    report = reports[0]
    error = mpjpe(pred[29:], gt[29:])
    assert report["frames"] == 30 and f"sample 29: MPJPE {error:.1f} mm" in report["title"]  # the slider's step
    assert report["canvases"] >= 1 and report["scene2_eye_x"] == pytest.approx(1.9)  # the cameras follow
    rgb = np.asarray(Image.open(tmp_path / "view.png").convert("RGB")).astype(int)
    assert rgb.shape == (700, 1200, 3)
    plot = rgb[80:450]  # the two scenes
    assert (np.abs(plot - 255).sum(-1) > 30).mean() > 0.01  # not blank: axes, grid, skeletons
    assert len(np.unique(plot.reshape(-1, 3), axis=0)) > 50
    for colour in ((0xE8, 0x41, 0x2C), (0x2C, 0x7B, 0xE8)):  # left and right limbs drawn by WebGL, both scenes
        near = np.abs(plot - np.array(colour)).sum(-1) < 60
        assert near[:, :600].sum() > 30 and near[:, 600:].sum() > 30, f"no limb of colour {colour} drawn"
    print(f"headless browser: {seconds:.1f} s")
