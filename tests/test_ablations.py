"""The ablation grid's bookkeeping: which folders a setting may take stages from, whose AE log gives its
penalty share, and the provenance that lets ``ablations.json`` stand without its run folder."""

import json
from pathlib import Path

import pytest

from structpose.ablations import ABLATIONS, _reuse, penalty_share
from structpose.cli import main
from structpose.train.config import load_config
from structpose.train.layout import RunLayout, SeedLayout


def test_a_setting_may_take_stages_from_the_main_run_and_every_other_setting(tmp_path: Path) -> None:
    run = RunLayout(tmp_path)
    folders = _reuse(run, "data5", 2)
    assert folders[0].root == run.seed(2).root  # the main run first
    roots = {f.root for f in folders}
    assert run.ablation("poses_data5", 2).root in roots  # the CNN of poses_data5 is data5's (same inputs)
    assert run.ablation("data5", 2).root not in roots  # not itself
    assert all(f.root.name == "seed2" for f in folders) and len(folders) == len(ABLATIONS)


def _folder(root: Path, overrides: list[str], loss: float | None) -> SeedLayout:
    """A pipeline folder with a config and, given ``loss``, an AE fine-tuning log whose last validation
    row has ``val/loss = loss`` and ``val/contractive = 2``."""
    folder = SeedLayout(root)
    root.mkdir(parents=True)
    folder.config.write_text(load_config("tiny", overrides).to_yaml())
    if loss is not None:
        log = folder.logs / "ae_finetune" / "version_0" / "metrics.csv"
        log.parent.mkdir(parents=True)
        log.write_text(f"step,val/loss,val/contractive\n1,9.0,1.0\n2,{loss},2.0\n")
    return folder


def test_the_penalty_share_is_read_from_the_log_of_the_ae_the_setting_used(tmp_path: Path) -> None:
    lam = ["ae.lam=1", "data.train_fraction=0.05"]
    own = _folder(tmp_path / "own", lam, None)  # its AE was taken from another folder: no log here
    main = _folder(tmp_path / "main", [], 4.0)  # another AE (lambda 0.1): its log must not be read
    source = _folder(tmp_path / "source", [*lam, "structnet.embed_dim=512"], 8.0)  # another StructNet, the same AE
    cfg = load_config(own.config)
    # lam * contractive / loss of the last row of the source's log
    assert penalty_share((own, main, source), cfg) == pytest.approx(1 * 2.0 / 8.0)
    assert penalty_share((own, main), cfg) != penalty_share((own, main), cfg)  # NaN: no log of its AE


def _grid(path: Path, rows: list[tuple[str, list[float], list[float]]], benchmark: str = "protocol v2",
          root: str = "/a") -> Path:  # fmt: skip
    """A grid file as ``reproduce --ablations`` writes it, with rows (key, OURS-FT per seed, CNN per seed)."""
    base = load_config("tiny", [f"data.root={root}"]).to_yaml()
    grid = {"benchmark": benchmark, "git_commit": "0123456789abcdef", "command": "structpose reproduce",
            "base_config_sha256": "", "base_config": base, "seeds": 3,
            "rows": [{"key": k, "regime": ABLATIONS[k].regime, "name": ABLATIONS[k].name,
                      "overrides": list(ABLATIONS[k].overrides), "penalty_share": [0.1] * len(o),
                      "mpjpe": {"ours": o, "ours_noft": o, "cnn": c}} for k, o, c in rows]}  # fmt: skip
    path.write_text(json.dumps(grid))
    return path


def test_grids_of_several_runs_make_one_table_and_figure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _grid(tmp_path / "a.json", [("data5", [90.0, 100.0, 110.0], [100.0, 100.0, 100.0])])
    # another run (its store elsewhere), a setting of its own and one already in a.json (a's is kept)
    b = _grid(tmp_path / "b.json", [("lam1", [80.0, 81.0, 82.0], [100.0, 100.0, 100.0]),
                                    ("data5", [1.0, 1.0, 1.0], [100.0, 100.0, 100.0])], root="/b")  # fmt: skip
    assert main(["ablations", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "ablations.md").read_text()
    # ratios 0.9, 1.0, 1.1: mean 1, half-width t(0.975, 2) * 0.1 / sqrt(3) = 4.303 * 0.0577 = 0.248
    assert "| 1.000 [0.752, 1.248] | no |" in table
    assert "| 0.810 [0.785, 0.835] | yes: OURS better |" in table  # 0.80, 0.81, 0.82
    assert str(a) in table and str(b) in table and "0123456789" in table
    assert (tmp_path / "out" / "ablations.png").stat().st_size > 1000
    # rows in the order of ABLATIONS (data5 before lam1), whichever file comes first
    assert main(["ablations", str(b), str(a), "--out", str(tmp_path / "ba")]) == 0
    swapped = (tmp_path / "ba" / "ablations.md").read_text()
    assert swapped.index("| scarce images |") < swapped.index("| the prior |")
    assert "| 0.010 [0.010, 0.010] |" in swapped  # the first file's data5 (b's) is the one kept
    capsys.readouterr()
    other = _grid(tmp_path / "c.json", [("lam0", [1.0, 2.0], [2.0, 2.0])], benchmark="protocol v1")
    broken = tmp_path / "d.json"
    broken.write_text("{not json")
    for bad, why in ((other, "benchmark"), (broken, "not a grid")):
        assert main(["ablations", str(a), str(bad), "--out", str(tmp_path / "x")]) == 1
        err = capsys.readouterr().err
        assert str(bad) in err and why in err and "Traceback" not in err
