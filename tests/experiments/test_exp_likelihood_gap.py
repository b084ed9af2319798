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
    png = tmp_path / "png"
    rc = likelihood_gap.main(
        ["--run", str(tiny_run), "--out", str(out), "--png-dir", str(png),
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
    assert list(png.glob("*.png"))
    # re-plot from the stored JSON alone
    rc = likelihood_gap.main(["--replot", str(out), "--png-dir", str(tmp_path / "re")])
    assert rc == 0 and list((tmp_path / "re").glob("*.png"))
    # the wrong class is never the true one and the gap is positive where correct
    assert np.isfinite(res["gap"]["mean"])


def test_bad_input_one_line_and_nonzero(tmp_path, run_cli) -> None:
    rc, err = run_cli(likelihood_gap.main,
                      ["--run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and len(err) == 1 and "--run" in err[0]
    rc, err = run_cli(likelihood_gap.main, ["--replot", str(tmp_path / "nope.json"),
                                            "--png-dir", str(tmp_path)])
    assert rc == 2 and len(err) == 1 and "--replot" in err[0]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    rc, err = run_cli(likelihood_gap.main, ["--replot", str(bad), "--png-dir", str(tmp_path)])
    assert rc == 1 and len(err) == 1 and "bad.json" in err[0]
