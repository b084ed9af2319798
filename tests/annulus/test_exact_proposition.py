"""Proposition 1: minimal dimensions (search, closed form, exact), lambda1, certificate."""

from fractions import Fraction

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annulus.certificate import build_certificate
from annulus.numeric import Sci, compare, num
from annulus.proposition import (
    Params,
    admissible,
    canonical_lambda1,
    condition_A,
    condition_B,
    condition_C,
    exact_conditions_hold,
    minimal_dimension_closed_form,
    minimal_dimension_exact,
    minimal_dimension_search,
)


def sufficient_conditions_hold(params: Params, d: int, third: bool = False) -> bool:
    """The five conditions (and lambda1 < 1/3) admit a lambda1 at ``d``."""
    return (condition_A(params, d) and condition_B(params, d)
            and (not third or condition_C(params, d)))


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
    for third in (False, True):
        d = minimal_dimension_search(params, third)
        assert d == minimal_dimension_closed_form(params, third)
        assert sufficient_conditions_hold(params, d, third)
        assert d == 1 or not sufficient_conditions_hold(params, d - 1, third)
        adm = admissible(params, d)
        assert not adm.empty


@settings(max_examples=25, deadline=None)
@given(params_strategy)
def test_certificate_holds_at_minimal_dimension(params: Params) -> None:
    """At the default d (the proof's conditions and lambda1 < 1/3), with Delta < 1,
    Proposition 1 is certified: KLs < eps, properties 1-5 on a set of probability > 1/3."""
    cert = build_certificate(params)
    assert cert.dimension == cert.minimal_dimension["with_lambda1_below_third"]
    assert cert.dimension >= cert.minimal_dimension["sufficient_conditions"]
    assert cert.certified, [(c.id, c.holds) for c in cert.kl_checks + cert.properties]
    assert cert.attack_probability > mpmath.mpf(1) / 3
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
    d3 = minimal_dimension_search(params, third=True)
    assert d3 == next(k for k in range(1, 10_000) if sufficient_conditions_hold(params, k, True))


@settings(max_examples=30, deadline=None)
@given(params_strategy)
def test_canonical_lambda1_is_admissible(params: Params) -> None:
    d = minimal_dimension_search(params)
    lam = canonical_lambda1(params, d)
    adm = admissible(params, d)
    with mpmath.mp.workdps(60):
        lam_mp = num(mpmath.mp, lam)
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
                                      "with_lambda1_below_third": 201, "exact": 189}
    assert cert.certified
    with mpmath.mp.workdps(40):
        lam = num(mpmath.mp, cert.lambda1)
        assert abs(cert.attack_probability - (1 - lam) / 2) < mpmath.mpf(10) ** -25


def test_errata_are_computed() -> None:
    cert = build_certificate(Params(Fraction(1, 10), Fraction(1, 1000), Fraction(1, 10)))
    where = {e.where for e in cert.errata}
    assert "Lemma 2 proof (and Lemma 3)" in where
    assert "Lemma 2 and condition (3)" in where
    assert "Proposition 1, property 2" in where
    assert "Proposition 1, property 3" in where
    assert "Proposition 1, dimension" in where
    assert "Proposition 1, property 7 and its proof" in where
    assert "Proposition 1 proof, Eq. (19)" not in where  # (19) first holds at d* = 201 here
    # large eps: conditions (1)-(5) no longer imply an attack probability > 1/3, and (19)
    # alone holds at d = 1 (with lambda1 > 1); the default d adds lambda1 < 1/3
    big = build_certificate(Params(Fraction(2), Fraction(3, 10), Fraction(1, 2)))
    big_where = {e.where for e in big.errata}
    assert "Proposition 1 proof, probability 1/3" in big_where
    eq19 = next(e for e in big.errata if e.where == "Proposition 1 proof, Eq. (19)")
    assert "at d = 1:" in eq19.evidence and "none of them a probability" in eq19.evidence
    assert big.certified and big.attack_probability_check.holds
    # at d* with lambda1 above 1/3 the claim fails although the properties hold
    d_star = big.minimal_dimension["sufficient_conditions"]
    lam = Fraction(1, 2)
    at_half = build_certificate(big.params, dim=d_star, lambda1=lam)
    if at_half.verdict != "not_certified":
        assert at_half.verdict == "claim_fails" and "P <= 1/3" in at_half.verdict_reason()


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
    assert cert.verdict == "not_certified"
    assert any("property 5 fails" in e.correct_statement for e in cert.errata)


