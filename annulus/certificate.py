"""The certificate: every lemma, condition and property of Appendix D checked exactly, the
verdict on Proposition 1, and the errata that the computation exposes.

Each inequality is decided by :func:`annulus.numeric.certify` (interval arithmetic with outward
rounding, precision doubled until the sign is certain) or by exact rational arithmetic; every
:class:`Check` records which. Every reported value comes from :func:`annulus.numeric.enclose`
(interval arithmetic at a precision raised until the value is right to every digit shown).

**Verdict.** Proposition 1 claims: both joint KLs below ``eps`` (18), and with probability
greater than 1/3 over ``x ~ p`` an adversarial example with properties 1-7, where property 6
is stated "for Delta < 1" and 6-7 are limits in ``d``. The certificate says

* ``certified`` — both KLs < eps, properties 1-5 hold on a set of radii whose ``p``-probability
  is certified > 1/3, and ``Delta < 1`` (property 6);
* ``claim_fails`` — the KLs and properties 1-5 hold on a set of positive probability, but that
  probability is not > 1/3, or ``Delta >= 1`` (the reason names which);
* ``not_certified`` — a KL is not below eps or no radius satisfies properties 1-5.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath

from annulus.construction import Construction, Weight
from annulus.numeric import (
    Ctx,
    Exact,
    Number,
    as_sci,
    certify,
    compare,
    enclose,
    exact_fraction,
    fmt,
    log_unit_ball_volume,
    num,
)
from annulus.pieces import PieceTable
from annulus.proposition import (
    Params,
    admissible,
    canonical_lambda1,
    first_eq19,
    minimal_dimension_closed_form,
    minimal_dimension_exact,
    minimal_dimension_search,
    paper_dimension_order,
)
from annulus.radial import Piece

INTERVAL = "interval arithmetic (mpmath.iv)"
RATIONAL = "exact rational arithmetic"
PROPS_1_5 = ("1", "2", "3", "4", "5")
CERTIFIED, CLAIM_FAILS, NOT_CERTIFIED = "certified", "claim_fails", "not_certified"
#: Exit status of ``python -m annulus.verify`` for each verdict (2 is bad input).
EXIT_STATUS = {CERTIFIED: 0, NOT_CERTIFIED: 1, CLAIM_FAILS: 3}


@dataclass
class Check:
    """One claim: its exact value, what it is compared with, and whether it holds."""

    id: str
    statement: str
    holds: bool | None  # None: not applicable at these parameters
    value: Any
    bound: Any
    method: str = INTERVAL
    note: str = ""


@dataclass
class Erratum:
    """A statement of the paper that the computation shows to be false or mis-stated."""

    where: str
    paper_says: str
    correct_statement: str
    evidence: str = ""


@dataclass
class Certificate:
    params: Params
    dimension: int
    lambda1: Weight
    lambda2: Weight
    dimension_source: str
    lambda1_source: str
    minimal_dimension: dict[str, int]
    kl: dict[str, mpmath.mpf]
    lemma_bounds: dict[str, mpmath.mpf]
    lemmas: list[Check]
    conditions: list[Check]
    properties: list[Check]
    kl_checks: list[Check]
    attack_probability: mpmath.mpf
    attack_probability_check: Check
    attack_radii: list[tuple[Fraction, Fraction]]
    errata: list[Erratum]
    dps: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``certified``, ``claim_fails`` or ``not_certified`` (see the module docstring)."""
        holds = all(c.holds for c in self.kl_checks) and all(
            c.holds for c in self.properties if c.id in PROPS_1_5) and bool(self.attack_radii)
        if not holds:
            return NOT_CERTIFIED
        if not self.attack_probability_check.holds or self.params.Delta >= 1:
            return CLAIM_FAILS
        return CERTIFIED

    @property
    def certified(self) -> bool:
        """Proposition 1 holds here as claimed (verdict ``certified``)."""
        return self.verdict == CERTIFIED

    def verdict_reason(self) -> str:
        """The verdict in words: what holds and, if it is not ``certified``, what does not."""
        p = fmt(self.attack_probability, 8)
        if self.verdict == NOT_CERTIFIED:
            failed = [c.statement for c in self.kl_checks if not c.holds]
            failed += [f"property {c.id}" for c in self.properties
                       if c.id in PROPS_1_5 and not c.holds]
            if not self.attack_radii and not failed:
                failed = ["properties 1-5 hold at no radius"]
            return "fails: " + "; ".join(failed)
        head = (f"both joint KLs < eps and properties 1-5 hold on a set of p-probability "
                f"P = {p}")
        if self.verdict == CERTIFIED:
            return head + " > 1/3 (certified), and Delta < 1 (property 6): Proposition 1 holds"
        why = []
        if not self.attack_probability_check.holds:
            why.append("P <= 1/3")
        if self.params.Delta >= 1:
            why.append("Delta >= 1 (property 6, and with it the proposition, is stated for "
                       "Delta < 1 only)")
        return head + ", but " + " and ".join(why) + ": the claim of Proposition 1 fails"


