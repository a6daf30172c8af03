"""The paper's tables, transcribed: cells and the six-action means the issue computed by hand."""

import pytest

from structpose.paper import paper_ratios, paper_table1, paper_tables


def test_table1_cells_and_means() -> None:
    t1 = paper_table1()
    assert t1["OURS"]["Walking"] == 65.75 and t1["LinKDE [Ionescu et al. 2014]"]["Photo"] == 206.45
    expected = {
        "OURS": 116.77,
        "DconvMP-HML [Li & Chan 2014]": 132.21,
        "LinKDE [Ionescu et al. 2014]": 159.87,
        "StructNet-Max [Li, Zhang & Chan 2015]": 134.45,
        "StructNet-Avg [Li, Zhang & Chan 2015]": 120.17,
    }
    for row, mean in expected.items():
        assert t1[row]["mean"] == pytest.approx(mean, abs=0.005)


def test_table2_and_the_ratios_the_benchmark_tests() -> None:
    t2 = paper_tables()["table2"]["rows"]
    assert t2["OURS with FT"] == [0.77, 5.43, 11.90] and t2["KDE"][0] == 1.02
    ratios = paper_ratios()
    assert ratios["ours/cnn"] == pytest.approx(116.77 / 132.21, abs=1e-4)
    assert ratios["cnn/linkde"] == pytest.approx(0.827, abs=1e-3)


def test_the_report_prints_the_papers_numbers_beside_ours_on_shared_actions() -> None:
    import numpy as np

    from structpose.report import TestSetResults, evaluate, paper_section

    rng = np.random.default_rng(0)
    gt = rng.normal(0, 200, (8, 17, 3))
    actions = np.array(["Walking"] * 4 + ["Eating"] * 4)
    evals = {k: [evaluate(gt + rng.normal(0, s, gt.shape), gt, actions) for _ in range(2)]
             for k, s in (("ours", 10), ("cnn", 20), ("linkde", 30))}  # fmt: skip
    results = TestSetResults("test", actions, np.array(["s"] * 8), evals)
    text = "\n".join(paper_section(results, human36m=True))
    assert "| OURS, with FT / CNN (direct) | 0.883 |" in text
    assert "| Walking | 65.8 |" in text and "| Eating | 91.4 |" in text  # a Human3.6M run: the paper's numbers
    embedded = "\n".join(paper_section(results))  # the embedded default borrows the names: ratios only
    assert "0.883" in embedded and "| Walking |" not in embedded


def test_the_report_names_its_methods_and_those_left_out_and_prints_the_papers_table2() -> None:
    from structpose.report import methods_section, paper_table2

    text = "\n".join(methods_section({"cnn": [], "ours": []}))
    assert "**CNN (direct)**: the paper CNN" in text and "DconvMP-HML" in text
    assert "Not run" in text and "StructNet-Max" in text and "LinKDE" in text
    table = "\n".join(paper_table2())
    assert "| OURS with FT | 0.77 | 5.43 | 11.90 |" in table and "| KDE | 1.02 | 7.18 | 16.43 |" in table


def test_the_regime_figure_marks_the_papers_ratio_for_ours_over_cnn(tmp_path, monkeypatch) -> None:
    import numpy as np

    from structpose import viz
    from structpose.report import TestSetResults, evaluate, regime_figure

    rng = np.random.default_rng(1)
    gt = rng.normal(0, 200, (6, 17, 3))
    actions = np.array(["Walking"] * 6)
    evals = {k: [evaluate(gt + rng.normal(0, s, gt.shape), gt, actions) for _ in range(3)]
             for k, s in (("ours", 10), ("cnn", 20), ("ours_noft", 15))}  # fmt: skip
    sets = [TestSetResults(name, actions, np.array(["s"] * 6), evals) for name in ("test", "occluded")]
    drawn: list[float | None] = []
    real = viz.ratio_reference_lines
    monkeypatch.setattr(viz, "ratio_reference_lines", lambda ax, paper=None: drawn.append(paper) or real(ax, paper))
    assert regime_figure(sets, tmp_path / "r.png").stat().st_size > 1000
    assert regime_figure(sets, tmp_path / "n.png", a="ours_noft").is_file()
    assert drawn == [pytest.approx(paper_ratios()["ours/cnn"]), None]  # the paper's claim is about OURS-FT only
    one_seed = [TestSetResults("test", actions, np.array(["s"] * 6), {k: v[:1] for k, v in evals.items()})]
    assert regime_figure(one_seed, tmp_path / "one.png") is None  # no CI from one seed: no figure


def test_the_regime_figure_is_redrawn_from_a_results_json_alone(tmp_path) -> None:
    import json

    import numpy as np

    from structpose.errors import InputError
    from structpose.report import (
        RunSummary,
        TestSetResults,
        evaluate,
        results_json,
        results_per_seed,
        write_regime_figure,
    )

    rng = np.random.default_rng(2)
    gt = rng.normal(0, 200, (6, 17, 3))
    actions = np.array(["Walking", "Greeting"] * 3)
    evals = {k: [evaluate(gt + rng.normal(0, s, gt.shape), gt, actions) for _ in range(3)]
             for k, s in (("ours", 10), ("cnn", 20))}  # fmt: skip
    sets = [TestSetResults(n, actions, np.array(["a", "b", "c"] * 2), evals) for n in ("test", "truncated", "unseen")]
    run = RunSummary("quick", "x: 1\n", "data", 3, 1.0, {}, "v2", sets[0], sets[1:])
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_json(run)))
    per_seed = results_per_seed(json.loads(path.read_text()))
    assert list(per_seed) == ["test", "unseen", "truncated"]  # Table 1's set first, then TEST_SETS' order
    assert per_seed["unseen"]["cnn"] == pytest.approx([e.mean["mpjpe"] for e in evals["cnn"]])
    assert write_regime_figure(path, tmp_path / "r.png").stat().st_size > 1000
    one = json.loads(path.read_text())
    for name in ("test", "unseen", "truncated"):
        one[name]["methods"] = {k: v[:1] for k, v in one[name]["methods"].items()}
    (tmp_path / "one.json").write_text(json.dumps(one))
    (tmp_path / "grid.json").write_text(json.dumps({"rows": []}))
    for bad, says in (("one.json", "two or more seeds"), ("grid.json", "no test set"), ("none.json", "cannot read")):
        with pytest.raises(InputError, match=says) as err:
            write_regime_figure(tmp_path / bad, tmp_path / "x.png")
        assert bad in str(err.value)
    assert not (tmp_path / "x.png").exists()
