"""The convergence check of a run's report: how much each stage's validation MPJPE still moved over the last
20% of its optimizer steps, read from its Lightning CSV logs."""

import csv

import pytest

from structpose.report import convergence, convergence_section, plateau


def test_plateau_of_a_falling_and_of_a_flat_curve():
    falling = [(100, 200.0), (200, 150.0), (300, 130.0), (400, 120.0), (500, 110.0)]
    got = plateau(falling)
    # the last 20% of 500 steps start after step 400: the value there is 120, the end 110
    assert got["steps"] == 500 and got["start"] == 120.0 and got["end"] == 110.0
    assert got["change"] == pytest.approx(-10 / 120) and not got["flat"]
    flat = plateau([(100, 200.0), (400, 100.0), (500, 99.5)])
    assert flat["change"] == pytest.approx(-0.005) and flat["flat"]
    # a curve that rose at the end is not flat either; one point tells nothing
    assert not plateau([(10, 100.0), (50, 102.0)])["flat"]
    assert plateau([(10, 100.0)]) is None
    assert not got["stuck"] and not flat["stuck"]
    # a network that never left its first validation error (a dead one predicts the mean pose) is flat and stuck
    dead = plateau([(100, 199.9), (200, 199.9), (300, 199.7), (400, 199.9), (500, 199.9)])
    assert dead["flat"] and dead["stuck"]


def test_plateau_uses_the_last_value_logged_before_the_window():
    # validation every 3 steps: nothing is logged at step 8 (80% of 10), so the value of step 6 is taken
    got = plateau([(3, 50.0), (6, 40.0), (9, 39.0), (10, 38.0)])
    assert got["start"] == 40.0 and got["change"] == pytest.approx(-0.05)


def _log(path, rows):
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["epoch", "step", "train/loss_step", "val/mpjpe_mm"])
        w.writerows(rows)


def test_convergence_of_a_run_folder_joins_the_attempts_of_a_resumed_stage(tmp_path):
    seed = tmp_path / "seed0" / "logs"
    # a resumed direct CNN: its first attempt logged epochs 0-2, the second 3-4
    _log(seed / "direct" / "version_0" / "metrics.csv", [[0, 10, 1.0, ""], [0, 10, "", 150.0], [1, 20, "", 120.0],
                                                         [2, 30, "", 110.0]])  # fmt: skip
    _log(seed / "direct" / "version_1" / "metrics.csv", [[3, 40, "", 101.0], [4, 50, "", 100.5]])
    _log(seed / "latent" / "version_0" / "metrics.csv", [[0, 5, 2.0, ""]])  # no validation: left out
    (tmp_path / "seed1").mkdir()  # a seed folder with no logs yet
    rows = convergence(tmp_path)
    assert [(r["seed"], r["stage"]) for r in rows] == [("seed0", "direct")]
    assert rows[0]["start"] == 101.0 and rows[0]["end"] == 100.5 and rows[0]["flat"]
    text = "\n".join(convergence_section(rows))
    assert "| seed0 | direct | 50 | 101.0 | 100.5 | -0.5% | yes | no |" in text
    assert "flat (and had learned) in 1 of 1 seed(s); it never left its first value in 0" in text
    assert "mean over seeds (what a choice between runs is made on): direct 100.5 mm (1)." in text
    assert convergence_section([]) == []


def test_convergence_lists_stages_in_pipeline_order(tmp_path):
    logs = tmp_path / "seed0" / "logs"
    for stage in ("direct", "finetune", "latent", "ae_pretrain1", "ae_finetune", "ae_pretrain0"):
        _log(logs / stage / "version_0" / "metrics.csv", [[0, 10, "", 150.0], [1, 20, "", 120.0]])
    _log(tmp_path / "seed1" / "logs" / "direct" / "version_0" / "metrics.csv", [[0, 10, "", 150.0], [1, 20, "", 110.0]])
    rows = convergence(tmp_path)
    stages = [r["stage"] for r in rows if r["seed"] == "seed0"]
    assert stages == ["ae_pretrain0", "ae_pretrain1", "ae_finetune", "latent", "finetune", "direct"]
    assert "finetune 120.0 mm (1), direct 115.0 mm (2)." in "\n".join(convergence_section(rows))