def _lt(f: Callable[[Ctx], Number], g: Callable[[Ctx], Number], strict: bool = True) -> bool:
    """Certified ``f < g`` (or ``<=``)."""
    return certify(lambda ctx: g(ctx) - f(ctx), strict=strict).holds


def median_piece(con: Construction, under: str) -> Piece:
    """The piece holding the lower median of ``q(X)`` for ``X ~ p`` (``under="p"``) or
    ``X ~ q``: pieces ordered by the level of ``q``, accumulated ``under``-mass reaching 1/2.
    Levels and masses are compared at a precision that follows ``d``."""
    dist = con.p if under == "p" else con.q
    with mpmath.mp.workdps(40 + len(str(con.d))):
        mp = mpmath.mp
        levels = []
        for pc in con.pieces:
            log_mass = dist.log_mass_on(mp, pc)
            if log_mass is None:
                continue
            level = con.q.log_marginal_on(mp, pc)
            levels.append((mp.mpf("-inf") if level is None else level, mp.exp(log_mass), pc))
        levels.sort(key=lambda item: item[0])
        acc = mp.mpf(0)
        for _level, mass, pc in levels:
            acc += mass
            if acc >= mp.mpf(1) / 2:
                return pc
    return levels[-1][2]


def _ratio_in_ball(lam1: Weight, lam2: Weight) -> Fraction | None:
    """``lambda1 / (lambda1 + lambda2)`` exactly (``p(0|x)`` in the ball, Eq. 11)."""
    a, b = as_sci(lam1), as_sci(lam2)
    if a.e == b.e:
        return a.m / (a.m + b.m)
    fa, fb = exact_fraction(a), exact_fraction(b)
    return None if fa is None or fb is None else fa / (fa + fb)


#: Largest number of digits of a dimension the certificate takes on (precision grows with it).
MAX_DIM_DIGITS = 400
#: Largest ``d log10(1 + Delta)``: (1+Delta)^-d down to 10^-(10^100) (exponents of that many
#: digits make every decimal conversion slow).
MAX_LOG10_VOLUME = 10**100


def check_size(params: Params, d: int) -> None:
    """Raise ``ValueError`` (one line) when ``d`` is beyond what can be certified in seconds."""
    if len(str(d)) > MAX_DIM_DIGITS:
        raise ValueError(f"the dimension needed or given has {len(str(d))} digits; beyond "
                         f"{MAX_DIM_DIGITS} the certificate would take too long")
    with mpmath.mp.workdps(20):
        log10_v = mpmath.mpf(d) * mpmath.log10(1 + num(mpmath.mp, params.Delta))
    if log10_v > MAX_LOG10_VOLUME:
        raise ValueError(f"(1+Delta)^d = 10^{mpmath.nstr(log10_v, 3)} is beyond "
                         "10^(10^100); the certificate would take too long")


