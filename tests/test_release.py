"""Released models: export -> load round trips, model.json, the Python API's crops and conversions, the
predict CLI on images and videos, ONNX (parity, no torch), and that nothing is unpickled on any load path."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_train import make_store

import structpose
from structpose import release
from structpose.cli import main
from structpose.data.dataset import PoseImageDataset
from structpose.errors import FormatError, InputError
from structpose.release import MODEL_JSON, ONNX, WEIGHTS, crop_person, export_model, load
from structpose.skeleton import H36M
from structpose.train.config import load_config
from structpose.train.layout import RunLayout
from structpose.train.methods import load_method

# Same weights, same float32 kernels; only the batch composition may differ (64 here, 256 in load_method),
# which can change the last bits of a conv's sums: a few ulps at ~1000 mm is ~1e-4 mm at most.
SAME_MODEL_MM = 1e-3
# onnxruntime's fused kernels against PyTorch's: float32 rounding of other summation orders (~1e-4 mm seen).
ONNX_MM = 1e-2


def _fit_linkde_knn(cfg, folder: Path) -> None:
    """A LinKDE-kNN stage as linkde_stage writes it (weights, then selection.json), without the validation
    search over its hyper-parameters (20 s): the default configuration, fitted on the training split."""
    from safetensors.numpy import save_file

    from structpose.models.linkde import LinKDE, LinKDEConfig
    from structpose.train.data import load_splits
    from structpose.train.methods import HogMethod

    train = load_splits(cfg.data, cfg.cnn.in_size).train
    method = HogMethod(LinKDE(LinKDEConfig()))
    model = LinKDE(LinKDEConfig()).fit(method.dataset_features(train), train.poses3d)
    (folder / "linkde_knn").mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}, str(folder / "linkde_knn" / WEIGHTS))
    (folder / "linkde_knn" / "selection.json").write_text(json.dumps({"chosen": asdict(LinKDEConfig())}))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run folder: config.yaml, seed0/ with the network stages and LinKDE-kNN, and a results.json."""
    from structpose.train.pipeline import train_all

    tmp = tmp_path_factory.mktemp("release")
    store = make_store(tmp / "store", n_train=192, n_test=32)
    cfg = load_config("tiny", [f"data.root={store}", "methods=[cnn, ours_noft, ours]"])
    layout = RunLayout(tmp / "run")
    train_all(cfg, layout.seed(0).root)
    _fit_linkde_knn(cfg, layout.seed(0).root)
    layout.config.write_text(cfg.to_yaml())
    mean = {"mpjpe": 101.5, "n_mpjpe": 90.25, "p_mpjpe": 70.125}
    results = {"benchmark": "toy store; metrics: v1", "preset": "tiny", "git_commit": "abc123",
               "test": {"methods": {"ours": [{"mean": mean, "per_action_mpjpe": {"walk": 101.5}, "limb_ratio": {}}]},
                        "paired": []}}  # fmt: skip
    layout.results.write_text(json.dumps(results))
    return layout.root


@pytest.fixture(scope="module")
def released(run: Path) -> Path:
    return export_model(run, "ours", onnx=True)


@pytest.fixture(scope="module")
def crops(run: Path) -> np.ndarray:
    return PoseImageDataset(run.parent / "store", "test").images(np.arange(8))


def test_export_writes_the_released_folder_into_the_run(released: Path, run: Path) -> None:
    assert released == RunLayout(run).model("ours")
    assert {p.name for p in released.iterdir()} == {MODEL_JSON, WEIGHTS, ONNX}


@pytest.mark.parametrize("key", ["ours", "cnn", "ours_noft", "linkde_knn"])
def test_export_then_load_predicts_what_the_run_predicts(run: Path, crops: np.ndarray, key: str, tmp_path) -> None:
    out = export_model(run, key, tmp_path / key)
    model = structpose.load(out)
    expected = load_method(run, key).predict(crops)
    pred = model.predict_crops(crops)
    assert pred.poses.dtype == np.float32 and pred.poses.shape == (8, 17, 3)
    np.testing.assert_allclose(pred.poses, expected, rtol=0, atol=SAME_MODEL_MM)
    from_run = load(run, method=key)
    assert from_run.id == model.id and model.id.startswith(f"{key}-")
    np.testing.assert_allclose(from_run.predict_crops(crops).poses, expected, rtol=0, atol=SAME_MODEL_MM)
    if key == "ours":
        ds = PoseImageDataset(run.parent / "store", "test")
        np.testing.assert_allclose(model.predict_dataset(ds, chunk=10).poses, load_method(run, key).predict_dataset(ds),
                                   rtol=0, atol=SAME_MODEL_MM)  # fmt: skip


