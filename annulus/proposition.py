"""Proposition 1: the proof's sufficient conditions, the minimal dimension, the choice of lambda1.

With ``lambda2 = delta / (1 - delta) * lambda1`` (the proof's choice, condition 1 then holds with
equality), ``K = ((1 - delta) / delta)^2``, ``L = log(1 + Delta)`` and ``t = d L = log (1+Delta)^d``
the five conditions of the proof read

    (2)  lambda1 >= K e^{-t}             (q(0|x) <= delta in the unit ball, Lemma 1)
    (3)  lambda1 <= 1 - e^{-eps}         (Lemma 2)
    (4)  lambda1 >  e^{-t}               (Lemmas 2, 3; implied by (2) since K > 1)
    (5)  lambda1 <  eps / t              (Lemma 3)

(and lambda1 <= 1, a mixture weight). They admit a lambda1 iff
``A(d): K e^{-t} <= 1 - e^{-eps}`` and ``B(d): K e^{-t} < eps / t``. ``A`` is monotone in ``d``;
``B`` is ``t - log t > c`` with ``c = log(K / eps)``, and as ``t - log t`` is convex its failure set
is an interval of ``t`` (empty when ``c < 1``) with ends ``t_- = -W_0(-eps/K)`` and
``t_+ = -W_{-1}(-eps/K)`` (Lambert W). Hence the closed form

    d* = ceil(t_A / L)                                if B holds at that d,
    d* = max(ceil(t_A / L), floor(t_+ / L) + 1)       otherwise,

with ``t_A = log(K / (1 - e^{-eps}))``. Asymptotically ``d* ~ (log(K/eps) + log log(K/eps)) / L``.

The probability ``> 1/3`` of the attack needs one more condition, which the proof omits:
``(1-lambda1)/2 > 1/3``, i.e. ``C: lambda1 < 1/3``, admissible iff ``K e^{-t} < 1/3`` (monotone in
``d``, ``d_C = floor(log(3K)/L) + 1``). The default dimension is the smallest at which
(1)-(5) *and* C admit a lambda1 (``third=True`` below); the proof's own ``d*`` drops C.
Every search starts from the closed form and certifies its answer (``pred(d)`` and not
``pred(d - 1)``), so its cost does not grow with ``d``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import mpmath

from annulus.construction import Construction, Weight
from annulus.numeric import (
    Ctx,
    Number,
    Sci,
    UndecidableError,
    bernoulli_kl,
    certify,
    exact_fraction,
    log_num,
    num,
)

#: Significant digits kept (at least) when a real lambda1 is turned into an exact number.
LAMBDA_DIGITS = 30
#: Largest number of digits tried for lambda1 before giving up (a thinner admissible interval
#: than 10^-LAMBDA_MAX_DIGITS, relative, is reported as an error).
LAMBDA_MAX_DIGITS = 4000
THIRD = Fraction(1, 3)


@dataclass(frozen=True)
class Params:
    """The targets of Proposition 1: KL bound ``eps``, confidence ``delta``, budget ``Delta``."""

    eps: Fraction
    delta: Fraction
    Delta: Fraction

    def __post_init__(self) -> None:
        if self.eps <= 0:
            raise ValueError(f"eps must be > 0, got {float(self.eps)}")
        if not 0 < self.delta < Fraction(1, 2):
            raise ValueError(f"delta must lie in (0, 1/2), got {float(self.delta)}")
        if self.Delta <= 0:
            raise ValueError(f"Delta must be > 0, got {float(self.Delta)}")

    @property
    def K(self) -> Fraction:
        """``((1 - delta) / delta)^2``."""
        return ((1 - self.delta) / self.delta) ** 2

    def lambda2_of(self, lambda1: Weight) -> Weight:
        """The proof's ``lambda2 = delta / (1 - delta) * lambda1``."""
        ratio = self.delta / (1 - self.delta)
        return lambda1.scale(ratio) if isinstance(lambda1, Sci) else ratio * lambda1

    def construction(self, d: int, lambda1: Weight) -> Construction:
        return Construction(d, self.Delta, lambda1, self.lambda2_of(lambda1))

    # log-space ends of the admissible interval of lambda1 at dimension d
    def log_L(self, ctx: Ctx) -> Number:
        return ctx.log1p(num(ctx, self.Delta))

    def log_lo(self, ctx: Ctx, d: int) -> Number:
        """``log(K (1+Delta)^-d)``: condition (2)."""
        return ctx.log(num(ctx, self.K)) - d * self.log_L(ctx)

    def log_hi3(self, ctx: Ctx) -> Number:
        """``log(1 - e^-eps)``: condition (3)."""
        return ctx.log(-ctx.expm1(-num(ctx, self.eps)))

    def log_hi5(self, ctx: Ctx, d: int) -> Number:
        """``log(eps / (d log(1+Delta)))``: condition (5)."""
        return ctx.log(num(ctx, self.eps)) - ctx.log(ctx.mpf(d)) - ctx.log(self.log_L(ctx))