def build_certificate(params: Params, dim: int | None = None, lambda1: Weight | None = None,
                      dps: int = 30) -> Certificate:
    """Check Proposition 1 and Lemmas 1-3 at ``(eps, delta, Delta)``.

    ``dim`` defaults to the smallest dimension at which the proof's five conditions and
    ``lambda1 < 1/3`` admit a lambda1; ``lambda1`` to
    :func:`annulus.proposition.canonical_lambda1`. Reported values have ``dps`` correct digits.
    """
    start = time.perf_counter()
    check_size(params, minimal_dimension_closed_form(params, third=True))
    if dim is not None:
        check_size(params, dim)
    d_star = minimal_dimension_search(params)
    d_default = minimal_dimension_search(params, third=True)
    d_closed = minimal_dimension_closed_form(params)
    d_exact = minimal_dimension_exact(params)
    d = d_default if dim is None else dim
    lam1 = canonical_lambda1(params, d) if lambda1 is None else lambda1
    con = params.construction(d, lam1)
    lam2 = con.lambda2
    kl = {"q_p_joint": enclose(con.kl_q_p_joint, dps), "p_q_joint": enclose(con.kl_p_q_joint, dps),
          "q_p_class0": enclose(con.kl_q_p_class0, dps),
          "p_q_class0": enclose(con.kl_p_q_class0, dps)}
    bounds = {"lemma2": enclose(con.lemma2_bound, dps), "lemma3": enclose(con.lemma3_bound, dps)}
    adm = admissible(params, d)
    q0_in = enclose(lambda ctx: con.q.posterior_on(ctx, con.inner, 0), dps)
    p0_exact = _ratio_in_ball(lam1, lam2)
    p0_in = p0_exact if p0_exact is not None else enclose(
        lambda ctx: con.p.posterior_on(ctx, con.inner, 0), dps)

    kl_checks = _kl_checks(con, params.eps, kl)
    lemmas = [_lemma1_check(con, dps, p0_in, q0_in), _lemma2_check(con, params.eps, kl, bounds),
              _lemma3_check(con, params.eps, kl, bounds)]
    conditions = _condition_checks(con, params, dps, p0_in, q0_in)
    attack = _attack_set(con, params.delta)
    props = _property_checks(con, params, dps, q0_in, attack)

    errata = find_errata(params, con, d_star, kl, p0_exact, attack.yp_bar, props.tv_grows,
                         props.tv_density, attack.prop1, props.attack_p)
    if dim is None and lambda1 is None:
        errata += _proof_gap_erratum(con, conditions, props)
    return Certificate(
        params=params, dimension=d, lambda1=lam1, lambda2=lam2,
        dimension_source=("the smallest with the proof's conditions and lambda1 < 1/3"
                          if dim is None else "user"),
        lambda1_source="canonical" if lambda1 is None else "user",
        minimal_dimension={"sufficient_conditions": d_star, "closed_form": d_closed,
                           "with_lambda1_below_third": d_default, "exact": d_exact},
        kl=kl, lemma_bounds=bounds, lemmas=lemmas, conditions=conditions,
        properties=props.checks, kl_checks=kl_checks, attack_probability=props.attack_p,
        attack_probability_check=props.attack_check,
        attack_radii=[(pc.lo, pc.hi) for pc in attack.pieces], errata=errata, dps=dps,
        seconds=time.perf_counter() - start,
        extra={"admissible_lambda1": {"lo": adm.lo, "hi": adm.hi, "empty": adm.empty},
               "median_piece": (attack.median.lo, attack.median.hi)},
    )


# ---- building blocks of build_certificate ---------------------------------------------------
def _const(x: Exact) -> Callable[[Ctx], Number]:
    """The exact number ``x`` as a function of the context."""
    return lambda ctx: num(ctx, x)


def _log_volume(con: Construction) -> Callable[[Ctx], Number]:
    """``log V = d log(1+Delta)``, ``V = (1+Delta)^d`` the volume ratio of the shell's ball."""
    return lambda ctx: con.d * ctx.log1p(num(ctx, con.Delta))


def _inv_volume(con: Construction) -> Callable[[Ctx], Number]:
    """``V^-1 = (1+Delta)^-d`` (the lower bound on lambda1 of Lemmas 2-3 and condition (4))."""
    return lambda ctx: ctx.exp(-con.d * ctx.log1p(num(ctx, con.Delta)))


def _one_minus_exp_neg(eps: Fraction) -> Callable[[Ctx], Number]:
    """``1 - e^-eps`` (Lemma 2's upper bound on lambda1, condition (3))."""
    return lambda ctx: -ctx.expm1(-num(ctx, eps))


def _kl_checks(con: Construction, eps: Fraction, kl: dict[str, mpmath.mpf]) -> list[Check]:
    """(18): both joint divergences ``KL(q||p)`` and ``KL(p||q)`` below ``eps``."""
    E = _const(eps)
    return [
        Check("KL(q||p)", "KL(q(x,y) || p(x,y)) < eps", _lt(con.kl_q_p_joint, E),
              kl["q_p_joint"], eps),
        Check("KL(p||q)", "KL(p(x,y) || q(x,y)) < eps", _lt(con.kl_p_q_joint, E),
              kl["p_q_joint"], eps),
    ]


def _lemma1_check(con: Construction, dps: int, p0_in: Fraction | mpmath.mpf,
                  q0_in: mpmath.mpf) -> Check:
    """Lemma 1: in the unit ball ``p(0|x) = lambda1/(lambda1+lambda2)`` (11) and
    ``q(0|x) = 1/(1+lambda2(1+Delta)^d)`` (12), against Bayes' rule to ``10^-dps``."""
    inner = con.inner
    tol = lambda ctx: ctx.mpf(10) ** (-dps)  # noqa: E731
    lemma1_ok = all(
        certify(lambda ctx, f=f, g=g: f(ctx) - g(ctx) + tol(ctx)).holds
        for f, g in ((lambda ctx: con.p.posterior_on(ctx, inner, 0), con.lemma1_p0),
                     (lambda ctx: con.q.posterior_on(ctx, inner, 0), con.lemma1_q0))
        for f, g in ((f, g), (g, f)))
    return Check(
        "Lemma 1", "for ||x|| < 1: p(0|x) = lambda1/(lambda1+lambda2) (11), "
        "q(0|x) = 1/(1+lambda2(1+Delta)^d) (12); compared with Bayes' rule on the densities",
        lemma1_ok, {"p0": p0_in, "q0": q0_in},
        {"p0": enclose(con.lemma1_p0, dps), "q0": enclose(con.lemma1_q0, dps)},
        note=f"agreement to 1e-{dps} certified")