def test_model_json_describes_skeleton_units_input_data_licence_and_metrics(released: Path, run: Path) -> None:
    card = json.loads((released / MODEL_JSON).read_text())
    assert card["format"] == "structpose-model" and card["format_version"] == 1
    assert card["method"]["key"] == "ours" and card["method"]["label"] == "OURS, with FT"
    assert card["skeleton"]["joint_names"] == list(H36M.names) and card["skeleton"]["parents"] == list(H36M.parents)
    assert card["output"] == {"units": "mm", "frame": "root-relative, camera frame: x right, y down, z forward",
                              "shape": [17, 3]}  # fmt: skip
    inp = card["input"]
    assert (inp["image_size"], inp["center_crop"], inp["person_box_margin"]) == (32, 28, 0.2)
    assert inp["normalisation"]["mean"] == [0.485, 0.456, 0.406]
    assert set(card["architecture"]) == {"cnn", "ae"} and card["architecture"]["cnn"]["in_size"] == 32
    overrides = [f"data.root={run.parent / 'store'}", "methods=[cnn, ours_noft, ours]"]
    assert card["config"] == load_config("tiny", overrides).to_yaml()
    assert card["training_data"]["root"] == str(run.parent / "store") and card["license"].startswith("unknown")
    assert card["metrics"]["sets"]["test"]["mean_over_actions"]["mpjpe"] == 101.5
    assert card["benchmark"]["version"] == "toy store; metrics: v1"
    assert "MPJPE" in card["benchmark"]["metric_conventions"]
    assert "out of its domain on real photos" in card["model_card"]["out_of_domain"]
    assert card["files"]["weights_sha256"] == release.file_sha256(released / WEIGHTS)


def test_a_model_of_the_default_pose_library_inherits_cc_by_nc(run: Path, tmp_path, monkeypatch) -> None:
    attrs = {"created_by": "structpose data synth", "sources": "cmu,bandai", "protocol": "v2", "renderer_version": 1,
             "config": json.dumps({"margin": 0.25}), "license": "CMU ...; Bandai-Namco ..., CC BY-NC 4.0"}  # fmt: skip
    monkeypatch.setattr(release, "_store_attrs", lambda root: attrs)
    card = json.loads((export_model(run, "cnn", tmp_path / "cnn") / MODEL_JSON).read_text())
    assert card["license"].startswith("CC BY-NC 4.0") and "Bandai-Namco" in card["license"]
    assert card["input"]["person_box_margin"] == 0.25 and card["training_data"]["sources"] == "cmu,bandai"
    attrs["sources"] = "cmu"
    assert "free for any use" in release._licence(attrs)


def test_a_box_is_cut_as_the_training_crops_were(released: Path, crops: np.ndarray) -> None:
    model = load(released)
    crop = crops[0]
    canvas = np.random.default_rng(0).integers(0, 256, (100, 120, 3), dtype=np.uint8)
    canvas[30:62, 40:72] = crop  # the crop's square is [40, 72) x [30, 62)
    inner = 32 / 1.4  # the person box inside it: side / (1 + 2 * margin)
    box = (56 - inner / 2, 46 - inner / 2, inner, inner)
    cut = model.crop([canvas], [box])
    np.testing.assert_allclose(cut.crop_boxes[0], [40, 30, 32, 32], atol=1e-9)
    np.testing.assert_array_equal(cut.images[0], crop)
    by_box = model.predict(canvas, boxes=[box])
    np.testing.assert_array_equal(by_box.poses, model.predict_crops(crop[None]).poses)
    np.testing.assert_allclose(by_box.boxes[0], box)
    # a box at the corner: the crop's square reaches 8 px beyond the image, and that part is black
    corner = (8 - inner / 2, 8 - inner / 2, inner, inner)  # centred on (8, 8), the crop's centre (16, 16) less 8
    expected = crop.copy()
    expected[:8], expected[:, :8] = 0, 0
    np.testing.assert_array_equal(crop_person(np.ascontiguousarray(crop[8:, 8:]), corner, 32)[0], expected)
    # no box: the image is a crop already, padded to a square around its centre
    wide = np.zeros((32, 48, 3), np.uint8)
    wide[:, 8:40] = crop
    assert model.crop(wide).crop_boxes.tolist() == [[0, -8, 48, 48]]


