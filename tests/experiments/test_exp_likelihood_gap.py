"""Figure 3 experiment end to end on the tiny model and synthetic data."""

from __future__ import annotations

import json
import math

import numpy as np

from flows.experiments import likelihood_gap

KEYS = {
    "experiment", "dataset", "n_test", "num_classes", "num_dims", "accuracy", "bits_per_dim",
    "thresholds", "log_px_given_true", "log_px_given_wrong", "log_px", "gap", "spread",
    "confidence_margin", "histogram", "gap_histogram", "provenance",
}  # fmt: skip


def test_confidence_margin_matches_section_4_2() -> None:
    m = likelihood_gap.confidence_margin(10, 1e-5)
    assert math.isclose(m, math.log(10) + math.log((1 - 1e-5) / 1e-5))
    assert round(m / math.log(10)) == 6  # the paper's "about 6" is in log10 units


def test_cli_writes_documented_json(tiny_run, data_dir, tmp_path, capsys) -> None:
    out = tmp_path / "gap.json"
    rc = likelihood_gap.main(
        ["--run", str(tiny_run), "--out", str(out),
         "--data-dir", str(data_dir), "--seed", "3", "--draws", "2"]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert KEYS <= set(res)
    assert res["n_test"] == 80 and res["num_classes"] == 10
    h = res["histogram"]
    assert sum(h["counts_true"]) == 80 and sum(h["counts_wrong"]) == 80
    assert res["gap"]["share_negative"] == 1.0 - res["accuracy"]
    q = res["thresholds"]["quantile"]
    assert q["T_bpd"] < q["test_max_bpd"] and q["recall_test"]["n"] == 80  # never the maximum
    assert res["accuracy_ci"]["n"] == 80 and res["draws"] == 2
    prov = res["provenance"]
    for k in ("git_commit", "seed", "run_config", "device", "wall_time_s", "command"):
        assert k in prov
    assert prov["seed"] == 3 and prov["run_config"]["dataset"] == "mnist"
    # Figure 3 is drawn from the stored JSON alone, by paper_figures
    from paper_figures import empirical

    made = empirical.plot_fig3([empirical.load(out)], tmp_path / "fig")
    assert [p.name for p in made] == ["fig3_likelihood_gap.png", "fig3_likelihood_gap.pdf"]
    assert all(p.stat().st_size > 0 for p in made)
    # the wrong class is never the true one and the gap is positive where correct
    assert np.isfinite(res["gap"]["mean"])


def test_bad_input_one_line_and_nonzero(tmp_path, run_cli) -> None:
    rc, err = run_cli(likelihood_gap.main,
                      ["--run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and len(err) == 1 and "--run" in err[0]
    # it draws no images, so it takes no --png-dir (its plot is paper_figures' fig3)
    rc, err = run_cli(likelihood_gap.main, ["--run", str(tmp_path), "--out", str(tmp_path / "o"),
                                            "--png-dir", str(tmp_path)])
    assert rc == 2 and len(err) == 1 and "--png-dir" in err[0]


def test_model_with_non_finite_scores_is_refused(tiny_model_state, make_run_dir, data_dir,
                                                  tmp_path, run_cli) -> None:
    """Weights whose scores overflow (all multiplied by 1e30: finite weights, NaN scores) are
    refused as flows.evaluate refuses them: one line, exit 1, no result (it was written with
    empty summaries, then a KeyError traceback)."""
    cfg, state = tiny_model_state
    big = {k: v * 1e30 if v.is_floating_point() else v for k, v in state.items()}
    run = make_run_dir(tmp_path, "overflowing", "mnist", cfg, big)
    out = tmp_path / "gap.json"
    rc, err = run_cli(likelihood_gap.main, ["--run", str(run), "--out", str(out),
                                            "--data-dir", str(data_dir), "--n-test", "3",
                                            "--draws", "1"])
    err = [e for e in err if "scoring" not in e]  # the progress bar of the scoring above
    assert rc == 1 and len(err) == 1, err
    assert "non-finite bits_per_dim" in err[0] and "checkpoint.pt" in err[0]
    assert not out.exists()


def test_damaged_score_cache_is_recomputed(tiny_run, data_dir, tmp_path, run_cli) -> None:
    """An empty score cache (it was an EOFError traceback) is recomputed with a one-line note;
    the result is the one without a cache."""
    argv = ["--run", str(tiny_run), "--data-dir", str(data_dir), "--n-test", "5", "--draws", "1",
            "--cache-dir", str(tmp_path / "cache")]
    assert run_cli(likelihood_gap.main, [*argv, "--out", str(tmp_path / "a.json")])[0] == 0
    [cache] = (tmp_path / "cache").iterdir()
    cache.write_bytes(b"")
    rc, err = run_cli(likelihood_gap.main, [*argv, "--out", str(tmp_path / "b.json")])
    err = [e for e in err if "scoring" not in e]
    assert rc == 0 and len(err) == 1 and f"{cache}: unusable score cache" in err[0], err
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert b["gap"] == a["gap"] and b["bits_per_dim"] == a["bits_per_dim"]