def _lemma2_check(con: Construction, eps: Fraction, kl: dict[str, mpmath.mpf],
                  bounds: dict[str, mpmath.mpf]) -> Check:
    """Lemma 2: ``V^-1 < lambda1 < 1 - e^-eps`` gives
    ``KL(q||p) <= log(1/(1-lambda1)) <= eps`` (15); holds when the hypotheses fail."""
    L1 = _const(con.lambda1)
    hyp2 = _lt(_inv_volume(con), L1) and _lt(L1, _one_minus_exp_neg(eps))
    bound2 = certify(con.lemma2_gap, strict=False).holds
    concl2 = _lt(con.kl_q_p_joint, _const(eps), strict=False)
    return Check(
        "Lemma 2", "if (1+Delta)^-d < lambda1 < 1-e^-eps then KL(q||p) <= log(1/(1-lambda1)) "
        "<= eps (Eq. 15)", (not hyp2) or (bound2 and concl2), kl["q_p_class0"], bounds["lemma2"],
        note=f"hypotheses {'hold' if hyp2 else 'fail'}; exact KL(q(x|0)||p(x|0)) "
             f"{'<=' if bound2 else '>'} bound; KL(q(x,y)||p(x,y)) "
             f"{'<=' if concl2 else '>'} eps")


def _lemma3_check(con: Construction, eps: Fraction, kl: dict[str, mpmath.mpf],
                  bounds: dict[str, mpmath.mpf]) -> Check:
    """Lemma 3: ``V^-1 < lambda1 < min(1, eps/log V)`` gives
    ``KL(p||q) <= lambda1 log V < eps`` (17); holds when the hypotheses fail."""
    L1, log_v = _const(con.lambda1), _log_volume(con)
    hyp3 = (_lt(_inv_volume(con), L1) and compare(as_sci(con.lambda1), Fraction(1)) < 0
            and _lt(L1, lambda ctx: num(ctx, eps) / log_v(ctx)))
    bound3 = certify(con.lemma3_gap, strict=False).holds
    concl3 = _lt(con.kl_p_q_joint, _const(eps), strict=False)
    return Check(
        "Lemma 3", "if 1 > lambda1 > (1+Delta)^-d and lambda1 < eps/(d log(1+Delta)) then "
        "KL(p||q) <= lambda1 d log(1+Delta) < eps (Eq. 17)", (not hyp3) or (bound3 and concl3),
        kl["p_q_class0"], bounds["lemma3"],
        note=f"hypotheses {'hold' if hyp3 else 'fail'}; exact KL(p(x|0)||q(x|0)) "
             f"{'<=' if bound3 else '>'} bound; KL(p(x,y)||q(x,y)) "
             f"{'<=' if concl3 else '>'} eps")


def _condition_checks(con: Construction, params: Params, dps: int,
                      p0_in: Fraction | mpmath.mpf, q0_in: mpmath.mpf) -> list[Check]:
    """The proof's five sufficient conditions: (1) ``lambda1/(lambda1+lambda2) >= 1-delta``,
    (2) ``1/(1+lambda2 V) <= delta``, (3) ``lambda1 <= 1-e^-eps``, (4) ``lambda1 > V^-1``,
    (5) ``lambda1 < eps/log V``, with ``V = (1+Delta)^d``."""
    eps, delta = params.eps, params.delta
    lam1, lam2 = con.lambda1, con.lambda2
    L1, inv_v, log_v = _const(lam1), _inv_volume(con), _log_volume(con)
    eps_over_log_v = lambda ctx: num(ctx, eps) / log_v(ctx)  # noqa: E731
    # (1) lambda1/(lambda1+lambda2) >= 1-delta  <=>  delta lambda1 >= (1-delta) lambda2
    cond1 = compare(as_sci(lam1).scale(delta), as_sci(lam2).scale(1 - delta)) >= 0
    return [
        Check("(1)", "lambda1/(lambda1+lambda2) >= 1-delta", cond1, p0_in, 1 - delta, RATIONAL),
        Check("(2)", "1/(1+lambda2(1+Delta)^d) <= delta",
              _lt(con.lemma1_q0, _const(delta), strict=False), q0_in, delta),
        Check("(3)", "lambda1 <= 1-e^-eps",
              _lt(L1, _one_minus_exp_neg(eps), strict=False), lam1,
              enclose(_one_minus_exp_neg(eps), dps)),
        Check("(4)", "lambda1 > (1+Delta)^-d", _lt(inv_v, L1), lam1, enclose(inv_v, dps)),
        Check("(5)", "lambda1 < eps/(d log(1+Delta))", _lt(L1, eps_over_log_v), lam1,
              enclose(eps_over_log_v, dps)),
    ]


