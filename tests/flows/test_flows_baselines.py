"""Trivial baselines: hand-checkable histogram bits, the closed-form dequantised Gaussian."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.stats import multivariate_normal

from flows import baselines


def test_histogram_bits_match_the_smoothed_counts() -> None:
    train = np.array([[0, 5], [0, 5], [0, 7]], dtype=np.uint8)
    test = np.array([[0, 7], [1, 5]], dtype=np.uint8)
    bits = baselines.histogram_bits(train, test)
    n = 3
    p = lambda c: (c + 1) / (n + 256)  # noqa: E731
    expected0 = -(math.log2(p(3)) + math.log2(p(1))) / 2
    expected1 = -(math.log2(p(0)) + math.log2(p(2))) / 2
    np.testing.assert_allclose(bits, [expected0, expected1], rtol=1e-12)


def test_gaussian_fit_is_the_dequantised_maximum_likelihood() -> None:
    """Closed form (Cov k + I/12)/256^2 against the empirical covariance of many dequantised
    copies, and the log density against scipy."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(400, 3)).astype(np.uint8)
    train[:, 2] = train[:, 0] // 2  # correlated pixels
    mu, chol = baselines.fit_gaussian(train)
    reps = 400
    x = (np.repeat(train, reps, 0) + rng.random((len(train) * reps, 3))) / 256 - 0.5
    np.testing.assert_allclose(mu, x.mean(0), atol=2e-4)
    np.testing.assert_allclose(chol @ chol.T, np.cov(x.T, bias=True), rtol=2e-2, atol=2e-6)
    pts = rng.random((5, 3)) - 0.5
    ref = multivariate_normal(mu, chol @ chol.T).logpdf(pts)
    np.testing.assert_allclose(baselines.gaussian_log_density(pts, mu, chol), ref, rtol=1e-10)


def test_gaussian_bits_use_the_flows_convention() -> None:
    """Bits/dim = -(log p(x) - D log 256)/(D log 2), as flows.pixels.bits_per_dim."""
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, size=(300, 4)).astype(np.uint8)
    test = rng.integers(0, 256, size=(50, 4)).astype(np.uint8)
    single, pooled = baselines.gaussian_bits(train, test, draws=3, seed=0)
    assert single.shape == pooled.shape == (50,)
    assert np.all(pooled <= single + 1e-12)  # logmeanexp >= mean of logs (Jensen)
    # uniform-ish independent pixels: close to 8 bits/dim, and no better than the histogram's
    assert 7.5 < single.mean() < 8.5


def test_cli_on_a_tiny_dataset(tiny_data_dir: Path, tmp_path: Path) -> None:
    import json

    assert baselines.main(["--dataset", "mnist", "--data-dir", str(tiny_data_dir),
                           "--out-dir", str(tmp_path), "--draws", "2"]) == 0
    res = json.loads((tmp_path / "mnist.json").read_text())
    assert res["num_dims"] == 1024 and res["n_test"] > 0
    assert res["histogram"]["bits_per_dim"] > 0 and res["gaussian"]["draws"] == 2
    assert res["command"].startswith("python -m flows.baselines --dataset mnist")
    assert "git_commit" in res["provenance"]


def test_one_test_image_has_no_standard_error(tmp_path: Path) -> None:
    """A test set of one image has a mean and no standard error: written as null (it was a NaN
    that the JSON writer refused, a traceback)."""
    import json

    from flows_testutils import write_idx_images, write_idx_labels

    rng = np.random.default_rng(1)
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    for prefix, n in (("train", 5), ("t10k", 1)):
        write_idx_images(tmp_path / "data" / "mnist" / f"{prefix}-images-idx3-ubyte.gz",
                         rng.integers(0, 256, (n, 28, 28)))
        write_idx_labels(tmp_path / "data" / "mnist" / f"{prefix}-labels-idx1-ubyte.gz",
                         np.arange(n) % 10)
    assert baselines.main(["--dataset", "mnist", "--data-dir", str(tmp_path / "data"),
                           "--out-dir", str(tmp_path / "out"), "--draws", "1"]) == 0
    res = json.loads((tmp_path / "out" / "mnist.json").read_text())
    assert res["n_test"] == 1 and res["histogram"]["bits_per_dim"] > 0
    assert res["histogram"]["bits_per_dim_se"] is None
    assert res["gaussian"]["bits_per_dim_se"] is None
    assert res["gaussian"]["bits_per_dim_S_se"] is None
