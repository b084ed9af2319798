"""Attack on sampled vectors: perturbation bound, symbolic radius sets vs numeric checks,
success rate vs the exact probability, KL estimates, Wilson interval, JSON and --save."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from annulus.attack import (
    check_vectors,
    exact_median_rank,
    run_sampling,
)
from annulus.certificate import build_certificate
from annulus.construction import Construction
from annulus.pieces import PieceTable
from annulus.proposition import Params
from annulus.sampling import sample_arrays
from annulus.symbolic_attack import derive
from foundation.intervals import wilson_interval

PAPER = Params(Fraction("0.1"), Fraction("0.001"), Fraction("0.1"))


@settings(deadline=None, max_examples=20)
@given(d=st.sampled_from([2, 10, 201, 3000]),
       Delta=st.fractions(min_value=Fraction(1, 1000), max_value=3, max_denominator=1000),
       l1=st.fractions(min_value=0, max_value=1, max_denominator=100),
       seed=st.integers(0, 2**32 - 1))
def test_attack_perturbation_below_Delta(d, Delta, l1, seed):
    """For every sampled x in the shell 1 <= ||x|| < 1+Delta, ||x - xbar|| < Delta measured on
    the vectors, and ||xbar|| < 1."""
    con = Construction(d, Delta, l1, l1 / 1000)
    x, _ = sample_arrays(con.p, 300, seed=seed)
    table = PieceTable.of(con, Fraction(1, 1000))
    _, rx, rb, dist, *_ = check_vectors(x, table, float(Delta))
    shell = (rx >= 1) & (rx < 1 + float(Delta))
    assert np.all(dist[shell] < float(Delta))
    assert np.all(rb[shell] < 1)


@pytest.mark.parametrize("eps,delta,Delta", [("0.1", "0.001", "0.1"), ("0.5", "0.01", "0.5"),
                                             ("0.3", "0.05", "2")])
def test_attack_symbolic_sets_match_vectors(eps, delta, Delta):
    """Per property, the numeric check on the vectors equals membership of ||x|| in the
    symbolic radius set (property 5 with the exact median); the symbolic probability equals
    the certificate's."""
    params = Params(Fraction(eps), Fraction(delta), Fraction(Delta))
    cert = build_certificate(params)
    con = params.construction(cert.dimension, cert.lambda1)
    sym = derive(con, params.delta)
    assert sym.expressions["check_3d"]
    assert abs(sym.probability(40) - cert.attack_probability) < mpmath.mpf(10) ** -25
    x, _ = sample_arrays(con.p, 4000, seed=1)
    table = PieceTable.of(con, params.delta)
    _, rx, _, _, _, kb, props = check_vectors(x, table, float(con.Delta))
    props["5"] = table.level_rank[kb] >= exact_median_rank(con, table)
    for key in ("1", "2", "3", "4", "5"):
        assert np.array_equal(props[key], sym.contains(key, rx)), key
    success = props["1"] & props["2"] & props["3"] & props["4"] & props["5"]
    assert np.array_equal(success, sym.contains("success", rx))


def test_attack_symbolic_large_dimension():
    """d = 10^5: the sets and the probability, without overflow."""
    con = PAPER.construction(10**5, Fraction("0.005"))
    sym = derive(con, PAPER.delta)
    assert sym.probability_expr == Fraction(199, 400)  # (1 - lambda1)/2, exact
    assert sym.success.contains(Fraction(1)) and not sym.success.contains(Fraction(11, 10))


@pytest.mark.parametrize("eps,delta,Delta,n", [("0.1", "0.001", "0.1", 100000),
                                               ("0.5", "0.01", "0.5", 30000),
                                               ("0.05", "0.1", "0.05", 30000),
                                               ("1", "0.2", "1", 30000),
                                               ("0.3", "0.05", "2", 30000)])
def test_attack_success_rate_matches_exact(eps, delta, Delta, n):
    params = Params(Fraction(eps), Fraction(delta), Fraction(Delta))
    cert = build_certificate(params)
    con = params.construction(cert.dimension, cert.lambda1)
    res = run_sampling(params, con, cert.attack_probability, n, seed=2024)
    assert res.consistent, res.format_text()
    assert res.mismatches == {"piece_of_x": 0, "properties_1_4": 0}
    for key in ("q_p_joint", "p_q_joint"):
        e = res.kl[key]
        if e.meaningful:
            assert abs(e.estimate - float(e.exact)) <= 5 * e.exact_stderr + 1e-12, key


def test_attack_other_dimension_and_json(tmp_path):
    cert = build_certificate(PAPER)
    con = PAPER.construction(cert.dimension, cert.lambda1)
    path = str(tmp_path / "demo.npz")
    res = run_sampling(PAPER, con, cert.attack_probability, 3000, seed=0, dimension=150,
                       save=path)
    out = json.loads(json.dumps(res.to_json(), allow_nan=False))
    for key in ("n", "dimension", "success_rate", "ci99", "exact_probability", "kl_estimates",
                "seconds"):
        assert key in out
    assert set(out["kl_estimates"]) == {"q_p_joint", "p_q_joint"}
    for v in out["kl_estimates"].values():
        assert {"estimate", "stderr", "exact", "meaningful", "note"} <= set(v)
    assert out["dimension"] == 150
    exact150 = build_certificate(PAPER, dim=150, lambda1=cert.lambda1).attack_probability
    assert out["exact_probability"] == pytest.approx(float(exact150))
    assert "demo attacks" in res.format_text() or not res.demo
    # the saved attacks re-check from the vectors alone
    z = np.load(path)
    Delta = float(Fraction(str(z["Delta"])))
    if len(z["x"]):
        r = np.linalg.norm(z["x"], axis=1)
        assert np.all((r >= 1) & (r < 1 + Delta))
        assert np.all(np.linalg.norm(z["x"] - z["xbar"], axis=1) < Delta)
        assert np.all(np.linalg.norm(z["xbar"], axis=1) < 1)


def test_attack_wilson_interval():
    for k, n in ((50, 100), (3, 40), (49750, 100000)):
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.99, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ref.low, ref.high), rel=1e-9)
    lo, hi = wilson_interval(0, 1000)
    assert lo == 0.0 and 0 < hi < 0.01
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # centre shrinks towards 1/2, width ~ 2 z sqrt(p(1-p)/n)
    lo, hi = wilson_interval(49750, 100000)
    assert hi - lo == pytest.approx(2 * 2.5758 * math.sqrt(0.25 / 100000), rel=1e-3)


def test_attack_kl_not_meaningful_when_rare_region_matters():
    cert = build_certificate(PAPER)
    con = PAPER.construction(cert.dimension, cert.lambda1)
    res = run_sampling(PAPER, con, cert.attack_probability, 400, seed=0)
    assert not res.kl["p_q_joint"].meaningful  # ||x||<1 (mass 0.0025) carries ~1/2 the KL
    assert "NOT negligible" in res.kl["p_q_joint"].note
    assert res.kl["q_p_joint"].meaningful  # its rare region contributes ~3e-8