@dataclass(frozen=True)
class _AttackSet:
    """Properties 1-5 of the attack ``x -> xbar`` decided piece by piece (see
    :func:`_attack_set`)."""

    prop1: list[Piece]  # pieces of the shell 1 <= r < 1+Delta where property 1 holds
    prop4: list[Piece]  # those of them where property 4 holds too
    yp_bar: int  # y_p(xbar), xbar in the unit ball
    prop2: bool
    prop3: bool
    prop5: bool
    median: Piece  # the piece of the lower median of q(X), X ~ p
    pieces: list[Piece]  # the attack set: prop4 if properties 2, 3 and 5 hold, else none


@dataclass(frozen=True)
class _Properties:
    """Proposition 1's properties 1-7 and the attack probability, with the values reused by
    the errata."""

    checks: list[Check]
    attack_check: Check
    attack_p: mpmath.mpf
    log_q_bar: mpmath.mpf  # log q(xbar), xbar in the unit ball (log density)
    log_med: mpmath.mpf  # log of the median of q(X), X ~ p
    tv_density: mpmath.mpf
    tv_grows: bool


def _xbar_radius(r: Fraction, Delta: Fraction) -> Fraction:
    """``s(r) = (1 + max(r - Delta, 0))/2``, the radius of ``xbar = x s(r)/r``."""
    return (1 + max(r - Delta, Fraction(0))) / 2


def _density_at_least_median(con: Construction, med: Piece) -> bool:
    """Property 5 on one median piece: ``q(xbar) >= q`` on ``med``, ``xbar`` in the ball."""
    if med == con.inner:
        return True
    return certify(lambda ctx: con.q.log_marginal_on(ctx, con.inner)
                   - con.q.log_marginal_on(ctx, med), strict=False).holds


def _attack_mass(con: Construction, pcs: list[Piece]) -> Callable[[Ctx], Number]:
    """``P_{x~p}(||x|| in pcs)``: the ``p``-mass of the pieces ``pcs``."""
    return lambda ctx: sum((ctx.exp(con.p.log_mass_on(ctx, pc)) for pc in pcs), ctx.mpf(0))


def _attack_set(con: Construction, delta: Fraction) -> _AttackSet:
    """Properties 1-5 of the attack ``x -> xbar`` (radial move into the unit ball), piece by
    piece: the set of radii where all five hold."""
    # The shell [1, 1+Delta) is one common piece when Delta <= 1; for Delta > 1 it overlaps the
    # class-1 annulus [2, 3] and spans several pieces, on which property 1 is decided
    # separately (the attack set is the union of those where properties 1-5 hold). The
    # per-piece facts are those of annulus.pieces.PieceTable (exact rationals or intervals).
    Delta, inner = con.Delta, con.inner
    table = PieceTable.of(con, delta)
    prop1_pcs = [pc for k, pc in enumerate(con.pieces)
                 if pc.lo >= 1 and pc.hi <= 1 + Delta and table.yp[k] == 0
                 and table.yq[k] == 0 and table.conf_p[k] and table.conf_q[k]]
    # Property 4: xbar = x s(r)/r, s(r) = (1 + max(r - Delta, 0))/2; ||x - xbar|| = r - s(r)
    # increases with r, so on an open piece lo < r < hi its supremum is hi - s(hi), not
    # attained: ||x - xbar|| < Delta on the piece iff hi - s(hi) <= Delta (exact rationals).
    prop4_pcs = [pc for pc in prop1_pcs if pc.hi - _xbar_radius(pc.hi, Delta) <= Delta
                 and _xbar_radius(pc.hi, Delta) <= 1]
    k_in = con.pieces.index(inner)
    yp_bar = int(table.yp[k_in])
    prop2 = yp_bar == 0 and bool(table.yq[k_in] == 1)
    prop3 = yp_bar == 0 and bool(table.q_true_small[k_in] and table.conf_p[k_in])
    med_p, med_q = median_piece(con, "p"), median_piece(con, "q")
    prop5 = _density_at_least_median(con, med_p) and _density_at_least_median(con, med_q)
    return _AttackSet(prop1_pcs, prop4_pcs, yp_bar, prop2, prop3, prop5, med_p,
                      prop4_pcs if (prop2 and prop3 and prop5) else [])


