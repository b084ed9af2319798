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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import mpmath

from annulus.construction import Construction
from annulus.numeric import Ctx, Number, UndecidableError, certify, num

#: Significant digits kept when a real lambda1 is turned into an exact rational.
LAMBDA_DIGITS = 30


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

    def lambda2_of(self, lambda1: Fraction) -> Fraction:
        """The proof's ``lambda2 = delta / (1 - delta) * lambda1``."""
        return self.delta / (1 - self.delta) * lambda1

    def construction(self, d: int, lambda1: Fraction) -> Construction:
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


# -- the sufficient conditions ------------------------------------------------------------
def condition_A(params: Params, d: int) -> bool:
    """Conditions (2) and (3) compatible: ``K e^{-t} <= 1 - e^{-eps}`` (certified)."""
    return certify(lambda ctx: params.log_hi3(ctx) - params.log_lo(ctx, d), strict=False).holds


def condition_B(params: Params, d: int) -> bool:
    """Conditions (2) and (5) compatible: ``K e^{-t} < eps / t`` (certified)."""
    return certify(lambda ctx: params.log_hi5(ctx, d) - params.log_lo(ctx, d)).holds


def sufficient_conditions_hold(params: Params, d: int) -> bool:
    """Whether the proof's five conditions admit some lambda1 at dimension ``d``."""
    return condition_A(params, d) and condition_B(params, d)


def first_true(pred: Callable[[int], bool], start: int = 1) -> int:
    """Smallest ``d >= start`` with ``pred(d)``, for ``pred`` false-then-true from ``start``.

    Exponential search for an upper end, then bisection: ``O(log d)`` evaluations.
    """
    if pred(start):
        return start
    lo, step = start, 1  # pred(lo) is False
    while not pred(lo + step):
        lo += step
        step *= 2
    hi = lo + step  # pred(hi) is True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return hi


def minimal_dimension_search(params: Params) -> int:
    """Smallest ``d`` at which the five sufficient conditions admit a lambda1, by search.

    ``A`` is monotone in ``d``; the failure set of ``B`` is one interval of ``t`` (convexity of
    ``t - log t``), so past the first ``d`` with ``A``, ``B`` is false-then-true.
    """
    d_a = first_true(lambda d: condition_A(params, d))
    if condition_B(params, d_a):
        return d_a
    return first_true(lambda d: condition_B(params, d), d_a)


def minimal_dimension_closed_form(params: Params, dps: int = 60) -> int:
    """The closed form for the minimal dimension (Lambert W; see the module docstring)."""
    with mpmath.mp.workdps(dps):
        mp = mpmath.mp
        L = params.log_L(mp)
        eps, K = num(mp, params.eps), num(mp, params.K)
        t_a = mp.log(K) - mp.log(-mp.expm1(-eps))
        d_a = max(1, int(mp.ceil(t_a / L)))
        c = mp.log(K / eps)
        if c < 1:
            return d_a
        x = -eps / K  # = -e^{-c}, in (-1/e, 0)
        t_minus = -mp.re(mp.lambertw(x, 0))
        t_plus = -mp.re(mp.lambertw(x, -1))
        if d_a * L < t_minus:
            return d_a
        return max(d_a, int(mp.floor(t_plus / L)) + 1)


def paper_dimension_order(params: Params) -> mpmath.mpf:
    """The expression inside the paper's ``O~(.)``: ``(log(delta/(1+delta)) + log(1/delta))
    / log(1 + Delta)`` (Prop. 1 as printed); it equals ``-log(1+delta)/log(1+Delta) < 0``."""
    mp = mpmath.mp
    delta = num(mp, params.delta)
    return (mp.log(delta / (1 + delta)) + mp.log(1 / delta)) / params.log_L(mp)


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


def admissible(params: Params, d: int, dps: int = 50) -> Admissible:
    with mpmath.mp.workdps(dps):
        mp = mpmath.mp
        return Admissible(d, mp.exp(params.log_lo(mp, d)), mp.exp(params.log_hi3(mp)),
                          mp.exp(params.log_hi5(mp, d)))


def to_rational(x: mpmath.mpf, digits: int = LAMBDA_DIGITS, up: bool = False) -> Fraction:
    """``x`` rounded to ``digits`` significant decimal digits, as an exact rational."""
    with mpmath.mp.workdps(digits + 20):
        x = mpmath.mpf(x)
        if x <= 0:
            raise ValueError("expected a positive number")
        exp10 = int(mpmath.floor(mpmath.log10(x))) - digits + 1
        scaled = x / mpmath.mpf(10) ** exp10
        mant = int(mpmath.ceil(scaled) if up else mpmath.nint(scaled))
        return Fraction(mant) * Fraction(10) ** exp10


def canonical_lambda1(params: Params, d: int) -> Fraction:
    """The canonical lambda1: the geometric mean of the admissible interval's ends.

    ``lambda1 = sqrt(lo * hi)`` with ``lo = K (1+Delta)^-d`` and
    ``hi = min(1 - e^-eps, eps / (d log(1+Delta)), 1/3)``; the cap 1/3 keeps the attack
    probability ``(1 - lambda1)/2`` above 1/3 and is dropped when ``lo >= 1/3``. Rounded to
    30 significant digits. The middle in log scale leaves margin to condition (2) (model
    confidence) and to (3), (5) (the KLs) alike. When the interval is empty (a dimension that is
    too small) this is ``hi`` (< 1): the KL conditions hold and the model-confidence ones fail.
    """
    adm = admissible(params, d)
    hi = adm.hi
    third = mpmath.mpf(1) / 3
    if adm.lo < third:
        hi = min(hi, third)
    with mpmath.mp.workdps(50):
        lam = mpmath.sqrt(adm.lo * hi) if adm.lo < hi else hi
    return to_rational(lam)


# -- the exact minimal dimension --------------------------------------------------------
def exact_witness_lambda1(params: Params, d: int) -> Fraction | None:
    """``lambda1 = K (1+Delta)^-d`` rounded up to 30 digits: the smallest lambda1 allowed by
    condition (2) (the model is wrong with confidence ``1 - delta`` inside the unit ball);
    ``None`` when it exceeds 1/3 (the attack probability would not exceed 1/3)."""
    with mpmath.mp.workdps(50):
        lo = mpmath.exp(params.log_lo(mpmath.mp, d))
        if lo >= mpmath.mpf(1) / 3:
            return None
        return to_rational(lo, up=True)


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
        return con.lambda2 * (1 + con.Delta) ** con.d >= (1 - delta) / delta


def minimal_dimension_exact(params: Params) -> int:
    """Smallest ``d`` at which the construction satisfies Prop. 1 with the exact quantities."""
    return first_true(lambda d: exact_conditions_hold(params, d))
