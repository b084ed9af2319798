"""paper_figures.summary: the tables are built from stored experiment JSON only."""

from __future__ import annotations

import json

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


def test_a_result_lacking_a_field_is_named_among_good_ones(tiny_run, data_dir, tmp_path,
                                                           run_cli) -> None:
    """Of two likelihood-gap results, the one without what the table reads is the one named;
    a results folder with nothing to tabulate is an error, not an empty page."""
    from flows.experiments import likelihood_gap

    d = tmp_path / "results" / "likelihood_gap"
    d.mkdir(parents=True)
    assert likelihood_gap.main(["--run", str(tiny_run), "--out", str(d / "good.json"),
                                "--data-dir", str(data_dir), "--draws", "1"]) == 0
    (d / "bad.json").write_text('{"experiment": "likelihood_gap", "draws": 4}')
    rc, err = run_cli(summarize.main, ["--results", str(tmp_path / "results")])
    err = [e for e in err if "scoring" not in e]  # likelihood_gap's progress above
    assert rc == 1 and len(err) == 1 and "bad.json: missing 'dataset'" in err[0], err
    # a field in the wrong range is refused as python -m paper_figures refuses it (it was
    # tabulated: 'n test -5'; found by fuzzing)
    bad = json.loads((d / "good.json").read_text()) | {"n_test": -5}
    (d / "bad.json").write_text(json.dumps(bad))
    rc, err = run_cli(summarize.main, ["--results", str(tmp_path / "results")])
    assert rc == 1 and len(err) == 1 and "bad.json: 'n_test' is int '-5'" in err[0], err
    (tmp_path / "none").mkdir()
    rc, err = run_cli(summarize.main, ["--results", str(tmp_path / "none")])
    assert rc == 1 and len(err) == 1 and "no results to tabulate" in err[0], err


def test_summary_out_is_markdown(tmp_path, capsys) -> None:
    """``--out`` names a markdown file: a JSON result or a model's config.json given as --out
    was replaced by the tables with exit 0 (found by fuzzing); refused, one line, exit 2."""
    import pytest

    target = tmp_path / "table3.json"
    target.write_text("{}")
    with pytest.raises(SystemExit) as exc:
        summarize.main(["--results", str(tmp_path), "--out", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "name it *.md" in err[0], err
    assert target.read_text() == "{}"