def _property_checks(con: Construction, params: Params, dps: int, q0_in: mpmath.mpf,
                     attack: _AttackSet) -> _Properties:
    """Proposition 1's properties 1-7 (2 and 3 as corrected) and the check
    ``P_{x~p}(attack) > 1/3``."""
    delta, Delta, d = params.delta, params.Delta, con.d
    inner, prop1_pcs = con.inner, attack.prop1

    def V(f: Callable[[Ctx], Number]) -> mpmath.mpf:
        return enclose(f, dps)

    attack_mass = _attack_mass(con, attack.pieces)
    attack_p = V(attack_mass)
    log_cd = lambda ctx: log_unit_ball_volume(ctx, d)  # noqa: E731
    log_q_bar = V(lambda ctx: con.q.log_marginal_on(ctx, inner) - log_cd(ctx))
    log_med = V(lambda ctx: con.q.log_marginal_on(ctx, attack.median) - log_cd(ctx))
    sup_dist = max((pc.hi - _xbar_radius(pc.hi, Delta) for pc in prop1_pcs), default=None)
    conf_min = min((V(lambda ctx, m=m, pc=pc: m.posterior_on(ctx, pc, 0))
                    for pc in prop1_pcs for m in (con.p, con.q)), default=None)
    radii = ", ".join(f"[{fmt(pc.lo, 6)}, {fmt(pc.hi, 6)})" for pc in prop1_pcs) or "none"
    log10_ball = V(lambda ctx: con.log_ball_probability_bound(ctx) / ctx.log(10))
    tv_density = V(lambda ctx: ctx.exp(con.log_total_variation(ctx)))
    tv_classifier = V(lambda ctx: ctx.exp(con.log_classifier_variation(ctx)))
    tv_grows = certify(lambda ctx: con.log_total_variation(ctx) - ctx.log(ctx.mpf(d) / 3),
                       strict=False).holds
    checks = [
        Check("1", "y_q(x) = y_p(x) with p(y_p(x)|x) >= 1-delta and q(y_q(x)|x) >= 1-delta "
              f"(x in the shell 1 <= ||x|| < 1+Delta); holds for radii {radii}; value: the "
              "smallest confidence there", bool(prop1_pcs), conf_min, 1 - delta),
        Check("2", "y_p(xbar) = y_p(x) and y_q(xbar) != y_p(xbar) (corrected statement)",
              attack.prop2, {"y_p(xbar)": attack.yp_bar, "q(0|xbar)": q0_in}, Fraction(1, 2)),
        Check("3", "q(y_p(xbar)|xbar) <= delta and p(y_p(xbar)|xbar) >= 1-delta "
              "(corrected statement)", attack.prop3, q0_in, delta),
        Check("4", "||x - xbar|| < Delta (xbar = x (1 + max(||x||-Delta,0)) / (2||x||)); "
              "value: sup of ||x - xbar|| over the radii of property 1 (not attained)",
              bool(attack.prop4) and len(attack.prop4) == len(prop1_pcs), sup_dist, Delta,
              RATIONAL),
        Check("5", "q(xbar) >= median of q(X), X ~ p (lower median; also checked for X ~ q); "
              "value/bound are log densities", attack.prop5, log_q_bar, log_med),
        Check("6", "for Delta < 1: sup_c P_p(||X-c|| < Delta) <= Delta^d max_x C_d p(x) -> 0 as "
              "d -> inf; value: log10 of the bound at this d"
              + ("" if Delta < 1 else " (not applicable: the paper states it for Delta < 1)"),
              True if Delta < 1 else None, log10_ball, 0.0, "exact bound"),
        Check("7", "total variation 'can be made as small as desired': of the classifier "
              "q(0|.) (value) it is, -> 0 as d grows; of the density p it is not: "
              "int |grad p| >= d/3 on B(0,3) (bound: TV(p) at this d)", True, tv_classifier,
              tv_density, "exact", note="classifier reading holds; density reading fails"
              if tv_grows else "both readings small here"),
    ]
    attack_check = Check(
        "P(attack)", "P_{x~p}(an attack with properties 1-5 exists) > 1/3",
        bool(attack.pieces) and certify(lambda ctx: attack_mass(ctx)
                                        - num(ctx, Fraction(1, 3))).holds,
        attack_p, Fraction(1, 3))
    return _Properties(checks, attack_check, attack_p, log_q_bar, log_med, tv_density, tv_grows)


