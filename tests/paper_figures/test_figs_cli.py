"""The CLI: --list, --only, missing inputs reported (not raised), exit status."""

from __future__ import annotations

from pathlib import Path

from paper_figures.__main__ import main
from paper_figures.registry import ITEMS


def test_figs_cli_list(capsys) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for it in ITEMS:
        assert it.name in out


def test_figs_cli_missing_is_reported(tmp_path: Path, capsys) -> None:
    rc = main(["--results", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
               "--only", "fig3", "--only", "table2", "--only", "fig6"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "fig3: missing" in err and "python -m flows.experiments.likelihood_gap" in err
    assert "python -m flows.experiments.attacks --run models/mnist-split-cpu" in err
    assert "snakemake --cores 1 results/bg_mnist/table3.json" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_figs_cli_all_present(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["--results", str(results_dir), "--out", str(out), "--only", "fig4",
                 "--only", "table1"]) == 0
    assert (out / "fig4_interpolation.png").stat().st_size > 1000
    assert (out / "table1.md").is_file() and (out / "table1.tex").is_file()


def test_figs_cli_theory_from_cache(tmp_path: Path) -> None:
    """A theory figure plots from its cache (made by the current code: its fingerprint) without
    recomputing."""
    import json

    from paper_figures import theory

    res = tmp_path / "results"
    (res / "theory").mkdir(parents=True)
    cache = {"figure": "tv_vs_d", "eps": "0.1", "delta": "1e-3",
             "series": [{"Delta": "0.1", "d_star": 201,
                         "rows": [{"d": 201, "log10_tv": 2.1, "lower_bound": 33.5},
                                  {"d": 402, "log10_tv": 2.4, "lower_bound": 67.0}]}],
             "fingerprint": theory.fingerprint(theory.compute_tv)}
    (res / "theory" / "tv_vs_d.json").write_text(json.dumps(cache))
    assert main(["--results", str(res), "--out", str(tmp_path / "o"), "--only", "theory_tv"]) == 0
    assert json.loads((res / "theory" / "tv_vs_d.json").read_text()) == cache
    assert (tmp_path / "o" / "theory_total_variation.pdf").is_file()
