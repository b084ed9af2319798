"""summarize: markdown tables are built from stored JSON only."""

from __future__ import annotations

from flows.experiments import interpolation, likelihood_gap, summarize


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