def _proof_gap_erratum(con: Construction, conditions: list[Check],
                       props: _Properties) -> list[Erratum]:
    """The proof's claim that (1)-(5) suffice for properties 1-5, where (1)-(5) hold but a
    property fails (at the default ``d`` and canonical lambda1 only); else nothing."""
    failing = [c.id for c in props.checks if c.id in PROPS_1_5 and not c.holds]
    if not (all(c.holds for c in conditions) and failing):
        return []
    return [Erratum(
        "Proposition 1 proof, properties 1-5",
        "In order to satisfy conditions 1-5, using previous lemmas, it is enough that "
        "(1)-(5)",
        f"(1)-(5) hold here but property {', '.join(failing)} fails. For Delta < 1 "
        "condition (2) makes the unit ball q's densest region, so property 5 holds; for "
        "Delta >= 1 no condition compares q in the ball, (V^-1 + lambda2)/2, with the "
        "annulus 2 < r < 3 (property 5 fails e.g. at Delta = 5 and 10, holds at 1, 2, 3 "
        "and 100, each at its default d)",
        f"d = {con.d}, lambda1 = {fmt(con.lambda1, 8)} (canonical): log q(xbar) = "
        f"{fmt(props.log_q_bar, 8)} < log median = {fmt(props.log_med, 8)}")]


def find_errata(params: Params, con: Construction, d_star: int, kl: dict[str, mpmath.mpf],
                p0_exact: Fraction | None, yp_bar: int, tv_grows: bool,
                tv_density: mpmath.mpf, prop1_pcs: list[Piece],
                attack_p: mpmath.mpf) -> list[Erratum]:
    """Statements of Appendix D contradicted by the exact computation at these parameters."""
    out: list[Erratum] = []
    delta, Delta = params.delta, params.Delta
    # Lemmas 2-3: the chain rule gives half the class-0 divergence, not all of it.
    if kl["q_p_class0"] > 0 and certify(
            lambda ctx: con.kl_q_p_class0(ctx) - con.kl_q_p_joint(ctx)).holds:
        out.append(Erratum(
            "Lemma 2 proof (and Lemma 3)",
            "KL(q(x,y)||P(x,y)) = KL(q(x|y=0)||P(x|y=0))",
            "KL(q(x,y)||p(x,y)) = 1/2 KL(q(x|0)||p(x|0)) (p(y)=q(y)=1/2 and q(x|1)=p(x|1)); the "
            "lemmas' bounds hold a fortiori, with room of a factor 2",
            "exact joint/class-0 ratio = 0.5 (both class-0 KLs are Bernoulli KLs, halved)"))
    out.append(Erratum(
        "Lemma 2 and condition (3)",
        "Lemma 2: if ... lambda1 < 1 - e^-eps; condition 3: lambda1 <= 1 - e^-eps",
        "condition (3) must be strict to meet Lemma 2's hypothesis; at equality Eq. (15) gives "
        "only KL(q(x|0)||p(x|0)) <= eps, not the strict (18) - which the factor 1/2 of the "
        "chain rule (erratum above) restores. No rational lambda1 attains the equality "
        "(1 - e^-eps is irrational for rational eps > 0), so it never bites here",
        "the statements of Lemma 2 and of the proof of Proposition 1"))
    # Properties 2 and 3 as printed.
    if yp_bar == 0:
        out.append(Erratum(
            "Proposition 1, property 2",
            "y_q(x) != y(xbar), y_q(xbar) = y(xbar)",
            "y_p(xbar) = y_p(x) and y_q(xbar) != y_p(xbar): the prediction changes, the "
            "ground-truth label does not",
            "at the attack y_q(x) = 0 = y_p(xbar), so the printed first clause is false; the "
            "printed second clause says the attacked point is classified correctly"))
    q_pred_conf = enclose(lambda ctx: con.q.posterior_on(ctx, con.inner, 1))  # y_q(xbar) = 1
    if q_pred_conf >= num(mpmath.mp, delta):
        tie = p0_exact is not None and p0_exact == 1 - delta
        out.append(Erratum(
            "Proposition 1, property 3",
            "q(y_q(xbar)|xbar) < delta, p(y_p(xbar)|xbar) > 1 - delta",
            "q(y_p(xbar)|xbar) <= delta and p(y_p(xbar)|xbar) >= 1 - delta: the model gives the "
            "TRUE class probability at most delta (the printed form asks the predicted class "
            "to have probability < delta, impossible for a prediction when delta < 1/2); <= "
            "because condition (2) is <=, and >= because the proof's lambda2 = delta/(1-delta) "
            "lambda1 makes p(0|xbar) = 1 - delta exactly",
            f"q(y_q(xbar)|xbar) = {fmt(q_pred_conf, 8)} >= delta"
            + ("; p(0|xbar) = lambda1/(lambda1+lambda2) = 1 - delta exactly (rational "
               "arithmetic), so the strict > fails" if tie else "")))
    # The order of the dimension.
    order = enclose(lambda ctx: paper_dimension_order(params, ctx))
    if order <= 0:
        out.append(Erratum(
            "Proposition 1, dimension",
            "d = O~((log(delta/(1+delta)) + log(1/delta)) / log(1+Delta))",
            "d* = max(ceil(log(K/(1-e^-eps))/L), floor(-W_{-1}(-eps/K)/L) + 1) with "
            "K = ((1-delta)/delta)^2, L = log(1+Delta) (see annulus.proposition); "
            "d* ~ (2 log((1-delta)/delta) + log(1/eps) + log log(K/eps)) / log(1+Delta)",
            f"the printed expression equals -log(1+delta)/log(1+Delta) = {fmt(order, 8)} "
            f"< 0, while the proof's conditions first hold at d* = {d_star}"))
    out += _eq19_erratum(params, d_star)
    adm = admissible(params, d_star)
    if not adm.empty and adm.hi >= mpmath.mpf(1) / 3:
        out.append(Erratum(
            "Proposition 1 proof, probability 1/3",
            "conditions (1)-(5) suffice for properties 1-5 'with probability greater than 1/3'",
            "for Delta <= 1 the attack probability is exactly (1-lambda1)/2 (the whole shell), "
            "> 1/3 iff lambda1 < 1/3, which (1)-(5) do not imply: add lambda1 < 1/3 (the "
            "default d here does)",
            f"at d* = {d_star} the admissible lambda1 reach {fmt(adm.hi, 8)} >= 1/3"))
    if Delta > 1:
        radii = ", ".join(f"[{fmt(pc.lo, 6)}, {fmt(pc.hi, 6)})" for pc in prop1_pcs) or "none"
        out.append(Erratum(
            "Proposition 1 for Delta > 1",
            "with probability greater than 1/3 over samples x ~ p there is an adversarial "
            "example (the proof moves the shell 1 < ||x|| < 1+Delta into the unit ball)",
            "for Delta > 1 the shell overlaps the class-1 annulus 2 <= r <= 3, where p and q "
            "are no longer confident in class 0 unless (1+Delta)^d is far below 3^d: property 1 "
            f"holds only for radii {radii}, so the attack probability is not (1-lambda1)/2; "
            "the paper states property 6 for Delta < 1 only",
            f"P(attack) = {fmt(attack_p, 8)} at d = {con.d}"))
    if tv_grows:
        out.append(Erratum(
            "Proposition 1, property 7 and its proof",
            "the total variation of the distribution can be made as small as desired (it is "
            "bounded by sphere areas that go to 0 with d)",
            "two readings. Of the density p: false - any density on B(0,3) has "
            "int |grad p| >= d/3 (integrate x . grad p = -d p), and here the jumps of size "
            "~1/C_d meet sphere areas d C_d r^(d-1). Of the classifier q(0|.): true - its "
            "jumps are at most 1 and the sphere areas vanish with d; this reading fits the "
            "stated purpose (no misclassification on a dense null set)",
            f"TV(p) = {fmt(tv_density, 8)} >= d/3 = {fmt(Fraction(con.d, 3), 8)} at "
            f"d = {con.d}; TV of q(0|.) is the property's value above"))
    return out