def test_grey_rgba_and_16_bit_images_are_converted(released: Path, crops: np.ndarray) -> None:
    model = load(released)
    grey = crops[0, :, :, 1].copy()
    rgba = np.dstack([crops[1], np.full((32, 32), 255, np.uint8)])
    wide16 = crops[2].astype(np.uint16) * 257
    got = model.predict([grey, rgba, wide16]).poses
    want = model.predict_crops(np.stack([np.repeat(grey[..., None], 3, axis=2), crops[1], crops[2]])).poses
    np.testing.assert_array_equal(got, want)
    half = np.dstack([crops[3], np.full((32, 32), 0, np.uint8)])  # fully transparent: black
    np.testing.assert_array_equal(model.crop([half]).images[0], np.zeros((32, 32, 3), np.uint8))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, c: m.predict([c[0].astype(np.int64)]), "image 0: expected dtype uint8, uint16 or float"),
        (lambda m, c: m.predict([np.zeros((32, 32, 5), np.uint8)]), r"image 0: expected an \(H, W\)"),
        (lambda m, c: m.predict([c[0]], boxes=[(0, 0, 10, 10), (0, 0, 5, 5)]), "2 boxes for 1 images"),
        (lambda m, c: m.predict([c[0]], boxes=[(0, 0, 0, 10)]), "w, h > 0"),
        (lambda m, c: m.predict([c[0]], boxes=[(500, 500, 10, 10)]), "lies outside"),
        (lambda m, c: m.predict_crops(c[:, :31, :31]), r"expected crops \(N, 32, 32, 3\)"),
        (lambda m, c: m.predict_crops(c.astype(np.float32)), "expected uint8 crops"),
        (lambda m, c: m.predict(c[:2], batch_size=0), "batch_size"),
    ],
)
def test_wrong_inputs_say_what_was_expected(released: Path, crops: np.ndarray, call, match: str) -> None:
    model = load(released)
    with pytest.raises(ValueError, match=match) as err:
        call(model, crops)
    assert isinstance(err.value, InputError)


