"""Interpolation experiment: 8-bit interpolants, pairs, Wilson shares, CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import torch

from flows.experiments import interpolation, interpolation_paths, scored_runs


def test_interpolants_are_8_bit_images_with_exact_endpoints() -> None:
    k0 = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    k1 = torch.full((2, 1, 4, 4), 255, dtype=torch.uint8)
    imgs = interpolation_paths.interpolant_images(k0, k1, np.linspace(0, 1, 5))
    assert imgs.dtype == torch.uint8 and imgs.shape == (2, 5, 1, 4, 4)
    assert torch.equal(imgs[:, 0], k0) and torch.equal(imgs[:, -1], k1)
    assert [int(v) for v in imgs[0, :, 0, 0, 0]] == [0, 64, 128, 191, 255]  # round(255 a)


def test_pairs_and_endpoint_scores(tiny_model, data_dir) -> None:
    k, y = scored_runs.load_test_images("mnist", data_dir=str(data_dir))
    sc = scored_runs.score(tiny_model, k, draws=2)
    res, curves = interpolation_paths.run_interpolation(
        tiny_model, k, y, sc, "mnist", n_pairs=6, n_alphas=5, seed=1, draws=2)
    i0, i1 = np.array(res["pairs"]["i0"]), np.array(res["pairs"]["i1"])
    assert np.all(y.numpy()[i0] != y.numpy()[i1])
    # the endpoints are the test images; a fresh 2-draw estimate agrees to draw noise
    np.testing.assert_allclose(curves["bpd"][:, 0], sc.bpd[i0], atol=0.05)
    np.testing.assert_allclose(curves["bpd"][:, -1], sc.bpd[i1], atol=0.05)
    t = res["T_used_bpd"]
    assert np.all(sc.bpd[i0] <= t) and np.all(sc.pred[i0] == y.numpy()[i0])
    m = res["mid_more_likely_than_both"]
    assert m["n"] == 6 and m["k"] == round(6 * res["share_mid_more_likely_than_both"])
    assert res["paths_all_accepted"]["quantile"]["n"] == 6


def test_cli_writes_documented_json(tiny_run, data_dir, tmp_path) -> None:
    out = tmp_path / "interp.json"
    rc = interpolation.main(
        ["--run", str(tiny_run), "--out", str(out), "--png-dir", str(tmp_path / "png"),
         "--data-dir", str(data_dir), "--n-pairs", "5", "--n-alphas", "7", "--draws", "1"])
    assert rc == 0
    res = json.loads(out.read_text())
    keys = ("alphas", "bpd_mean", "p_y0_mean", "p_y1_mean", "share_paths_all_accepted",
            "paths_all_accepted", "mid_more_likely_than_both", "finding", "pairs", "examples",
            "thresholds", "T_used_bpd", "provenance", "draws")
    assert set(keys) <= set(res)
    assert len(res["alphas"]) == 7 and res["alphas"][0] == 0.0 and res["alphas"][-1] == 1.0
    assert len(res["bpd_mean"]) == 7 and res["n_pairs"] == 5
    assert res["finding"] in ("drops", "rises", "no clear change")
    assert 0.0 <= res["share_paths_all_accepted"]["quantile"] <= 1.0
    assert [p.name for p in (tmp_path / "png").glob("*.png")] == ["fig1_strips_mnist.png"]
    # Figure 4 is drawn from the stored JSON alone, by paper_figures
    from paper_figures import empirical

    made = empirical.plot_interpolation([empirical.load(out)], tmp_path / "fig", "fig4", "t")
    assert [p.name for p in made] == ["fig4.png", "fig4.pdf"]


def test_bad_numbers_are_usage_errors(tiny_run, data_dir, tmp_path, run_cli) -> None:
    base = ["--run", str(tiny_run), "--out", str(tmp_path / "o.json"), "--data-dir",
            str(data_dir)]
    for flag, value in (("--n-pairs", "0"), ("--n-pairs", "1e12"), ("--n-alphas", "2"),
                        ("--n-pairs", "nan"), ("--draws", "-1")):
        rc, err = run_cli(interpolation.main, [*base, flag, value])
        assert rc == 2 and len(err) == 1 and flag in err[0], (flag, value, err)


def test_mid_path_finding_needs_its_interval_to_exclude_zero() -> None:
    from flows.experiments.interpolation_paths import mid_path_finding

    assert mid_path_finding(0.934, 0.024) == "drops"
    assert mid_path_finding(-0.112, 0.010) == "rises"
    assert mid_path_finding(0.002, 0.008) == "no clear change"  # sign alone would say "drops"
    assert mid_path_finding(-0.015, 0.008) == "no clear change"  # 1.96 s.e. = 0.0157
    assert mid_path_finding(0.5, None) == "no clear change"  # one pair: no interval