def _eq19_erratum(params: Params, d_star: int) -> list[Erratum]:
    """(19) alone against the five conditions: the first ``d`` at which it admits a lambda1
    (``B`` is false-then-true from ``d = 1``: its failure set is one interval of ``t``)."""
    d19 = first_eq19(params)
    if d19 >= d_star:
        return []
    adm = admissible(params, d19)
    third = [f"lambda1 in [{fmt(adm.lo, 6)}, {fmt(adm.hi5, 6)})"]
    if adm.lo >= 1:
        third.append("none of them a probability")
    elif adm.lo >= mpmath.mpf(1) / 2:
        third.append("all >= 1/2, where 1 - x >= e^-2x fails")
    elif adm.lo > adm.hi3:
        third.append(f"all above 1 - e^-eps = {fmt(adm.hi3, 6)} (condition 3)")
    return [Erratum(
        "Proposition 1 proof, Eq. (19)",
        "Condition 3 can be satisfied with lambda1 < eps/2 by using 1 - x >= e^-2x for "
        "x < 1/2. This boils down to ensuring d is large enough so that there is a valid "
        "lambda1 such as (19)",
        "(19) must keep lambda1 < eps/2 (implied by (5) only once d log(1+Delta) >= 2) and the "
        "implicit lambda1 < 1/2 that 1 - x >= e^-2x needs; with them (or with condition (3) "
        f"itself) the proof's conditions first hold at d* = {d_star}",
        f"(19) alone already admits a lambda1 at d = {d19}: " + ", ".join(third))]