def save_images(folder: Path, crops: np.ndarray) -> list[Path]:
    """Two of the test crops as image files (a PNG, and a JPEG at twice the size)."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(crops[0]).save(folder / "a.png")
    Image.fromarray(crops[1]).resize((64, 64), Image.Resampling.NEAREST).save(folder / "b.jpg", quality=95)
    return [folder / "a.png", folder / "b.jpg"]


def test_cli_predict_images_reports_the_broken_file_and_writes_the_good_ones(
    released: Path, crops: np.ndarray, tmp_path, capsys
) -> None:
    good = save_images(tmp_path / "in", crops)
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(Image.open(good[0]).tobytes()[:50])
    code = main(["predict", str(good[0]), str(broken), str(good[1]), "--model", str(released),
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert f"skipped {broken}: " in err and "Traceback" not in err
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.png", "b.json", "b.png", "poses.npz"]
    doc = json.loads((out / "a.json").read_text())
    assert doc["joint_names"] == list(H36M.names) and doc["units"] == "mm" and doc["model"] == load(released).id
    assert doc["box"] == [0, 0, 32, 32] and doc["image"] == str(good[0]) and "camera frame" in doc["frame"]
    np.testing.assert_allclose(doc["poses_mm"], load(released).predict_crops(crops[:1]).poses[0], atol=1e-3)
    assert np.load(out / "poses.npz")["poses"].shape == (2, 17, 3)
    pytest.importorskip("plotly")
    assert main(["view", str(out / "a.json")]) == 0 and (out / "a.html").stat().st_size > 1e6


def render_test_clip(path: Path, n: int = 12, size: int = 64) -> list[np.ndarray]:
    """Render ``n`` consecutive frames of a held-out (test-split) sequence of the shipped pose library, one
    camera, one appearance, one background, and encode them with PyAV into an MP4; returns the frames."""
    from structpose.data.poselib import load_pose_library
    from structpose.data.protocol import protocol_splits
    from structpose.render import render_sample, sample_appearance, sample_camera

    av = pytest.importorskip("av")
    lib = load_pose_library()
    test = protocol_splits(lib, "v2") == "test"
    seq = next(s for s in np.unique(lib.sequence[test]) if np.sum(lib.sequence == s) >= n)
    frames = np.flatnonzero(lib.sequence == seq)
    frames = frames[np.argsort(lib.frame[frames])][:n]
    rng = np.random.default_rng(0)
    poses = lib.poses[frames].astype(np.float64)
    camera, appearance = sample_camera(rng, poses[0]), sample_appearance(rng)
    images = [render_sample(p, camera, appearance, np.random.default_rng(1), size).image for p in poses]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return images


def decoded(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]


def test_cli_predict_video_writes_per_frame_poses_and_a_video(released: Path, tmp_path) -> None:
    clip = tmp_path / "walk.mp4"
    render_test_clip(clip)
    frames = decoded(clip)
    assert len(frames) == 12
    assert main(["predict", str(clip), "--model", str(released), "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "walk.json").read_text())
    assert doc["frames"] == 12 and np.shape(doc["poses_mm"]) == (12, 17, 3) and doc["fps"] == 10
    np.testing.assert_allclose(doc["poses_mm"], load(released).predict(frames).poses, atol=1e-3)
    assert np.load(tmp_path / "out" / "walk.npz")["poses"].shape == (12, 17, 3)
    movie = decoded(tmp_path / "out" / "walk.mp4")
    assert len(movie) == 12 and movie[0].shape == (256, 3 * 256, 3)
    code = main(["predict", str(clip), "--model", str(released), "--out", str(tmp_path / "gif"), "--video-format",
                 "gif", "--box", "8,4,48,56"])  # fmt: skip
    assert code == 0 and Image.open(tmp_path / "gif" / "walk.gif").n_frames == 12
    assert json.loads((tmp_path / "gif" / "walk.json").read_text())["boxes"][3] == [8, 4, 48, 56]


def test_a_truncated_or_empty_video_is_reported_and_the_rest_go_through(released, crops, tmp_path, capsys) -> None:
    clip = tmp_path / "walk.mp4"
    render_test_clip(clip, n=4, size=32)
    (tmp_path / "cut.mp4").write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    (tmp_path / "empty.webm").write_bytes(b"")
    good = save_images(tmp_path / "in", crops)[:1]
    args = [str(tmp_path / "cut.mp4"), str(tmp_path / "empty.webm"), str(good[0]), str(clip)]
    assert main(["predict", *args, "--model", str(released), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'cut.mp4'}: " in err and f"skipped {tmp_path / 'empty.webm'}: " in err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["a.json", "a.png", "poses.npz", "walk.json", "walk.mp4", "walk.npz"]


def test_onnx_matches_pytorch_on_the_same_uint8_inputs(released: Path, crops: np.ndarray) -> None:
    pytest.importorskip("onnxruntime")
    torch_model, onnx_model = load(released), load(released, backend="onnx")
    assert onnx_model.backend.name == "onnx" and onnx_model.id == torch_model.id
    for batch in (1, 5):  # the ONNX graph's batch is dynamic
        np.testing.assert_allclose(onnx_model.predict_crops(crops, batch_size=batch).poses,
                                   torch_model.predict_crops(crops).poses, rtol=0, atol=ONNX_MM)  # fmt: skip


def test_the_onnx_backend_runs_without_torch(released: Path, crops: np.ndarray, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    files = save_images(tmp_path / "in", crops)
    script = f"""
import json, sys
sys.modules["torch"] = None  # any import of torch fails
import structpose
from structpose.cli import main
model = structpose.load({str(released)!r}, backend="onnx")
pred = model.predict({[str(p) for p in files]!r})
code = main(["predict", {str(files[0])!r}, "--model", {str(released)!r}, "--backend", "onnx",
             "--out", {str(tmp_path / "out")!r}])
