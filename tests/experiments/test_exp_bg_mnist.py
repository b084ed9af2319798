"""Table 3 / Figures 5-6 experiment end to end on tiny runs and synthetic MNIST/BG-MNIST data."""

from __future__ import annotations

import json
import shutil

from flows.experiments import bg_mnist, likelihood_gap


def test_cli_writes_documented_json(
    tiny_run, tiny_model_state, make_run_dir, data_dir, tmp_path
) -> None:
    cfg, state = tiny_model_state
    bg0 = make_run_dir(tmp_path, "bg-mnist-0-tiny", "bg-mnist-0", cfg, state)
    out = tmp_path / "table3.json"
    png = tmp_path / "png"
    rc = bg_mnist.main(
        ["--run", str(tiny_run), "--run", str(bg0), "--out", str(out), "--png-dir", str(png),
         "--data-dir", str(data_dir), "--samples-per-class", "2", "--n-pairs", "3",
         "--n-alphas", "10", "--draws", "1"]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert {"rows", "samples", "interpolation", "paper_table3", "provenance"} <= set(res)
    assert [r["dataset"] for r in res["rows"]] == ["mnist", "bg-mnist-0"]
    for r in res["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["bits_per_dim"] > 0 and r["n_test"] == 80
        assert r["accuracy_ci"]["n"] == 80
        assert r["run_eval"] == {"note": "synthetic"}
    assert res["rows"][1]["paper_bits_per_dim"] == 4.58
    s = res["samples"]
    assert s["dataset"] == "bg-mnist-0" and len(s["bits_per_dim_of_samples"]) == 10
    assert len(s["bits_per_dim_of_samples"][0]) == 2
    interp = res["interpolation"]
    assert interp["dataset"] == "bg-mnist-0" and len(interp["alphas"]) == 10
    assert interp["thresholds"]["paper"]["T_bpd"] is None  # the paper gives none for BG-MNIST
    names = {p.name for p in png.glob("*.png")}
    assert names == {"fig5_samples_bg-mnist-0.png", "fig1_strips_bg-mnist-0.png"}
    assert s["png"] == str(png / "fig5_samples_bg-mnist-0.png")


def test_no_runs_is_a_user_error(tmp_path, run_cli) -> None:
    rc, err = run_cli(bg_mnist.main, ["--out", str(tmp_path / "o.json")])
    assert rc == 2 and len(err) == 1 and "--run" in err[0]
    rc, err = run_cli(bg_mnist.main, ["--out", str(tmp_path / "o.json"), "--run", str(tmp_path),
                                      "--temperature", "nan"])
    assert rc == 2 and len(err) == 1 and "--temperature" in err[0]


def test_runs_are_checked_before_any_scoring(tiny_run, data_dir, tmp_path, run_cli,
                                             monkeypatch) -> None:
    """A run given twice, a missing --samples-run, a dataset that does not fit the run and a
    corrupt eval.json of a run: one line each (usage: 2, the file: 1)."""
    base = ["--out", str(tmp_path / "o.json"), "--data-dir", str(data_dir), "--draws", "1"]
    rc, err = run_cli(bg_mnist.main, [*base, "--run", str(tiny_run), "--run", str(tiny_run)])
    assert rc == 2 and len(err) == 1 and "given twice" in err[0]
    rc, err = run_cli(bg_mnist.main, [*base, "--run", str(tiny_run),
                                      "--samples-run", str(tmp_path / "nope")])
    assert rc == 2 and len(err) == 1 and "--samples-run" in err[0]
    assert not (tmp_path / "o.json").exists()
    rc, err = run_cli(likelihood_gap.main, ["--run", str(tiny_run), "--data-dir",
                                            str(tmp_path / "missing"), "--out",
                                            str(tmp_path / "g.json")])
    assert rc == 2 and len(err) == 1 and "--data-dir" in err[0] and "does not exist" in err[0]
    rc, err = run_cli(likelihood_gap.main, [*base, "--run", str(tiny_run), "--dataset", "cifar10"])
    assert rc == 2 and len(err) == 1 and "--dataset cifar10: dataset 'cifar10' has 3" in err[0]
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "eval.json").write_text("{")
    rc, err = run_cli(bg_mnist.main, [*base, "--run", str(run)])
    assert rc == 1 and len(err) == 1 and f"{run / 'eval.json'}: not a readable evaluation" in err[0]
    # the --samples-run's too, before any run is scored
    scored: list[str] = []
    real_row = bg_mnist.table_row
    monkeypatch.setattr(bg_mnist, "table_row", lambda r, *a: scored.append(r) or real_row(r, *a))
    rc, err = run_cli(bg_mnist.main, [*base, "--run", str(tiny_run), "--samples-run", str(run)])
    assert rc == 1 and len(err) == 1 and f"{run / 'eval.json'}: not a readable evaluation" in err[0]
    assert scored == []