def magnitude_dps(base: int, d: int) -> int:
    """Working digits for quantities like ``d log(1+Delta)``: ``base`` plus the digits of ``d``
    (each unit of ``d`` must stay visible)."""
    return base + len(str(d))


# -- the sufficient conditions ------------------------------------------------------------
def condition_A(params: Params, d: int) -> bool:
    """Conditions (2) and (3) compatible: ``K e^{-t} <= 1 - e^{-eps}`` (certified)."""
    return certify(lambda ctx: params.log_hi3(ctx) - params.log_lo(ctx, d), strict=False).holds


def condition_B(params: Params, d: int) -> bool:
    """Conditions (2) and (5) compatible: ``K e^{-t} < eps / t`` (certified)."""
    return certify(lambda ctx: params.log_hi5(ctx, d) - params.log_lo(ctx, d)).holds


def condition_C(params: Params, d: int) -> bool:
    """Condition (2) and ``lambda1 < 1/3`` compatible: ``K e^{-t} < 1/3`` (certified)."""
    return certify(lambda ctx: -ctx.log(ctx.mpf(3)) - params.log_lo(ctx, d)).holds


def first_true(pred: Callable[[int], bool], start: int = 1, guess: int | None = None) -> int:
    """Smallest ``d >= start`` with ``pred(d)``, for ``pred`` false-then-true from ``start``.

    Galloping from ``guess`` (default ``start``) then bisection: ``O(log |answer - guess|)``
    evaluations, two when the guess is right.
    """
    g = start if guess is None else max(start, guess)
    if pred(g):
        hi, step = g, 1  # pred(hi) is True; find lo < hi with pred(lo) False (start-1: False)
        while True:
            lo = hi - step
            if lo < start:
                lo = start - 1
                break
            if not pred(lo):
                break
            hi, step = lo, step * 2
    else:
        lo, step = g, 1  # pred(lo) is False
        while not pred(lo + step):
            lo += step
            step *= 2
        hi = lo + step
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def minimal_dimension_search(params: Params, third: bool = False) -> int:
    """Smallest ``d`` at which the five sufficient conditions (and, with ``third``, lambda1 <
    1/3) admit a lambda1: a certified search started at the closed form.

    ``A`` (and ``C``) are monotone in ``d``; the failure set of ``B`` is one interval of ``t``
    (convexity of ``t - log t``), so past the first ``d`` with ``A``, ``B`` is false-then-true.
    """
    guess_a, guess = _closed_form(params, third)

    def mono(d: int) -> bool:
        return condition_A(params, d) and (not third or condition_C(params, d))

    d_a = first_true(mono, guess=guess_a)
    if condition_B(params, d_a):
        return d_a
    return first_true(lambda d: condition_B(params, d), d_a, guess=guess)


def minimal_dimension_closed_form(params: Params, third: bool = False) -> int:
    """The closed form for the minimal dimension (Lambert W; see the module docstring)."""
    return _closed_form(params, third)[1]


