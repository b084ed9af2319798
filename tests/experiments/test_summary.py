"""paper_figures.summary: the tables are built from stored experiment JSON only."""

from __future__ import annotations

from flows.experiments import interpolation, likelihood_gap
from paper_figures import summary as summarize


def test_tables_from_stored_json(tiny_run, data_dir, tmp_path, capsys) -> None:
    res = tmp_path / "results"
    common = ["--run", str(tiny_run), "--data-dir", str(data_dir), "--draws", "1"]
    assert likelihood_gap.main([*common, "--out", str(res / "likelihood_gap" / "t.json")]) == 0
    out_i = res / "interpolation" / "t.json"
    assert (
        interpolation.main([*common, "--out", str(out_i), "--n-pairs", "2", "--n-alphas", "5"]) == 0
    )
    capsys.readouterr()
    assert summarize.main(["--results", str(res)]) == 0
    text = capsys.readouterr().out
    assert "### Figure 3" in text and "### Figures 1/4" in text
    assert "| t |" in text  # rows are named by the result file


def test_malformed_results_are_one_line_naming_the_file(tmp_path, run_cli) -> None:
    for name, text in {"empty": "{}", "nan": '{"experiment": "attacks", "x": NaN}',
                       "list": "[1]", "truncated": '{"experiment": "att'}.items():
        d = tmp_path / name / "attacks"
        d.mkdir(parents=True)
        (d / "x.json").write_text(text)
        rc, err = run_cli(summarize.main, ["--results", str(tmp_path / name)])
        assert rc == 1 and len(err) == 1 and "x.json" in err[0], (name, err)
