"""The 8-bit grid, the fixed-draw forward, thresholds with recall, Wilson shares, run loading."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from flows import scoring
from flows.experiments import common
from flows.metrics import bits_per_dim
from foundation import errors


def test_log_px_at_bpd_inverts_bits_per_dim() -> None:
    for d in (1024, 3072):
        for t in (1.4, 4.0, 8.0):
            lp = common.log_px_at_bpd(t, d)
            assert float(bits_per_dim(torch.tensor(lp, dtype=torch.float64), d)) == pytest.approx(t)
    assert common.log_px_at_bpd(math.inf, 1024) == -math.inf


def test_grid_round_trip_and_bins() -> None:
    k = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(common.to_grid(common.bin_centre(k)), k)
    # every point of bin k maps to k: both bin edges (the upper one excluded)
    lo = k.float() / 256 - 0.5
    hi = (k.float() + 1) / 256 - 0.5 - 1e-6
    assert torch.equal(common.to_grid(lo), k) and torch.equal(common.to_grid(hi), k)
    assert int(common.to_grid(torch.tensor([[[[0.7]]]]))) == 255
    assert int(common.to_grid(torch.tensor([[[[-0.7]]]]))) == 0
    a = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    b = a.clone()
    b[0, 0, 0, 0] = 3
    b[0, 0, 1, 1] = 4  # ||(3, 4)|| = 5 grey levels
    np.testing.assert_allclose(common.grid_l2(a, b), [5 / 256, 0.0])


def test_fixed_draw_is_the_model_at_the_rounded_point(tiny_model) -> None:
    draw = common.FixedDraw(tiny_model, seed=3)
    k = torch.randint(0, 256, (3, 1, 32, 32), dtype=torch.uint8)
    z = draw.logits_k(k)
    x = common.bin_centre(k) + 0.001  # same bins
    x.requires_grad_(True)
    z_ste, x_c = draw.logits_ste(x)
    torch.testing.assert_close(z_ste, z)
    torch.testing.assert_close(x_c.detach(), common.bin_centre(k))
    z_ste[:, 0].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0  # straight-through
    # a fixed draw is one draw of flows.scoring's estimator: same function, explicit noise
    with torch.no_grad():
        ref = tiny_model((k.float() + draw.u0) / 256 - 0.5, noise=draw.e0.expand(3, -1, -1, -1))
    torch.testing.assert_close(z, ref + tiny_model.log_prior())


def test_score_is_flows_scoring_and_takes_only_images(tiny_model) -> None:
    k = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    a = common.score(tiny_model, k, draws=3, seed=1)
    b = scoring.score_images(tiny_model, k, draws=3, seed=1)
    np.testing.assert_array_equal(a.per_draw, b.per_draw)
    with pytest.raises(TypeError):
        common.score(tiny_model, common.bin_centre(k), draws=1)


def test_quantile_threshold_is_never_the_test_maximum() -> None:
    rng = np.random.default_rng(0)
    bpd = rng.normal(3.5, 0.3, 1000)
    th = common.thresholds(bpd, "cifar10")
    assert th["paper"]["T_bpd"] == 4.0
    assert 0.786 <= th["quantile"]["accepted_share_test"] < 0.786 + 2 / 1000
    r = th["quantile"]["recall_test"]
    assert r["n"] == 1000 and r["wilson95_pct"][0] < r["pct"] < r["wilson95_pct"][1]
    th = common.thresholds(bpd, "mnist")  # the paper's 100% is capped at 99%
    assert th["quantile"]["T_bpd"] < bpd.max()
    assert th["quantile"]["accepted_share_test"] == pytest.approx(0.99, abs=2e-3)
    assert th["paper"]["recall_test"]["k"] == int(np.sum(bpd <= 1.4))
    th = common.thresholds(bpd, "bg-mnist-0")
    assert th["paper"]["T_bpd"] is None
    with pytest.raises(errors.UsageError):
        common.pick_threshold(th, "paper")


def test_pct_ci_is_a_wilson_interval() -> None:
    c = common.pct_ci(0, 30)
    assert c["pct"] == 0 and c["wilson95_pct"][0] == 0 and 10 < c["wilson95_pct"][1] < 12
    c = common.pct_ci(15, 30)
    assert c["wilson95_pct"][0] < 50 < c["wilson95_pct"][1]
    assert common.pct_ci(0, 0)["pct"] is None
    assert common.fmt_ci(common.pct_ci(3, 10)) == "30% [11, 60] (n=10)"


def test_accepted_is_bpd_at_most_t() -> None:
    assert common.accepted(1.4, 1.4)
    assert not common.accepted(1.4000001, 1.4)


def test_tiny_model_is_a_classifier(tiny_model, data_dir) -> None:
    k, y = common.load_test_images("mnist", data_dir=str(data_dir))
    assert k.dtype == torch.uint8 and k.shape[-2:] == (32, 32)
    s = common.score(tiny_model, k, draws=2)
    assert np.mean(s.pred == y.numpy()) > 0.9


def test_missing_run_is_a_user_error(tmp_path) -> None:
    with pytest.raises(errors.UsageError):
        common.load_run_checked(tmp_path / "nope")
    (tmp_path / "r").mkdir()
    with pytest.raises(errors.UsageError, match="--run"):
        common.load_run_checked(tmp_path / "r")
    with pytest.raises(errors.UsageError):
        common.dataset_of({}, None)
    with pytest.raises(errors.UsageError):
        common.dataset_of({"dataset": "svhn"}, None)


def test_checkpoint_is_loaded_weights_only(tiny_run, tmp_path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_run, bad)
    torch.save({"model": {}, "evil": object()}, bad / "checkpoint.pt")  # not a plain state
    from flows.runs import RunError

    with pytest.raises(RunError):
        common.load_run_checked(bad)


def test_recorded_paths_are_repo_relative_or_under_home() -> None:
    from foundation.provenance import portable_command, portable_path

    inside = common.REPO_ROOT / "results" / "x.json"
    assert portable_path(str(inside)) == "results/x.json"
    assert portable_path(str(Path.home() / "annulus-runs" / "r")) == "~/annulus-runs/r"
    assert portable_path("/definitely/outside") == "/definitely/outside"
    assert portable_path("../shared/data") == "../shared/data"  # relative: as given
    cmd = portable_command("flows.evaluate", ["--run", str(Path.home() / "a b"),
                                              f"--out={inside}"])
    assert cmd == "python -m flows.evaluate --run ~/'a b' --out=results/x.json"