def first_eq19(params: Params) -> int:
    """The first ``d`` at which (19) alone, ``K (1+Delta)^-d < lambda1 < eps/(d log(1+Delta))``
    (condition B), admits a lambda1: ``B`` is false-then-true from ``d = 1``."""
    guess = _closed_form(params, third=False, monotone=False)[1]
    return first_true(lambda d: condition_B(params, d), guess=guess)


def _closed_form(params: Params, third: bool, monotone: bool = True) -> tuple[int, int]:
    """``(d_A, d*)``: the first ``d`` with the monotone conditions (``d_A = 1`` without
    them), and the closed form; the working precision grows with the digits of the answer."""
    dps = 40
    while True:
        d_a, d = _closed_form_at(params, third, monotone, dps)
        if len(str(d)) + 20 < dps:
            return d_a, d
        dps = len(str(d)) + 40


def _closed_form_at(params: Params, third: bool, monotone: bool,
                    dps: int) -> tuple[int, int]:
    with mpmath.mp.workdps(dps):
        mp = mpmath.mp
        L = params.log_L(mp)
        eps, K = num(mp, params.eps), num(mp, params.K)
        t_a = mp.log(K) - mp.log(-mp.expm1(-eps))
        d_a = max(1, int(mp.ceil(t_a / L))) if monotone else 1
        if third:
            d_a = max(d_a, int(mp.floor(mp.log(3 * K) / L)) + 1)
        c = mp.log(K / eps)
        if c < 1:
            return d_a, d_a
        x = -eps / K  # = -e^{-c}, in (-1/e, 0)
        t_minus = -mp.re(mp.lambertw(x, 0))
        t_plus = -mp.re(mp.lambertw(x, -1))
        if d_a * L < t_minus:
            return d_a, d_a
        return d_a, max(d_a, int(mp.floor(t_plus / L)) + 1)


def paper_dimension_order(params: Params, ctx: Ctx = mpmath.mp) -> Number:
    """The expression inside the paper's ``O~(.)``: ``(log(delta/(1+delta)) + log(1/delta))
    / log(1 + Delta)`` (Prop. 1 as printed), evaluated as written (its two logs cancel: use
    :func:`annulus.numeric.enclose` for its digits); it equals ``-log(1+delta)/log(1+Delta)``."""
    delta = num(ctx, params.delta)
    return (ctx.log(delta / (1 + delta)) + ctx.log(1 / delta)) / params.log_L(ctx)


# -- the admissible set of lambda1 and the canonical choice -------------------------------
@dataclass(frozen=True)
class Admissible:
    """``{lambda1 : lo <= lambda1 <= hi3, lambda1 < hi5}`` at one dimension (mp values)."""

    d: int
    lo: mpmath.mpf
    hi3: mpmath.mpf
    hi5: mpmath.mpf

    @property
    def hi(self) -> mpmath.mpf:
        return min(self.hi3, self.hi5)

    @property
    def empty(self) -> bool:
        return not (self.lo <= self.hi3 and self.lo < self.hi5)


def admissible(params: Params, d: int) -> Admissible:
    with mpmath.mp.workdps(magnitude_dps(40, d)):
        mp = mpmath.mp
        return Admissible(d, mp.exp(params.log_lo(mp, d)), mp.exp(params.log_hi3(mp)),
                          mp.exp(params.log_hi5(mp, d)))


def sci_from_log(log_x: Callable[[Ctx], Number], digits: int, up: bool = False) -> Sci:
    """``exp(log_x)`` rounded (to nearest, or up) to ``digits`` significant decimal digits,
    as an exact :class:`Sci`; the precision follows the size of ``log_x``."""
    with mpmath.mp.workdps(30):
        size = abs(log_x(mpmath.mp))
    dps = digits + 20 + len(str(int(size)))
    with mpmath.mp.workdps(dps):
        mp = mpmath.mp
        lg = log_x(mp) / mp.ln10
        exp10 = int(mp.floor(lg)) - digits + 1
        scaled = mp.power(10, lg - exp10)
        mant = int(mp.ceil(scaled) if up else mp.nint(scaled))
    return Sci(Fraction(mant), exp10)


