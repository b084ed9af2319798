"""The certificate: every lemma, condition and property of Appendix D checked exactly, and the
errata that the computation exposes.

Each inequality is decided by :func:`annulus.numeric.certify` (interval arithmetic with outward
rounding, precision doubled until the sign is certain) or, where both sides are small rationals,
by exact rational arithmetic; every :class:`Check` records which. Reported values are mpmath
floats at the requested precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath

from annulus.construction import Construction
from annulus.numeric import (
    Ctx,
    Number,
    certify,
    log_annulus_volume_ratio,
    log_unit_ball_volume,
    num,
)
from annulus.proposition import (
    Params,
    admissible,
    canonical_lambda1,
    condition_B,
    first_true,
    minimal_dimension_closed_form,
    minimal_dimension_exact,
    minimal_dimension_search,
    paper_dimension_order,
)
from annulus.radial import Piece

INTERVAL = "interval arithmetic (mpmath.iv)"
RATIONAL = "exact rational arithmetic"


@dataclass
class Check:
    """One claim: its exact value, what it is compared with, and whether it holds."""

    id: str
    statement: str
    holds: bool
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
    lambda1: Fraction
    lambda2: Fraction
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
    errata: list[Erratum]
    dps: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def certified(self) -> bool:
        """KLs below eps and properties 1-5 hold (the claims of Prop. 1 that define success)."""
        return all(c.holds for c in self.kl_checks) and all(
            c.holds for c in self.properties if c.id in {"1", "2", "3", "4", "5"})


def _lt(f: Callable[[Ctx], Number], g: Callable[[Ctx], Number], strict: bool = True) -> bool:
    """Certified ``f < g`` (or ``<=``)."""
    return certify(lambda ctx: g(ctx) - f(ctx), strict=strict).holds


def _median_piece(con: Construction, under: str) -> Piece:
    """The piece holding the lower median of ``q(X)`` for ``X ~ p`` or ``X ~ q``."""
    mp = mpmath.mp
    dist = con.p if under == "p" else con.q
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


def build_certificate(params: Params, dim: int | None = None, lambda1: Fraction | None = None,
                      dps: int = 30) -> Certificate:
    """Check Proposition 1 and Lemmas 1-3 at ``(eps, delta, Delta)``.

    ``dim`` defaults to the smallest dimension at which the proof's five conditions admit a
    lambda1; ``lambda1`` to :func:`annulus.proposition.canonical_lambda1`.
    """
    start = time.perf_counter()
    d_search = minimal_dimension_search(params)
    d_closed = minimal_dimension_closed_form(params)
    d_exact = minimal_dimension_exact(params)
    d = d_search if dim is None else dim
    lam1 = canonical_lambda1(params, d) if lambda1 is None else lambda1
    con = params.construction(d, lam1)
    eps, delta = params.eps, params.delta
    E = lambda ctx: num(ctx, eps)  # noqa: E731

    with mpmath.mp.workdps(dps + 10):
        mp = mpmath.mp
        kl = {
            "q_p_joint": con.kl_q_p_joint(mp), "p_q_joint": con.kl_p_q_joint(mp),
            "q_p_class0": con.kl_q_p_class0(mp), "p_q_class0": con.kl_p_q_class0(mp),
        }
        bounds = {"lemma2": con.lemma2_bound(mp), "lemma3": con.lemma3_bound(mp)}
        log_v = d * mp.log1p(num(mp, params.Delta))
        adm = admissible(params, d)
        inner = con.inner
        p0_in = con.p.posterior_on(mp, inner, 0)
        q0_in = con.q.posterior_on(mp, inner, 0)

    kl_checks = [
        Check("KL(q||p)", "KL(q(x,y) || p(x,y)) < eps", _lt(con.kl_q_p_joint, E),
              kl["q_p_joint"], eps),
        Check("KL(p||q)", "KL(p(x,y) || q(x,y)) < eps", _lt(con.kl_p_q_joint, E),
              kl["p_q_joint"], eps),
    ]

    # ---- Lemmas ---------------------------------------------------------------------------
    inv_v = lambda ctx: ctx.exp(-d * ctx.log1p(num(ctx, params.Delta)))  # noqa: E731
    L1 = lambda ctx: num(ctx, lam1)  # noqa: E731
    lemmas: list[Check] = []
    lemma1_ok = (certify(lambda ctx: con.p.posterior_on(ctx, inner, 0) - con.lemma1_p0(ctx)
                         + ctx.mpf(10) ** (-dps), strict=True).holds
                 and certify(lambda ctx: con.lemma1_p0(ctx) - con.p.posterior_on(ctx, inner, 0)
                             + ctx.mpf(10) ** (-dps), strict=True).holds
                 and certify(lambda ctx: con.q.posterior_on(ctx, inner, 0) - con.lemma1_q0(ctx)
                             + ctx.mpf(10) ** (-dps), strict=True).holds
                 and certify(lambda ctx: con.lemma1_q0(ctx) - con.q.posterior_on(ctx, inner, 0)
                             + ctx.mpf(10) ** (-dps), strict=True).holds)
    lemmas.append(Check(
        "Lemma 1", "for ||x|| < 1: p(0|x) = lambda1/(lambda1+lambda2) (11), "
        "q(0|x) = 1/(1+lambda2(1+Delta)^d) (12); compared with Bayes' rule on the densities",
        lemma1_ok, {"p0": p0_in, "q0": q0_in}, {"p0": con.lemma1_p0(mpmath.mp),
                                                "q0": con.lemma1_q0(mpmath.mp)},
        note=f"agreement to 1e-{dps} certified"))
    hyp2 = _lt(inv_v, L1) and _lt(L1, lambda ctx: -ctx.expm1(-num(ctx, eps)))
    bound2 = certify(con.lemma2_gap, strict=False).holds
    concl2 = _lt(con.kl_q_p_joint, E, strict=False)
    lemmas.append(Check(
        "Lemma 2", "if (1+Delta)^-d < lambda1 < 1-e^-eps then KL(q||p) <= log(1/(1-lambda1)) "
        "<= eps (Eq. 15)", (not hyp2) or (bound2 and concl2), kl["q_p_class0"], bounds["lemma2"],
        note=f"hypotheses {'hold' if hyp2 else 'fail'}; exact KL(q(x|0)||p(x|0)) "
             f"{'<=' if bound2 else '>'} bound; KL(q(x,y)||p(x,y)) "
             f"{'<=' if concl2 else '>'} eps"))
    hyp3 = (_lt(inv_v, L1) and lam1 < 1
            and _lt(L1, lambda ctx: num(ctx, eps) / (d * ctx.log1p(num(ctx, params.Delta)))))
    bound3 = certify(con.lemma3_gap, strict=False).holds
    concl3 = _lt(con.kl_p_q_joint, E, strict=False)
    lemmas.append(Check(
        "Lemma 3", "if 1 > lambda1 > (1+Delta)^-d and lambda1 < eps/(d log(1+Delta)) then "
        "KL(p||q) <= lambda1 d log(1+Delta) < eps (Eq. 17)", (not hyp3) or (bound3 and concl3),
        kl["p_q_class0"], bounds["lemma3"],
        note=f"hypotheses {'hold' if hyp3 else 'fail'}; exact KL(p(x|0)||q(x|0)) "
             f"{'<=' if bound3 else '>'} bound; KL(p(x,y)||q(x,y)) "
             f"{'<=' if concl3 else '>'} eps"))

    # ---- the proof's five sufficient conditions ---------------------------------------------
    lam2 = con.lambda2
    cond1 = lam1 / (lam1 + lam2) >= 1 - delta if lam1 + lam2 > 0 else False
    conditions = [
        Check("(1)", "lambda1/(lambda1+lambda2) >= 1-delta", cond1,
              lam1 / (lam1 + lam2) if lam1 + lam2 else None, 1 - delta, RATIONAL),
        Check("(2)", "1/(1+lambda2(1+Delta)^d) <= delta",
              _lt(con.lemma1_q0, lambda ctx: num(ctx, delta), strict=False), q0_in, delta),
        Check("(3)", "lambda1 <= 1-e^-eps",
              _lt(L1, lambda ctx: -ctx.expm1(-num(ctx, eps)), strict=False), lam1, adm.hi3),
        Check("(4)", "lambda1 > (1+Delta)^-d", _lt(inv_v, L1), lam1, mpmath.exp(-log_v)),
        Check("(5)", "lambda1 < eps/(d log(1+Delta))",
              _lt(L1, lambda ctx: num(ctx, eps) / (d * ctx.log1p(num(ctx, params.Delta)))),
              lam1, adm.hi5),
    ]

    # ---- Proposition 1's properties (the attack x -> xbar: radial move into the ball) ----------
    # The shell [1, 1+Delta) is one common piece when Delta <= 1; for Delta > 1 it overlaps the
    # class-1 annulus [2, 3] and spans several pieces, on which property 1 must be checked
    # separately (the attack set is the union of those where it holds).
    shell_pcs = [pc for pc in con.pieces if pc.lo >= 1 and pc.hi <= 1 + params.Delta]

    def _prop1_on(pc: Piece) -> bool:
        return all(certify(lambda ctx, m=m: m.posterior_on(ctx, pc, 0) - (1 - num(ctx, delta)),
                           strict=False).holds for m in (con.p, con.q))

    attack_pcs = [pc for pc in shell_pcs if _prop1_on(pc)]
    with mpmath.mp.workdps(dps + 10):
        p0_sh = con.p.posterior_on(mpmath.mp, shell_pcs[0], 0)
        q0_sh = con.q.posterior_on(mpmath.mp, shell_pcs[0], 0)
    prop1 = bool(attack_pcs)
    yp_bar = 0 if p0_in > mpmath.mpf(1) / 2 else 1
    q_wrong = certify(
        lambda ctx: num(ctx, Fraction(1, 2)) - con.q.posterior_on(ctx, inner, 0)).holds
    prop2 = yp_bar == 0 and q_wrong
    q_true_small = _lt(lambda ctx: con.q.posterior_on(ctx, inner, 0), lambda ctx: num(ctx, delta),
                       strict=False)
    prop3 = q_true_small and cond1 and yp_bar == 0
    # Property 4: xbar = x * s(r) / r with s(r) = (1 + max(r - Delta, 0)) / 2 < 1 and
    # ||x - xbar|| = r - s(r) < Delta for every 1 <= r < 1 + Delta.
    with mpmath.mp.workdps(dps + 10):
        mp = mpmath.mp
        # E[||x|| | shell] = d/(d+1) (b^(d+1) - 1)/(b^d - 1), b = 1 + Delta
        b = 1 + params.Delta
        mean_r = mp.exp(mp.log(mp.mpf(d) / (d + 1))
                        + log_annulus_volume_ratio(mp, Fraction(1), b, d + 1)
                        - log_annulus_volume_ratio(mp, Fraction(1), b, d))
        mean_dist = (mean_r - 1 + num(mp, params.Delta)) / 2 if params.Delta < 1 else None
        attack_mass = sum((mp.exp(con.p.log_mass_on(mp, pc)) for pc in attack_pcs), mp.mpf(0))
    # r - s(r) increases with r, so on an open piece lo < r < hi its supremum is hi - s(hi),
    # not attained: ||x - xbar|| < Delta on the piece iff hi - s(hi) <= Delta (exact rationals).
    def _step(r: Fraction) -> Fraction:
        return r - (1 + max(r - params.Delta, Fraction(0))) / 2

    prop4 = bool(attack_pcs) and all(_step(pc.hi) <= params.Delta and
                                     (1 + max(pc.hi - params.Delta, Fraction(0))) / 2 <= 1
                                     for pc in attack_pcs)
    med_p = _median_piece(con, "p")
    med_q = _median_piece(con, "q")

    def _dens_ok(med: Piece) -> bool:
        if med == inner:
            return True
        return certify(lambda ctx: con.q.log_marginal_on(ctx, inner)
                       - con.q.log_marginal_on(ctx, med), strict=False).holds

    prop5 = _dens_ok(med_p) and _dens_ok(med_q)
    with mpmath.mp.workdps(dps + 10):
        mp = mpmath.mp
        log_cd = log_unit_ball_volume(mp, d)
        log_q_bar = con.q.log_marginal_on(mp, inner) - log_cd
        med_level = con.q.log_marginal_on(mp, med_p)
        log_med = (med_level - log_cd) if med_level is not None else mp.mpf("-inf")
        log_ball = con.log_ball_probability_bound(mp)
        log_tv = con.log_total_variation(mp)
        tv_lower = d * (1 - num(mp, lam2)) / 6
    tv_grows = certify(lambda ctx: con.log_total_variation(ctx)
                       - ctx.log(d * (1 - num(ctx, lam2)) / 6), strict=False).holds
    properties = [
        Check("1", "y_q(x) = y_p(x) with p(y_p(x)|x) >= 1-delta and q(y_q(x)|x) >= 1-delta "
              "(x in the shell 1 < ||x|| < 1+Delta)", prop1, min(p0_sh, q0_sh), 1 - delta),
        Check("2", "y_p(xbar) = y_p(x) and y_q(xbar) != y_p(xbar) (corrected statement)",
              prop2, {"y_p(xbar)": yp_bar, "q(0|xbar)": q0_in}, Fraction(1, 2)),
        Check("3", "q(y_p(xbar)|xbar) <= delta and p(y_p(xbar)|xbar) >= 1-delta "
              "(corrected statement)", prop3, q0_in, delta),
        Check("4", "||x - xbar|| < Delta (xbar = x (1 + max(||x||-Delta,0)) / (2||x||)); "
              "value: mean distance over the attackable set, sup = Delta not attained",
              prop4, mean_dist, params.Delta, RATIONAL),
        Check("5", "q(xbar) >= median of q(X), X ~ p (lower median; also checked for X ~ q); "
              "value/bound are log densities", prop5, log_q_bar, log_med),
        Check("6", "sup_c P_p(||X-c|| < Delta) <= Delta^d max_x C_d p(x) -> 0 as d -> inf "
              "(needs Delta < 1); value: log10 of the bound at this d", params.Delta < 1,
              log_ball / mpmath.log(10), 0.0, "exact bound (mp)"),
        Check("7", "total variation int |grad p| dx 'can be made as small as desired'; value: "
              "TV(p) at this d, bound: the lower bound d (1-lambda2)/6 (grows with d)",
              not tv_grows, mpmath.exp(log_tv), tv_lower, "exact (mp)"),
    ]
    attack_ok = prop1 and prop2 and prop3 and prop5
    attack_p = attack_mass if attack_ok else mpmath.mpf(0)
    attack_check = Check(
        "P(attack)", "P_{x~p}(an attack with properties 1-5 exists) > 1/3",
        attack_ok and certify(lambda ctx: sum((ctx.exp(con.p.log_mass_on(ctx, pc))
                                               for pc in attack_pcs), ctx.mpf(0))
                              - num(ctx, Fraction(1, 3))).holds,
        attack_p, Fraction(1, 3))

    errata = find_errata(params, con, d_search, kl, q0_in, yp_bar, tv_grows, tv_lower, log_tv)
    failing = [c.id for c in properties if c.id in {"1", "2", "3", "4", "5"} and not c.holds]
    if d == d_search and lambda1 is None and all(c.holds for c in conditions) and failing:
        errata.append(Erratum(
            "Proposition 1 proof",
            "to satisfy properties 1-5 it is enough that conditions (1)-(5) hold",
            f"conditions (1)-(5) hold here but property {', '.join(failing)} fails; for "
            "property 5 the model density in the ball, (V^-1 + lambda2)/2, must exceed the "
            "median level of q, which no condition ensures (it fails when the annulus 2<r<3 "
            "is denser under q, e.g. Delta >= 1)",
            f"d = {d}, lambda1 = {float(lam1):.6g} (canonical)"))
    return Certificate(
        params=params, dimension=d, lambda1=lam1, lambda2=lam2,
        dimension_source="the minimal one for the proof's conditions" if dim is None else "user",
        lambda1_source="canonical" if lambda1 is None else "user",
        minimal_dimension={"sufficient_conditions": d_search, "closed_form": d_closed,
                           "exact": d_exact},
        kl=kl, lemma_bounds=bounds, lemmas=lemmas, conditions=conditions,
        properties=properties, kl_checks=kl_checks, attack_probability=attack_p,
        attack_probability_check=attack_check, errata=errata, dps=dps,
        seconds=time.perf_counter() - start,
        extra={"admissible_lambda1": {"lo": adm.lo, "hi": adm.hi, "empty": adm.empty},
               "median_piece": (med_p.lo, med_p.hi)},
    )


def find_errata(params: Params, con: Construction, d_search: int, kl: dict[str, mpmath.mpf],
                q0_in: mpmath.mpf, yp_bar: int, tv_grows: bool, tv_lower: mpmath.mpf,
                log_tv: mpmath.mpf) -> list[Erratum]:
    """Statements of Appendix D contradicted by the exact computation at these parameters."""
    out: list[Erratum] = []
    mp = mpmath.mp
    # Lemmas 2-3: the chain rule gives half the class-0 divergence, not all of it.
    if kl["q_p_class0"] > 0 and certify(
            lambda ctx: con.kl_q_p_class0(ctx) - con.kl_q_p_joint(ctx)).holds:
        ratio = kl["q_p_joint"] / kl["q_p_class0"]
        out.append(Erratum(
            "Lemma 2 proof (and Lemma 3)",
            "KL(q(x,y)||P(x,y)) = KL(q(x|y=0)||P(x|y=0))",
            "KL(q(x,y)||p(x,y)) = 1/2 KL(q(x|0)||p(x|0)) (p(y)=q(y)=1/2 and q(x|1)=p(x|1)); the "
            "lemmas' bounds hold a fortiori, with room of a factor 2",
            f"exact joint/class-0 ratio = {mp.nstr(ratio, 12)}"))
    # Properties 2 and 3 as printed.
    yq_x = 0  # q(0|x) = 1 on the shell
    if not (yq_x != yp_bar):
        out.append(Erratum(
            "Proposition 1, property 2",
            "y_q(x) != y(xbar), y_q(xbar) = y(xbar)",
            "y_p(xbar) = y_p(x) and y_q(xbar) != y_p(xbar): the prediction changes, the "
            "ground-truth label does not",
            f"at the attack y_q(x) = {yq_x} = y_p(xbar) = {yp_bar}, so the printed first clause "
            "is false; the printed second clause says the attacked point is classified correctly"))
    q_pred_conf = 1 - q0_in  # q(y_q(xbar)|xbar) with y_q(xbar) = 1
    if q_pred_conf >= num(mp, params.delta):
        out.append(Erratum(
            "Proposition 1, property 3",
            "q(y_q(xbar)|xbar) < delta",
            "q(y_p(xbar)|xbar) <= delta: the model gives the TRUE class probability at most "
            "delta (the printed form asks the predicted class to have probability < delta, "
            "impossible for a prediction when delta < 1/2); <= because condition (2) is <=",
            f"q(y_q(xbar)|xbar) = {mp.nstr(q_pred_conf, 8)} >= delta"))
    # The order of the dimension.
    order = paper_dimension_order(params)
    if order <= 0:
        out.append(Erratum(
            "Proposition 1, dimension",
            "d = O~((log(delta/(1+delta)) + log(1/delta)) / log(1+Delta))",
            "d* = max(ceil(log(K/(1-e^-eps))/L), floor(-W_{-1}(-eps/K)/L) + 1) with "
            "K = ((1-delta)/delta)^2, L = log(1+Delta) (see annulus.proposition); "
            "d* ~ (2 log((1-delta)/delta) + log(1/eps) + log log(K/eps)) / log(1+Delta)",
            f"the printed expression equals -log(1+delta)/log(1+Delta) = {mp.nstr(order, 8)} "
            f"< 0, while the minimal dimension is {d_search}"))
    # Eq. (19) drops conditions (3) and lambda1 <= 1.
    with mp.workdps(50):
        L = params.log_L(mp)
        c = mp.log(num(mp, params.K) / num(mp, params.eps))
    d_start = max(1, int(mp.ceil(1 / L)))
    d19 = 1 if c < 1 else first_true(lambda dd: condition_B(params, dd), d_start)
    if d19 < d_search:
        out.append(Erratum(
            "Proposition 1 proof, Eq. (19)",
            "(19) K (1+Delta)^-d < lambda1 < eps/(d log(1+Delta)) is all that is needed",
            "condition (3) lambda1 <= 1-e^-eps (and lambda1 <= 1) must be kept: for these "
            f"parameters (19) holds from d = {d19} on, but the five conditions first admit a "
            f"lambda1 at d = {d_search}",
            "found by the certified search over d"))
    adm = admissible(params, d_search)
    if not adm.empty and adm.hi >= mp.mpf(1) / 3:
        out.append(Erratum(
            "Proposition 1 proof",
            "conditions (1)-(5) suffice for properties 1-5 'with probability greater than 1/3'",
            "the attack probability is exactly (1-lambda1)/2, > 1/3 iff lambda1 < 1/3, which "
            "(1)-(5) do not imply: add lambda1 < 1/3",
            f"at d = {d_search} the admissible lambda1 reach {mp.nstr(adm.hi, 8)} >= 1/3"))
    if tv_grows:
        out.append(Erratum(
            "Proposition 1, property 7 and its proof",
            "the total variation of the distribution can be made as small as desired (it is "
            "bounded by sphere areas that go to 0 with d)",
            "the total variation int |grad p| of the density is at least d(1-lambda2)/6 and "
            "grows linearly in d: the sphere area d C_d r^(d-1) is multiplied by jumps of size "
            "~1/C_d, and d C_d / C_d = d. (The total-variation *distance* TV(p, q) is small: "
            "<= sqrt(KL/2) by Pinsker.)",
            f"TV(p) = {mp.nstr(mp.exp(log_tv), 8)} >= d(1-lambda2)/6 = {mp.nstr(tv_lower, 8)} "
            f"at d = {con.d}"))
    return out
