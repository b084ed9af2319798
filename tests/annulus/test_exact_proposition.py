"""Proposition 1: minimal dimensions (search, closed form, exact), lambda1, certificate."""

from fractions import Fraction

import mpmath
from hypothesis import given, settings
from hypothesis import strategies as st

from annulus.certificate import build_certificate
from annulus.proposition import (
    Params,
    admissible,
    canonical_lambda1,
    exact_conditions_hold,
    minimal_dimension_closed_form,
    minimal_dimension_exact,
    minimal_dimension_search,
    sufficient_conditions_hold,
)


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy[Fraction]:
    """Fractions spread evenly in log scale on [lo, hi] (12 significant digits)."""
    def make(u: float) -> Fraction:
        x = mpmath.mpf(lo) * (mpmath.mpf(hi) / lo) ** u
        return Fraction(mpmath.nstr(x, 12))
    return st.floats(0, 1).map(make)


params_strategy = st.builds(
    Params,
    _log_uniform(1e-6, 5),            # eps
    _log_uniform(1e-12, 0.49),        # delta
    _log_uniform(1e-3, 0.99),         # Delta
)


@settings(max_examples=30, deadline=None)
@given(params_strategy)
def test_minimal_dimension_search_closed_form_and_minimality(params: Params) -> None:
    d = minimal_dimension_search(params)
    assert d == minimal_dimension_closed_form(params)
    assert sufficient_conditions_hold(params, d)
    assert d == 1 or not sufficient_conditions_hold(params, d - 1)
    adm = admissible(params, d)
    assert not adm.empty


@settings(max_examples=25, deadline=None)
@given(params_strategy)
def test_certificate_holds_at_minimal_dimension(params: Params) -> None:
    cert = build_certificate(params)
    assert cert.dimension == cert.minimal_dimension["sufficient_conditions"]
    assert cert.certified, [(c.id, c.holds) for c in cert.kl_checks + cert.properties]
    assert all(c.holds for c in cert.conditions)
    assert all(c.holds for c in cert.lemmas)
    for key in ("q_p_joint", "p_q_joint", "q_p_class0", "p_q_class0"):
        assert 0 <= cert.kl[key]
    eps = mpmath.mpf(params.eps.numerator) / params.eps.denominator
    assert cert.kl["q_p_joint"] < eps and cert.kl["p_q_joint"] < eps


@settings(max_examples=15, deadline=None)
@given(params_strategy)
def test_exact_minimal_dimension_is_minimal(params: Params) -> None:
    d = minimal_dimension_exact(params)
    assert exact_conditions_hold(params, d)
    assert d == 1 or not exact_conditions_hold(params, d - 1)
    # monotone beyond (spot checks): once the exact claims hold, they keep holding
    for extra in (1, 7, 100):
        assert exact_conditions_hold(params, d + extra)


@settings(max_examples=15, deadline=None)
@given(st.fractions(Fraction(1, 10), Fraction(5), max_denominator=100),
       st.fractions(Fraction(1, 100), Fraction(49, 100), max_denominator=100),
       st.fractions(Fraction(1, 4), Fraction(99, 100), max_denominator=100))
def test_search_agrees_with_linear_scan(eps: Fraction, delta: Fraction, Delta: Fraction) -> None:
    """Small dimensions: the first d with the five conditions, by scanning every d."""
    params = Params(eps, delta, Delta)
    d = minimal_dimension_search(params)
    scan = next(k for k in range(1, 10_000) if sufficient_conditions_hold(params, k))
    assert d == scan


@settings(max_examples=30, deadline=None)
@given(params_strategy)
def test_canonical_lambda1_is_admissible(params: Params) -> None:
    d = minimal_dimension_search(params)
    lam = canonical_lambda1(params, d)
    adm = admissible(params, d)
    lam_mp = mpmath.mpf(lam.numerator) / lam.denominator
    assert adm.lo <= lam_mp <= adm.hi3 and lam_mp < adm.hi5


def test_one_dimension_less_fails_certificate() -> None:
    params = Params(Fraction(1, 10), Fraction(1, 1000), Fraction(1, 10))
    cert = build_certificate(params, dim=150)
    assert not cert.certified
    assert not next(c for c in cert.properties if c.id == "3").holds


def test_default_parameters_reference_values() -> None:
    """eps=0.1, delta=1e-3, Delta=0.1: d* = 201 = ceil of the closed form; exact d = 189."""
    params = Params(Fraction(1, 10), Fraction(1, 1000), Fraction(1, 10))
    cert = build_certificate(params)
    assert cert.minimal_dimension == {"sufficient_conditions": 201, "closed_form": 201,
                                      "exact": 189}
    assert cert.certified
    with mpmath.mp.workdps(40):
        lam = mpmath.mpf(cert.lambda1.numerator) / cert.lambda1.denominator
        assert abs(cert.attack_probability - (1 - lam) / 2) < mpmath.mpf(10) ** -25


def test_errata_are_computed() -> None:
    cert = build_certificate(Params(Fraction(1, 10), Fraction(1, 1000), Fraction(1, 10)))
    where = {e.where for e in cert.errata}
    assert "Lemma 2 proof (and Lemma 3)" in where
    assert "Proposition 1, property 2" in where
    assert "Proposition 1, property 3" in where
    assert "Proposition 1, dimension" in where
    assert "Proposition 1, property 7 and its proof" in where
    # large eps: conditions (1)-(5) no longer imply an attack probability > 1/3
    big = build_certificate(Params(Fraction(2), Fraction(3, 10), Fraction(1, 2)))
    big_where = {e.where for e in big.errata}
    assert "Proposition 1 proof" in big_where
    assert "Proposition 1 proof, Eq. (19)" in big_where
    assert not big.attack_probability_check.holds


def test_extreme_parameters_no_overflow() -> None:
    params = Params(Fraction(1, 10**12), Fraction(1, 10**12), Fraction(1, 10**3))
    cert = build_certificate(params)
    assert cert.certified
    cert = build_certificate(Params(Fraction(1, 10), Fraction(1, 1000), Fraction(1, 10)),
                             dim=10**6)
    assert cert.certified
    for v in cert.kl.values():
        assert mpmath.isfinite(v)


def test_property5_can_fail_under_the_five_conditions() -> None:
    """Delta = 5: the annulus 2 < r < 3 is denser under q than the unit ball, so the attacked
    point is below the median density although conditions (1)-(5) hold."""
    cert = build_certificate(Params(Fraction(1, 10), Fraction(1, 1000), Fraction(5)))
    assert all(c.holds for c in cert.conditions)
    assert not next(c for c in cert.properties if c.id == "5").holds
    assert not cert.certified
    assert any("property 5 fails" in e.correct_statement for e in cert.errata)
