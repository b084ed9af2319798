"""Detection thresholds, bits/dim inversion, the tiny fixture model, run loading errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flows.experiments import common
from flows.metrics import bits_per_dim


def test_log_px_at_bpd_inverts_bits_per_dim() -> None:
    for d in (1024, 3072):
        for t in (1.4, 4.0, 8.0):
            lp = common.log_px_at_bpd(t, d)
            assert float(bits_per_dim(torch.tensor(lp, dtype=torch.float64), d)) == pytest.approx(t)
    assert common.log_px_at_bpd(math.inf, 1024) == -math.inf


def test_quantile_threshold_accepts_paper_share() -> None:
    rng = np.random.default_rng(0)
    bpd = rng.normal(3.5, 0.3, 1000)
    th = common.thresholds(bpd, "cifar10")
    assert th["paper"]["T_bpd"] == 4.0
    assert th["quantile"]["accepted_share_test"] >= 0.786
    assert th["quantile"]["accepted_share_test"] < 0.786 + 2 / 1000
    th = common.thresholds(bpd, "mnist")
    assert th["quantile"]["T_bpd"] == bpd.max()
    assert th["quantile"]["accepted_share_test"] == 1.0
    th = common.thresholds(bpd, "bg-mnist-0")
    assert th["paper"]["T_bpd"] is None
    with pytest.raises(common.UserInputError):
        common.pick_threshold(th, "paper")


def test_accepted_is_bpd_at_most_t() -> None:
    assert common.accepted(1.4, 1.4)
    assert not common.accepted(1.4000001, 1.4)


def test_tiny_model_is_a_classifier(tiny_model, data_dir) -> None:
    x, y = common.load_test_inputs("mnist", data_dir=str(data_dir))
    s = common.score(tiny_model, x, desc=None)
    assert np.mean(s.pred == y.numpy()) > 0.9
    with torch.no_grad():
        lp = tiny_model.log_prob(x).double().numpy()
    np.testing.assert_allclose(s.log_px, lp, rtol=1e-5)


def test_missing_run_is_a_user_error(tmp_path) -> None:
    with pytest.raises(common.UserInputError):
        common.load_run_checked(tmp_path / "nope")
    with pytest.raises(common.UserInputError):
        common.dataset_of({}, None)
    with pytest.raises(common.UserInputError):
        common.dataset_of({"dataset": "svhn"}, None)
