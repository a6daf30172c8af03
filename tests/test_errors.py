"""The command line's one error boundary, full disks, and run folders that survive a failure."""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from test_train import make_store

from structpose.cli import main
from structpose.data.store import shard_path
from structpose.errors import ConfigError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"), n_train=96, n_test=16)


def _one_line(capsys: pytest.CaptureFixture, *parts: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("structpose: error: ") and "Traceback" not in "\n".join(err), err
    for part in parts:
        assert part in err[-1], (part, err[-1])
    return err[-1]


def test_a_project_error_is_one_line_and_exit_1(capsys, tmp_path: Path) -> None:
    assert main(["reproduce", "--preset", str(tmp_path / "nope.yaml")]) == 1
    _one_line(capsys, "nope.yaml", "neither a preset")
    assert main(["data", "show", str(tmp_path / "missing")]) == 1
    _one_line(capsys, "missing", "rebuild it")


def test_debug_and_the_environment_variable_show_the_stack(monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        main(["--debug", "reproduce", "--preset", str(tmp_path / "nope.yaml")])
    monkeypatch.setenv("STRUCTPOSE_DEBUG", "1")
    with pytest.raises(ConfigError):
        main(["reproduce", "--preset", str(tmp_path / "nope.yaml")])


@pytest.mark.slow
def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "structpose", "data", "show", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("structpose: error:") and len(done.stderr.strip().splitlines()) == 1


def test_synth_out_naming_a_file_is_refused(capsys, tmp_path: Path) -> None:
    assert main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "x.h5")]) == 1
    _one_line(capsys, "x.h5", "dataset directory")
    assert not (tmp_path / "x.h5").exists()


def test_synth_refuses_to_start_on_a_disk_too_full(capsys, monkeypatch, tmp_path: Path) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage._replace(free=10_000))
    assert main(["data", "synth", "--preset", "tiny", "--out", str(tmp_path / "d")]) == 1
    _one_line(capsys, str(tmp_path / "d"), "MiB but only 0 MiB are free")
    assert not (tmp_path / "d").exists()


def test_a_full_disk_while_writing_a_store_loses_nothing(monkeypatch, tmp_path: Path) -> None:
    path = shard_path(tmp_path, "train")
    make_store(tmp_path, n_train=16, n_test=4)
    before = path.read_bytes()

    def full(self, key, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    with pytest.raises(OSError, match="train.h5: no space left on the device") as caught:
        make_store(tmp_path, n_train=16, n_test=4)
    assert caught.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def test_an_import_that_imported_nothing_exits_non_zero(capsys, tmp_path: Path) -> None:
    root = tmp_path / "H36M"
    (root / "S1/MyPoseFeatures/D3_Positions").mkdir(parents=True)
    (root / "S1/Videos").mkdir(parents=True)
    (root / "S1/MyPoseFeatures/D3_Positions/Walking 1.cdf").write_bytes(b"\xcd\xf3\x00\x01 broken")
    (root / "S1/Videos/Walking 1.54138969.mp4").write_bytes(b"not a video")
    assert main(["data", "h36m", "--root", str(root), "--out", str(tmp_path / "out"), "--workers", "0"]) == 1
    _one_line(capsys, "no sequence was imported")


def _reproduce(store: Path, out: Path, *extra: str) -> int:
    return main(["reproduce", "--preset", "tiny", "--data", str(store), "--out", str(out), *extra])


def test_a_refused_resume_writes_nothing(capsys, store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("ae: {lam: 0.5}\n")
    (run / "environment.json").write_text('{"sentinel": 1}')
    assert _reproduce(store, run, "--resume") == 1
    _one_line(capsys, "config.yaml", "differs")
    assert (run / "config.yaml").read_text() == "ae: {lam: 0.5}\n"
    assert (run / "environment.json").read_text() == '{"sentinel": 1}'


def test_a_run_that_failed_before_training_can_be_retried_as_it_was(capsys, store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    bad = ["--set", "data.actions=[swim]"]  # no such action: the run fails while loading its splits
    assert _reproduce(store, run, *bad) == 1
    _one_line(capsys, "no sample of the actions", "nothing was trained yet")
    assert (run / "FAILED.txt").is_file()
    assert _reproduce(store, run, *bad) == 1  # the identical retry runs (and fails the same way), not "exists"
    _one_line(capsys, "no sample of the actions")


def test_a_run_that_failed_while_training_says_how_to_resume(capsys, store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _reproduce(store, run, "--set", "ae_finetune.lr=1e10") == 1
    line = _one_line(capsys, "stage 'ae_finetune'", "--resume", str(run))
    assert "FAILED" not in line and "TrainingError" in (run / "FAILED.txt").read_text()
    assert (run / "seed0/ae_pretrain1/model.safetensors").is_file()  # what was trained is kept
    assert not (run / "seed0/ae_finetune/model.safetensors").exists()
    assert _reproduce(store, run, "--set", "ae_finetune.lr=1e10") == 1  # a plain retry would overwrite: refused
    _one_line(capsys, "exists", "--resume")