def _inside(params: Params, d: int, lam: Sci, third: bool) -> bool:
    """Certified: ``lam`` satisfies conditions (2), (3), (5) (and ``lam < 1/3``)."""
    def log_lam(ctx: Ctx) -> Number:
        return log_num(ctx, lam)
    return (certify(lambda ctx: log_lam(ctx) - params.log_lo(ctx, d), strict=False).holds
            and certify(lambda ctx: params.log_hi3(ctx) - log_lam(ctx), strict=False).holds
            and certify(lambda ctx: params.log_hi5(ctx, d) - log_lam(ctx)).holds
            and (not third or certify(lambda ctx: -ctx.log(ctx.mpf(3)) - log_lam(ctx)).holds))


def canonical_lambda1(params: Params, d: int) -> Sci:
    """The canonical lambda1: the geometric mean of the admissible interval's ends.

    ``lambda1 = sqrt(lo * hi)`` with ``lo = K (1+Delta)^-d`` and
    ``hi = min(1 - e^-eps, eps / (d log(1+Delta)), 1/3)``; the cap 1/3 keeps the attack
    probability ``(1 - lambda1)/2`` above 1/3 and is dropped when ``lo >= 1/3``. Rounded to 30
    significant digits, or more when the interval is thinner (certified inside it). The middle
    in log scale leaves margin to condition (2) (model confidence) and to (3), (5) (the KLs)
    alike. When the interval is empty (a dimension that is too small) this is ``hi`` (< 1): the
    KL conditions hold and the model-confidence ones fail.
    """
    adm = admissible(params, d)
    third = adm.lo < mpmath.mpf(1) / 3

    def log_hi(ctx: Ctx) -> Number:
        his = [params.log_hi3(ctx), params.log_hi5(ctx, d)]
        if third:
            his.append(-ctx.log(ctx.mpf(3)))
        return min(his)

    if adm.empty or (third and adm.lo >= mpmath.mpf(1) / 3):
        return sci_from_log(log_hi, LAMBDA_DIGITS)

    def log_mid(ctx: Ctx) -> Number:
        return (params.log_lo(ctx, d) + log_hi(ctx)) / 2

    digits = LAMBDA_DIGITS
    while digits <= LAMBDA_MAX_DIGITS:
        lam = sci_from_log(log_mid, digits)
        if _inside(params, d, lam, third):
            return lam
        digits *= 2
    raise ValueError(f"the admissible interval of lambda1 at d = {d} is thinner than "
                     f"10^-{LAMBDA_MAX_DIGITS} (relative)")


# -- the exact minimal dimension --------------------------------------------------------
def exact_witness_lambda1(params: Params, d: int) -> Sci | None:
    """``lambda1 = K (1+Delta)^-d`` rounded up (30 digits plus the digits of ``d``, so that the
    rounding moves it by far less than one step of ``d``): the smallest lambda1 allowed by
    condition (2) (the model is wrong with confidence ``1 - delta`` inside the unit ball);
    ``None`` when it is not below 1/3 (the attack probability would not exceed 1/3)."""
    if not condition_C(params, d):
        return None
    lam = sci_from_log(lambda ctx: params.log_lo(ctx, d), magnitude_dps(LAMBDA_DIGITS, d),
                       up=True)
    if not certify(lambda ctx: -ctx.log(ctx.mpf(3)) - log_num(ctx, lam)).holds:
        return None
    return lam