@pytest.mark.parametrize("Delta,ok5", [("1", True), ("2", True), ("3", True), ("5", False),
                                       ("10", False), ("100", True)])
def test_property5_for_large_Delta(Delta: str, ok5: bool) -> None:
    """Property 5 at the default d: holds for Delta < 1 always (tested above), for Delta in
    1..3 and 100, fails at 5 and 10 (the README's and the erratum's claim)."""
    cert = build_certificate(Params(Fraction(1, 10), Fraction(1, 1000), Fraction(Delta)))
    assert next(c for c in cert.properties if c.id == "5").holds is ok5


@pytest.mark.parametrize("argv,verdict", [
    (("2", "0.25", "0.7"), "certified"), (("3", "0.4", "0.01"), "certified"),
    (("5", "0.49", "1e-3"), "certified"), (("0.1", "1e-3", "1.5"), "claim_fails"),
    (("0.1", "1e-3", "100"), "claim_fails"), (("0.1", "1e-3", "1e400"), "claim_fails")])
def test_verdict_means_proposition_1(argv: tuple[str, str, str], verdict: str) -> None:
    """The cases of issue 11 where the old tool said CERTIFIED with P <= 1/3 or Delta >= 1:
    at the new default d, P > 1/3 is certified whenever the verdict is 'certified'."""
    cert = build_certificate(Params(*(Fraction(a) for a in argv)))
    assert cert.verdict == verdict, cert.verdict_reason()
    if verdict == "certified":
        assert cert.attack_probability > mpmath.mpf(1) / 3
    else:
        assert "Delta >= 1" in cert.verdict_reason()


def test_Delta_above_one_attacks_only_below_radius_two() -> None:
    """1 < Delta < ~2: only the shell below radius 2 can be attacked (p, q are not confident
    in class 0 on the class-1 annulus at these d), so P is the p-mass of [1, 2): tiny."""
    cert = build_certificate(Params(Fraction(1, 10), Fraction(1, 1000), Fraction(3, 2)))
    assert cert.attack_radii == [(Fraction(1), Fraction(2))]
    d = cert.dimension
    with mpmath.mp.workdps(40):
        lam = num(mpmath.mp, cert.lambda1)
        shell_below_2 = (1 - lam) / 2 * (mpmath.mpf(2) ** d - 1) / (mpmath.mpf(2.5) ** d - 1)
        assert abs(cert.attack_probability / shell_below_2 - 1) < mpmath.mpf(10) ** -25
    assert any(e.where == "Proposition 1 for Delta > 1" for e in cert.errata)


@pytest.mark.parametrize("Delta", ["1e-35", "1e-45", "1e-300"])
def test_tiny_Delta_at_the_minimal_dimension(Delta: str) -> None:
    """lambda1 gets as many digits as the admissible interval needs (it is certified inside)."""
    params = Params(Fraction(1, 10), Fraction(1, 1000), Fraction(Delta))
    d = minimal_dimension_search(params, third=True)
    lam = canonical_lambda1(params, d)
    assert isinstance(lam, Sci) and compare(lam, Fraction(1, 3)) < 0
    assert sufficient_conditions_hold(params, d, True)
    assert not sufficient_conditions_hold(params, d - 1, True)


def test_printed_paper_order_is_right_to_every_digit() -> None:
    """The paper's order (log(delta/(1+delta)) + log(1/delta))/log(1+Delta) cancels to
    -log(1+delta)/log(1+Delta): at delta = 1e-12, 12 of 15 float digits cancel; the erratum
    prints it enclosed."""
    params = Params(Fraction(1, 10**12), Fraction(1, 10**12), Fraction(1, 10))
    cert = build_certificate(params)
    evidence = next(e.evidence for e in cert.errata if e.where == "Proposition 1, dimension")
    with mpmath.mp.workdps(40):
        ref = -mpmath.log1p(mpmath.mpf(10) ** -12) / mpmath.log1p(mpmath.mpf(1) / 10)
        assert f"= {mpmath.nstr(ref, 8)} < 0" in evidence
