"""Exact-number plumbing: rational parameters, mpmath contexts, log-space helpers, certified signs.

Every parameter of the construction is kept as an exact rational (``fractions.Fraction``; a
decimal string such as ``"0.1"`` is read exactly). A quantity is evaluated in a *context*:
``mpmath.mp`` (floating point at a chosen precision) for reported values, or ``mpmath.iv``
(interval arithmetic with outward rounding) to decide the sign of an inequality with certainty.
All densities are handled through their logarithms, so ``(1 + Delta)**d`` never overflows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath

Ctx = Any  # mpmath.mp or mpmath.iv
Number = Any  # an mpf or an ivmpf

#: Working precision (decimal digits) used first when certifying a sign.
CERTIFY_DPS = 40
#: Largest precision tried before a sign is declared undecidable. Some true inequalities have
#: gaps of order (1+Delta)^-d (e.g. Lemma 2's bound: KL(q(x|0)||p(x|0)) is below
#: log(1/(1-lambda1)) by ~(1+Delta)^-d), i.e. d*log10(1+Delta) digits: 2000 digits made
#: build_certificate raise UndecidableError from d ~ 48000 at Delta = 0.1.
CERTIFY_MAX_DPS = 20000


def to_fraction(value: str | float | int | Fraction) -> Fraction:
    """Read a user number exactly: ``"0.1"`` becomes 1/10 (floats are read by their repr)."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return Fraction(repr(value))
    if isinstance(value, int):
        return Fraction(value)
    text = str(value).strip()
    try:
        out = Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"not a finite number: {value!r}") from exc
    return out


def num(ctx: Ctx, q: Fraction | int) -> Number:
    """The rational ``q`` in context ``ctx`` (an enclosing interval in ``mpmath.iv``)."""
    q = Fraction(q)
    if q.denominator == 1:
        return ctx.mpf(q.numerator)
    return ctx.mpf(q.numerator) / ctx.mpf(q.denominator)


def log_sub_exp(ctx: Ctx, a: Number, b: Number) -> Number:
    """``log(exp(a) - exp(b))`` for ``a > b``, as ``a + log(-expm1(b - a))``."""
    return a + ctx.log(-ctx.expm1(b - a))


def log_sum_exp(ctx: Ctx, terms: Iterable[Number]) -> Number:
    """``log(sum(exp(t)))`` without overflow (``-inf`` for an empty sum)."""
    terms = list(terms)
    if not terms:
        return ctx.mpf("-inf")
    top = terms[0]
    for t in terms[1:]:
        top = ctx.mpf(max(top, t)) if ctx is mpmath.mp else _iv_max(top, t)
    return top + ctx.log(sum((ctx.exp(t - top) for t in terms), ctx.mpf(0)))


def _iv_max(a: Number, b: Number) -> Number:
    """An interval whose lower end is max(a.a, b.a): a safe shift for log-sum-exp."""
    return mpmath.iv.mpf(max(a.a, b.a))


def log_annulus_volume_ratio(ctx: Ctx, lo: Fraction, hi: Fraction, d: int) -> Number:
    """``log(hi**d - lo**d)`` for ``0 <= lo < hi``: the annulus volume in units of ``C_d``."""
    log_hi = d * ctx.log(num(ctx, hi))
    if lo == 0:
        return log_hi
    return log_hi + ctx.log(-ctx.expm1(d * (ctx.log(num(ctx, lo)) - ctx.log(num(ctx, hi)))))


def log_unit_ball_volume(ctx: Ctx, d: int) -> Number:
    """``log C_d = (d/2) log(pi) - log Gamma(d/2 + 1)``, the log-volume of the unit ball."""
    half = num(ctx, Fraction(d, 2))
    return half * ctx.log(ctx.pi) - ctx.loggamma(half + 1)


@dataclass(frozen=True)
class Certified:
    """The certified truth value of ``lhs <op> rhs`` and how it was certified."""

    holds: bool
    dps: int
    method: str = "interval arithmetic (mpmath.iv, outward rounding)"


class UndecidableError(ArithmeticError):
    """Raised when interval arithmetic cannot decide a sign up to ``CERTIFY_MAX_DPS`` digits
    (the two sides are, or are within 10**-CERTIFY_MAX_DPS of being, equal)."""


@contextmanager
def iv_dps(dps: int) -> Iterator[Ctx]:
    """``mpmath.iv`` at ``dps`` decimal digits, restoring the previous precision on exit."""
    iv = mpmath.iv
    saved = iv.prec
    iv.dps = dps
    try:
        yield iv
    finally:
        iv.prec = saved


def certify(difference: Callable[[Ctx], Number], strict: bool = True) -> Certified:
    """Decide ``difference > 0`` (``strict``) or ``difference >= 0`` with certainty.

    ``difference(ctx)`` must compute the quantity in the given mpmath context. It is evaluated
    in interval arithmetic, doubling the precision until the interval excludes zero. An exact
    zero is decided only when the interval collapses to the point 0 (then ``>=`` holds and
    ``>`` does not).
    """
    dps = CERTIFY_DPS
    while dps <= CERTIFY_MAX_DPS:
        with iv_dps(dps) as iv:
            val = difference(iv)
            lo, hi = val.a, val.b
            if lo > 0:
                return Certified(True, dps)
            if hi < 0:
                return Certified(False, dps)
            if lo == 0 and hi == 0:
                return Certified(not strict, dps)
        dps *= 2
    raise UndecidableError("the sign could not be certified")


def fmt(x: mpmath.mpf | float | int, digits: int = 6) -> str:
    """A decimal string for JSON/reports: ``mpmath.nstr`` with ``digits`` significant digits."""
    if isinstance(x, int | Fraction):
        x = mpmath.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else mpmath.mpf(x)
    return mpmath.nstr(x, digits, min_fixed=-4, max_fixed=6)


def json_number(x: mpmath.mpf, digits: int = 17) -> float | str:
    """A float when it fits float64 without underflow/overflow, else a decimal string."""
    x = mpmath.mpf(x)
    if x == 0:
        return 0.0
    if mpmath.isinf(x) or mpmath.isnan(x):
        return str(x)
    if mpmath.mpf("1e-300") < abs(x) < mpmath.mpf("1e300"):
        return float(x)
    return mpmath.nstr(x, digits)