print(json.dumps({{"poses": pred.poses.tolist(), "code": code, "torch": [m for m in sys.modules if m.startswith("torch")
                                                                         and sys.modules[m] is not None]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["code"] == 0 and got["torch"] == [] and (tmp_path / "out" / "a.json").is_file()
    np.testing.assert_allclose(got["poses"], load(released).predict(files).poses, rtol=0, atol=ONNX_MM)


def test_linkde_has_no_onnx_form(run: Path, tmp_path) -> None:
    with pytest.raises(InputError, match="not a network"):
        export_model(run, "linkde_knn", tmp_path / "l", onnx=True)
    out = export_model(run, "linkde_knn", tmp_path / "l")
    with pytest.raises(InputError, match="no ONNX form"):
        load(out, backend="onnx")


class _CreatesFile:
    """Unpickling this creates the file ``path``: what a malicious pickle could do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_nothing_is_unpickled_on_any_load_path(run: Path, released: Path, crops: np.ndarray, tmp_path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps({"state_dict": _CreatesFile(marker)})
    pickle.loads(payload)["state_dict"].close()  # the payload is live: unpickling it creates the file
    assert marker.is_file()
    marker.unlink()
    # a run folder whose checkpoints are pickles: loading and exporting read only config and safetensors
    planted_run = tmp_path / "run"
    shutil.copytree(run, planted_run, ignore=shutil.ignore_patterns("models"))
    for stage in (p for p in (planted_run / "seed0").iterdir() if p.is_dir()):
        (stage / "last.ckpt").write_bytes(payload)
    (planted_run / "seed0" / "model.ckpt").write_bytes(payload)
    load(planted_run).predict_crops(crops)
    export_model(planted_run, "ours", tmp_path / "exported")
    # a released folder whose weights are a pickle (its SHA-256 made to match): refused by safetensors
    planted = tmp_path / "planted"
    shutil.copytree(released, planted)
    for name in (WEIGHTS, ONNX):
        (planted / name).write_bytes(payload)
    card = json.loads((planted / MODEL_JSON).read_text())
    card["files"] |= {"weights_sha256": release.file_sha256(planted / WEIGHTS),
                      "onnx_sha256": release.file_sha256(planted / ONNX)}  # fmt: skip
    (planted / MODEL_JSON).write_text(json.dumps(card))
    (planted / "model.ckpt").write_bytes(payload)
    with pytest.raises(FormatError, match="model.safetensors: not the weights"):
        load(planted)
    if importlib.util.find_spec("onnxruntime") is not None:
        with pytest.raises(FormatError, match="onnxruntime cannot load it"):
            load(planted, backend="onnx").predict_crops(crops)
    assert not marker.exists()


def test_a_replaced_weights_file_is_refused(released: Path, run: Path, tmp_path) -> None:
    other = tmp_path / "other"
    shutil.copytree(released, other)
    shutil.copyfile(export_model(run, "ours_noft", tmp_path / "noft") / WEIGHTS, other / WEIGHTS)
    with pytest.raises(FormatError, match="SHA-256"):
        load(other)
    card = json.loads((other / MODEL_JSON).read_text())
    card["files"]["weights_sha256"] = release.file_sha256(other / WEIGHTS)
    (other / MODEL_JSON).write_text(json.dumps(card))
    with pytest.raises(FormatError, match="do not match the model id"):
        load(other)


def test_cli_export(run: Path, tmp_path, capsys) -> None:
    assert main(["export", str(run), "--model", "cnn", "--out", str(tmp_path / "cnn"), "--onnx"]) == 0
    assert "model.onnx" in capsys.readouterr().out and load(tmp_path / "cnn").method == "cnn"
    assert main(["export", str(run), "--model", "nonexistent"]) == 1
    assert "unknown method 'nonexistent'" in capsys.readouterr().err


def _has_gl() -> bool:
    from structpose.errors import ConfigError
    from structpose.render.gl import context

    try:
        context()
    except ConfigError:
        return False
    return True


def test_data_samples_writes_held_out_crops_and_a_clip_with_their_ground_truth(run: Path, released: Path, tmp_path):
    store = run.parent / "store"
    assert main(["data", "samples", str(store), "--out", str(tmp_path / "s"), "--count", "3"]) == 0
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == ["ground_truth.npz", "test_0000.png", "test_0016.png", "test_0031.png"]  # not rendered: no clip
    truth = np.load(tmp_path / "s" / "ground_truth.npz")
    np.testing.assert_array_equal(truth["poses"][1], PoseImageDataset(store, "test").poses3d[16])
    pytest.importorskip("av")
    from structpose.predict import _write_clip

    attrs = {"created_by": "structpose data synth", "pose_library": "structpose/assets/poselib_v1.npz",
             "sources": "cmu,bandai", "protocol": "v2"}  # fmt: skip
    clip, clip_truth = _write_clip(tmp_path / "s", attrs, frames=12, size=32, seed=0)
    assert len(decoded(clip)) == 12 and np.load(clip_truth)["poses"].shape == (12, 17, 3)
    if os.environ.get("STRUCTPOSE_REQUIRE_GL") == "1" or _has_gl():  # a store of mesh people: a mesh clip
        mesh_clip, mesh_truth = _write_clip(tmp_path / "m", {**attrs, "renderer": "mesh"}, frames=12, size=32, seed=0)
        lengths = H36M.bone_lengths(np.load(mesh_truth)["poses"])
        np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), rtol=1e-4)  # one body
        assert not np.allclose(lengths[0], H36M.bone_lengths(np.load(clip_truth)["poses"])[0], rtol=1e-2)
        assert len(decoded(mesh_clip)) == 12
    assert main(["predict", str(clip), "--model", str(released), "--out", str(tmp_path / "p")]) == 0