def exact_conditions_hold(params: Params, d: int) -> bool:
    """Whether Proposition 1's claims hold *exactly* at ``d`` for some lambda1 (lambda2 tied).

    Witness: :func:`exact_witness_lambda1`. Both exact joint KLs increase with lambda1 for
    ``lambda1 > (1+Delta)^-d`` (their derivatives are ``log(lambda1 (V-1) / (1-lambda1))`` and
    ``(V-1)/(V(1-lambda1)) - 1/(V lambda1)`` with ``V = (1+Delta)^d``), so if any admissible lambda1
    works, this one does. Checked: joint KLs < eps, ``q(0|x) <= delta`` in the ball (confident
    mistake), ``lambda1 < 1/3`` (attack probability > 1/3); ``p(0|x) = 1 - delta`` there by the
    choice of lambda2. Both KLs at the witness decrease in ``d`` (the witness makes them the
    Bernoulli divergences ``KL(Kb || b)`` and ``KL(b || Kb)``, ``b = (1+Delta)^-d``, both
    increasing in b), so the predicate is monotone in ``d``.
    """
    lam = exact_witness_lambda1(params, d)
    if lam is None:
        return False
    con = params.construction(d, lam)
    eps = params.eps
    return (
        certify(lambda ctx: num(ctx, eps) - con.kl_p_q_joint(ctx)).holds
        and certify(lambda ctx: num(ctx, eps) - con.kl_q_p_joint(ctx)).holds
        and _q0_at_most_delta(con, params.delta)
    )


def _q0_at_most_delta(con: Construction, delta: Fraction) -> bool:
    """``q(0|x) = 1/(1 + lambda2 (1+Delta)^d) <= delta`` in the ball. Certified by intervals;
    an exact tie (the witness can make ``lambda2 (1+Delta)^d = (1-delta)/delta`` exactly, e.g.
    ``Delta = 1``) is undecidable there and is settled in exact rational arithmetic."""
    try:
        return certify(lambda ctx: num(ctx, delta) - con.lemma1_q0(ctx), strict=False).holds
    except UndecidableError:
        lam2 = exact_fraction(con.lambda2)
        if lam2 is None:
            raise
        return lam2 * (1 + con.Delta) ** con.d >= (1 - delta) / delta


def minimal_dimension_exact(params: Params) -> int:
    """Smallest ``d`` at which the construction satisfies Prop. 1 with the exact quantities,
    searched from the real ``t = d log(1+Delta)`` at which the witness's KLs reach ``eps``."""
    return first_true(lambda d: exact_conditions_hold(params, d), guess=_exact_guess(params))


def _witness_kls(ctx: Ctx, K: Number, t: Number) -> tuple[Number, Number]:
    """``(kl(b || Kb), kl(Kb || b))`` with ``b = e^-t``: twice the joint KLs at the witness."""
    log_b, log_kb = -t, ctx.log(K) - t
    b, kb = ctx.exp(log_b), ctx.exp(log_kb)
    return (bernoulli_kl(ctx, b, kb, log_b, log_kb, ctx.log1p(-b), ctx.log1p(-kb)),
            bernoulli_kl(ctx, kb, b, log_kb, log_b, ctx.log1p(-kb), ctx.log1p(-b)))


def _exact_guess(params: Params) -> int:
    """``ceil(t*/L)`` with ``t*`` the largest of ``log(3K)`` and the roots of
    ``kl = 2 eps`` (secant method from the small-``b`` estimates ``kl(b||Kb) ~ b (K-1-log K)``,
    ``kl(Kb||b) ~ b (K log K - K + 1)``); any error only lengthens the search."""
    with mpmath.mp.workdps(40):
        t_rough = max(mpmath.log(3 * num(mpmath.mp, params.K)), mpmath.mpf(1))
        digits = len(str(int(t_rough / params.log_L(mpmath.mp)))) + 40
    with mpmath.mp.workdps(digits):
        mp = mpmath.mp
        K, eps = num(mp, params.K), num(mp, params.eps)
        ts = [mp.log(3 * K)]
        for i, coef in enumerate((K - 1 - mp.log(K), K * mp.log(K) - K + 1)):
            t0 = max(mp.log(coef / (2 * eps)), ts[0])
            try:
                ts.append(mp.findroot(
                    lambda t, i=i: mp.log(_witness_kls(mp, K, t)[i]) - mp.log(2 * eps), t0,
                    maxsteps=12))
            except (ValueError, ZeroDivisionError):
                ts.append(t0)
        t_star = max(mp.re(t) for t in ts)
        return max(1, int(mp.ceil(t_star / params.log_L(mp))))
