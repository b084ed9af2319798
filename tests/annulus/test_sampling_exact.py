"""Exact samplers: supports, region masses, uniform directions, reproducibility, memory bound."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from annulus.construction import Construction
from annulus.sampling import (
    RadialTable,
    chunk_rows,
    row_sq_norms,
    sample,
    sample_arrays,
    sample_radii,
)

DELTAS = st.sampled_from([Fraction(1, 100), Fraction(1, 10), Fraction(1, 2), Fraction(1),
                          Fraction(2)])
LAMBDAS = st.fractions(min_value=0, max_value=1, max_denominator=1000)


def _con(d: int, Delta: Fraction, l1: Fraction, l2: Fraction) -> Construction:
    return Construction(d, Delta, l1, l2)


@settings(deadline=None, max_examples=25)
@given(d=st.one_of(st.integers(1, 300), st.integers(10**3, 10**7)), Delta=DELTAS, l1=LAMBDAS,
       l2=LAMBDAS, which=st.sampled_from(["p", "q"]), seed=st.integers(0, 2**32 - 1))
def test_sampling_radii_in_supports(d, Delta, l1, l2, which, seed):
    """Every radius lies in its piece (log space, no overflow at d = 10^7), the piece has
    positive mass under (model, y), and the model density there is positive."""
    con = _con(d, Delta, l1, l2)
    model = getattr(con, which)
    table = RadialTable.of(model)
    y, k, log_r = sample_radii(model, 2000, seed=seed)
    assert np.all(np.isfinite(log_r) | (log_r == -np.inf))
    assert np.all(log_r >= table.log_lo[k]) and np.all(log_r <= table.log_hi[k])
    with mpmath.mp.workdps(30):
        for yy, kk in set(zip(y.tolist(), k.tolist(), strict=True)):
            assert model.conditionals[yy].log_mass(mpmath.mp, table.pieces[kk]) is not None


def _masses(model) -> np.ndarray:
    table = RadialTable.of(model)
    out = np.zeros((2, len(table.pieces)))
    with mpmath.mp.workdps(30):
        for y in (0, 1):
            for k, pc in enumerate(table.pieces):
                lm = model.conditionals[y].log_mass(mpmath.mp, pc)
                out[y, k] = 0.0 if lm is None else float(model.prior[y]) * float(mpmath.exp(lm))
    return out


@settings(deadline=None, max_examples=15)
@given(d=st.sampled_from([1, 2, 5, 50, 201, 5000, 10**5]), Delta=DELTAS, l1=LAMBDAS, l2=LAMBDAS,
       which=st.sampled_from(["p", "q"]), seed=st.integers(0, 2**32 - 1))
def test_sampling_region_masses(d, Delta, l1, l2, which, seed):
    """Counts per (y, piece) vs exact masses: each count is Binomial(n, m); we require
    |count - n m| <= 6 sd + 1 (two-sided tail < 2e-9 per cell by Bernstein/normal, so a
    false alarm is negligible over all examples) and count = 0 where m = 0."""
    model = getattr(_con(d, Delta, l1, l2), which)
    n = 20000
    y, k, _ = sample_radii(model, n, seed=seed)
    m = _masses(model)
    counts = np.zeros_like(m)
    np.add.at(counts, (y.astype(int), k.astype(int)), 1)
    sd = np.sqrt(n * m * (1 - m))
    assert np.all(np.abs(counts - n * m) <= 6 * sd + 1)
    assert np.all(counts[m == 0] == 0)


@pytest.mark.parametrize("d", [2, 3, 201, 10000])
def test_sampling_directions_uniform(d):
    """x_1^2 / ||x||^2 ~ Beta(1/2, (d-1)/2) for a uniform direction (KS test, fixed seed)."""
    con = _con(d, Fraction(1, 10), Fraction(1, 200), Fraction(1, 200000))
    n = 4000 if d < 10000 else 1000
    x, _ = sample_arrays(con.p, n, seed=7)
    t = x[:, 0] ** 2 / row_sq_norms(x)
    assert stats.kstest(t, stats.beta(0.5, (d - 1) / 2).cdf).pvalue > 1e-3
    # and the direction is independent of the radius: ||x|| reproduces the radial draw
    _, _, log_r = sample_radii(con.p, n, seed=7)
    assert np.allclose(np.sqrt(row_sq_norms(x)), np.exp(log_r), rtol=1e-12)


def test_sampling_radius_law_ks():
    """Within the shell, r^d is uniform on [1, (1+Delta)^d] (exact inverse CDF), KS test."""
    d, Delta = 30, Fraction(1, 10)
    con = _con(d, Delta, Fraction(1, 10), Fraction(1, 10000))
    y, k, log_r = sample_radii(con.p, 20000, seed=3)
    shell = (y == 0) & (k == 1)
    u = np.expm1(d * log_r[shell]) / math.expm1(d * math.log1p(float(Delta)))
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_sampling_reproducible_and_chunk_invariant():
    con = _con(201, Fraction(1, 10), Fraction(1, 200), Fraction(1, 200000))
    a = sample_arrays(con.q, 500, seed=11, chunk=7)
    b = sample_arrays(con.q, 500, seed=11)
    c = sample_arrays(con.q, 500, seed=12)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_sampling_memory_bound():
    d = 10**5
    rows = chunk_rows(d, max_bytes=10 * 2**20, buffers=3)
    assert rows * 3 * 8 * d <= 10 * 2**20
    with pytest.raises(ValueError):
        chunk_rows(d, max_bytes=8 * d // 2)
    con = _con(d, Fraction(1, 10), Fraction(1, 200), Fraction(1, 200000))
    seen = 0
    for ch in sample(con.p, 7, seed=0, max_bytes=4 * 8 * d):
        assert ch.x.nbytes <= 4 * 8 * d
        seen += len(ch)
    assert seen == 7


def test_sampling_torch_backend_matches_radii():
    torch = pytest.importorskip("torch")
    con = _con(50, Fraction(1, 10), Fraction(1, 20), Fraction(1, 2000))
    xs = [c.x.clone() for c in sample(con.p, 300, seed=5, backend="torch", device="cpu")]
    assert all(isinstance(x, torch.Tensor) for x in xs)
    _, _, log_r = sample_radii(con.p, 300, seed=5)
    norms = torch.cat([x.norm(dim=1) for x in xs]).numpy()
    assert np.allclose(norms, np.exp(log_r), rtol=1e-12)
    again = torch.cat([c.x.clone() for c in sample(con.p, 300, seed=5, backend="torch",
                                                   device="cpu")])
    assert torch.equal(torch.cat(xs), again)
