"""Interpolation experiment: endpoints reproduce the endpoint likelihoods; CLI end to end."""

from __future__ import annotations

import json

import numpy as np

from flows.experiments import common, interpolation


def test_endpoints_reproduce_endpoint_likelihoods(tiny_model, data_dir) -> None:
    x, y = common.load_test_inputs("mnist", data_dir=str(data_dir))
    sc = common.score(tiny_model, x, desc=None)
    res, curves = interpolation.run_interpolation(
        tiny_model, x, y, sc, "mnist", n_pairs=6, n_alphas=11, seed=1
    )
    i0, i1 = np.array(res["pairs"]["i0"]), np.array(res["pairs"]["i1"])
    assert np.all(y.numpy()[i0] != y.numpy()[i1])
    np.testing.assert_allclose(curves["bpd"][:, 0], sc.bpd[i0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(curves["bpd"][:, -1], sc.bpd[i1], rtol=1e-6, atol=1e-6)
    post = sc.posterior
    np.testing.assert_allclose(curves["p_y0"][:, 0], post[i0, y.numpy()[i0]], atol=1e-6)
    np.testing.assert_allclose(curves["p_y1"][:, -1], post[i1, y.numpy()[i1]], atol=1e-6)
    # endpoints were drawn among correct, accepted images
    t = res["T_used_bpd"]
    assert np.all(sc.bpd[i0] <= t) and np.all(sc.pred[i0] == y.numpy()[i0])


def test_cli_writes_documented_json(tiny_run, data_dir, tmp_path) -> None:
    out = tmp_path / "interp.json"
    rc = interpolation.main(
        ["--run", str(tiny_run), "--out", str(out), "--png-dir", str(tmp_path / "png"),
         "--data-dir", str(data_dir), "--n-pairs", "5", "--n-alphas", "100"]
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    keys = ("alphas", "bpd_mean", "p_y0_mean", "p_y1_mean", "share_paths_all_accepted",
            "finding", "pairs", "examples", "thresholds", "T_used_bpd", "provenance")  # fmt: skip
    assert set(keys) <= set(res)
    assert len(res["alphas"]) == 100 and res["alphas"][0] == 0.0 and res["alphas"][-1] == 1.0
    assert len(res["bpd_mean"]) == 100 and res["n_pairs"] == 5
    assert res["finding"] in ("drops", "rises")
    assert 0.0 <= res["share_paths_all_accepted"]["quantile"] <= 1.0
    assert len(list((tmp_path / "png").glob("*.png"))) == 2
    assert interpolation.main(["--replot", str(out), "--png-dir", str(tmp_path / "re")]) == 0
    assert list((tmp_path / "re").glob("*.png"))


def test_bad_n_pairs_is_a_user_error(tiny_run, data_dir, tmp_path, capsys) -> None:
    rc = interpolation.main(
        ["--run", str(tiny_run), "--out", str(tmp_path / "o.json"), "--data-dir", str(data_dir),
         "--n-pairs", "0"]
    )  # fmt: skip
    assert rc == 2 and "n-pairs" in capsys.readouterr().err
