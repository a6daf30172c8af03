"""The command line end to end on the tiny preset: data synth, data show, reproduce (and its refusals)."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from structpose.cli import main


@pytest.mark.slow
def test_reproduce_runs_end_to_end_on_the_tiny_preset(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--preset", "tiny", "--out", "run"]) == 0
    run = tmp_path / "run"
    report = (run / "report.md").read_text()
    for needle in (
        "Table 1 analogue",
        "Table 2 analogue",
        "LinKDE",
        "CNN (direct)",
        "StructNet-Max",
        "StructNet-Avg",
        "OURS, with FT",
        "figure2.png",
        "Unseen motions",
        "Mean training pose",
        "oracle",
        "Paired differences",
        "protocol v2",
        "N-MPJPE",
        "Occlusion at test time",
        "Truncation at test time",
        "All test sets at a glance",
        "| seed0 | direct |",  # the convergence table: every logged stage of the seed
        "| seed0 | latent |",
    ):
        assert needle in report, needle
    assert "unresolved (one seed)" in report  # one seed: no CI over seeds, and the report says so
    assert "– (one seed)" in report and "+nan" not in report and "[nan" not in report  # not as NaN
    for name in ("figure2.png", "loss_curves.png", "config.yaml", "environment.json", "results.json"):
        assert (run / name).stat().st_size > 0
    # the run's OURS and CNN as released models, loadable on their own, with the run's test metrics
    import structpose

    for key in ("ours", "cnn"):
        card = json.loads((run / "models" / key / "model.json").read_text())
        assert card["method"]["key"] == key and card["metrics"]["sets"]["test"]["mean_over_actions"]["mpjpe"] > 0
    released = structpose.load(run / "models" / "ours")
    results = json.loads((run / "results.json").read_text())
    # every stage with two validations or more (tiny's fine-tuning has one epoch: nothing to tell)
    assert {r["stage"] for r in results["convergence"]} >= {"ae_finetune", "latent", "direct"}
    assert {"ours", "cnn", "linkde", "linkde_knn", "mean_pose", "oracle"} <= set(results["test"]["methods"])
    saved = np.load(run / "seed0" / "predictions.npz")
    preds = {k.split("/")[1]: saved[k] for k in saved.files if k.startswith("test/")}
    assert preds["ours"].shape == (48, 17, 3) and np.isfinite(preds["ours"]).all()
    assert saved["unseen/ours"].shape == (16, 17, 3)
    assert not np.allclose(saved["occluded/ours"], saved["test/ours"])  # the damaged images change predictions
    assert not np.allclose(saved["truncated/ours"], saved["test/ours"])  # and so do the truncated ones
    # the trained network runs on image files: the same poses as in the report for the same crops
    from PIL import Image

    from structpose.data.dataset import PoseImageDataset

    test = PoseImageDataset(tmp_path / "data/synth/tiny-v2-mesh", "test")
    files = []
    for i in (0, 5):
        files.append(tmp_path / f"crop{i}.png")
        Image.fromarray(test.images([i])[0]).save(files[-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    code = main(["predict", *map(str, files), str(tmp_path / "broken.png"), "--run", "run", "--out", "pred", "--onnx"])
    assert code == 1  # one file was bad, the others went through
    got = np.load(tmp_path / "pred/poses.npz")
    # not like with like: a batch of 2 on a freshly loaded (contiguous) net against the report's batch of
    # 256 on the trained channels_last net, i.e. other float32 conv kernels: a few ulps at ~700 mm (4e-6 mm
    # measured); 1e-2 mm leaves room for other CPUs' kernels and still catches a wrong crop or normalisation
    np.testing.assert_allclose(got["poses"], preds["ours"][[0, 5]], rtol=0, atol=1e-2)
    # the released model predicts the same poses for the same crops (same tolerance, same reason)
    np.testing.assert_allclose(released.predict_crops(test.images([0, 5])).poses, preds["ours"][[0, 5]], rtol=0,
                               atol=1e-2)  # fmt: skip
    assert (tmp_path / "pred/poses.png").is_file() and (tmp_path / "pred/ours.onnx").is_file()
    # the embedded dataset was rendered where the preset points, and is reused
    assert (tmp_path / "data/synth/tiny-v2-mesh/train.h5").is_file()
    assert main(["reproduce", "--preset", "tiny", "--out", "run"]) == 1  # refused: the folder holds a run
    assert "exists" in (err := capsys.readouterr().err) and "--resume" in err and "Traceback" not in err
    # a resumed run reloads the finished stages, reports again, and can add ablations (2 seeds: seed 0 is
    # the main run's, reused; seed 1 is trained)
    assert main(["reproduce", "--preset", "tiny", "--out", "run", "--resume", "--ablations", "preset"]) == 0
    again = np.load(run / "seed0" / "predictions.npz")
    # every model reloaded, none retrained
    for key in ("linkde", "linkde_knn", "cnn", "structnet_max", "structnet_avg", "ours"):
        # bit-exact is sound: the same weights (float32 files), batch size (256) or LinKDE chunk, memory
        # format and thread count as in the first run, so the same kernels
        np.testing.assert_array_equal(again[f"test/{key}"], preds[key])
    table = (run / "ablations.md").read_text()
    assert "| reference | the preset |" in table and "OURS/CNN" in table
    # the grid's JSON stands without its run folder: benchmark version, command, base config and its hash
    grid = json.loads((run / "ablations.json").read_text())
    assert "protocol v2" in grid["benchmark"] and {"command", "git_commit"} <= grid.keys()
    assert grid["base_config_sha256"] == hashlib.sha256(grid["base_config"].encode()).hexdigest()
    assert [r["key"] for r in grid["rows"]] == ["preset"] and len(grid["rows"][0]["mpjpe"]["cnn"]) == 3
    # seed 0 of the setting is the main run's (its stages taken, none trained); seeds 1 and 2 are trained
    reused = run / "ablations" / "preset" / "seed0" / "direct"
    assert (reused / "model.safetensors").read_bytes() == (run / "seed0" / "direct" / "model.safetensors").read_bytes()
    assert not (reused / "last.ckpt").exists()
    assert (run / "ablations" / "preset" / "seed2" / "direct" / "last.ckpt").is_file()
    # methods=[]: a grid without a main run (no LinKDE, no report.md); refused without --ablations
    assert main(["reproduce", "--preset", "tiny", "--set", "methods=[]", "--out", "none"]) == 1
    assert "methods=[] trains nothing" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main(["reproduce", "--preset", "tiny", "--set", "methods=[]", "--ablations", "lam0", "--out", "grid"]) == 0
    assert "ablation table: grid/ablations.md" in capsys.readouterr().out
    assert not (tmp_path / "grid" / "report.md").exists() and not (tmp_path / "grid" / "seed0").exists()
    only = json.loads((tmp_path / "grid" / "ablations.json").read_text())
    assert [r["key"] for r in only["rows"]] == ["lam0"] and len(only["rows"][0]["mpjpe"]["ours"]) == 3
    assert only["base_config"] == grid["base_config"]  # so it merges with the grids of full runs


@pytest.mark.slow
def test_data_show_and_module_entry_point(tmp_path):
    out = tmp_path / "d"
    cmd = [sys.executable, "-m", "structpose", "data", "synth", "--preset", "tiny", "--out", str(out),
           "--train-images", "8", "--test-images", "4", "--workers", "1"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / "samples.png").is_file()
    assert main(["data", "show", str(out), "--split", "test", "--count", "3"]) == 0
    assert (out / "test_samples.png").is_file()


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["data", "synth", "--shard", "4/2"])
    assert "--shard" in capsys.readouterr().err
    assert main(["reproduce", "--preset", "nonexistent"]) == 1
    assert capsys.readouterr().err.startswith("structpose: error: 'nonexistent' is neither a preset")
