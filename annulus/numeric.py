"""Exact-number plumbing: rational parameters, mpmath contexts, log-space helpers, certified signs.

Every parameter of the construction is kept as an exact rational (``fractions.Fraction``; a
decimal string such as ``"0.1"`` is read exactly). A quantity is evaluated in a *context*:
``mpmath.mp`` (floating point at a chosen precision) for reported values, or ``mpmath.iv``
(interval arithmetic with outward rounding) to decide the sign of an inequality with certainty.
All densities are handled through their logarithms, so ``(1 + Delta)**d`` never overflows.
"""

from __future__ import annotations

import math
import re
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
#: Largest precision used to pin down a reported value (see :func:`enclose`).
VALUE_MAX_DPS = 2000
#: Significant digits at which reported values are printed somewhere (report, JSON, errata).
SHOWN_DIGITS = (4, 6, 8, 12)
#: Largest decimal exponent turned into an exact Fraction (a 10^4-digit integer is cheap).
EXACT_DIGITS = 10_000


#: Largest decimal exponent and number of digits accepted in a user number: beyond them the
#: exact rational alone would be a computation too large to start.
MAX_EXPONENT = 1000
MAX_DIGITS = 1000
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?|[+-]?\d+/\d+", re.ASCII | re.I)


def to_fraction(value: str | float | int | Fraction) -> Fraction:
    """Read a user number exactly: ``"0.1"`` becomes 1/10 (floats are read by their repr).

    Text must be an ASCII decimal (``1e-3``, ``.5``) or a ratio ``a/b``, with at most
    ``MAX_DIGITS`` digits and a decimal exponent of at most ``MAX_EXPONENT`` in size."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return Fraction(repr(value))
    if isinstance(value, int):
        return Fraction(value)
    text = str(value).strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"not a finite number: {value!r}")
    mantissa, _, exponent = text.lower().partition("e")
    if sum(ch.isdigit() for ch in mantissa) > MAX_DIGITS:
        raise ValueError(f"more than {MAX_DIGITS} digits: {text[:20]}...")
    digits = exponent.lstrip("+-").lstrip("0")
    if len(digits) > 6 or (digits and int(digits) > MAX_EXPONENT):
        raise ValueError(f"decimal exponent beyond +-{MAX_EXPONENT}: {text[:40]}")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise ValueError(f"not a finite number: {value!r}") from exc


@dataclass(frozen=True)
class Sci:
    """The exact positive rational ``m * 10**e`` (``m`` a small Fraction, ``e`` any integer).

    lambda1 at ``d = 10^12`` is about ``10^(-2 10^10)``: as a Fraction its denominator alone
    would take gigabytes; as ``Sci`` it costs nothing, and every use goes through logarithms.
    """

    m: Fraction
    e: int = 0

    def __post_init__(self) -> None:
        if self.m <= 0:
            raise ValueError(f"Sci needs a positive mantissa, got {self.m}")

    def scale(self, f: Fraction) -> Sci:
        """``f * self`` for a positive rational ``f``."""
        return Sci(self.m * f, self.e)

    def fraction(self, max_digits: int = EXACT_DIGITS) -> Fraction | None:
        """The exact Fraction, or ``None`` when ``10**|e|`` would exceed ``max_digits`` digits."""
        if abs(self.e) > max_digits:
            return None
        return self.m * Fraction(10) ** self.e

    def log10_bounds(self) -> tuple[int, int]:
        """Integers ``lo <= log10(self) < hi`` (from bit lengths: no decimal conversion)."""
        k = _log10_estimate(self.m)
        return self.e + k - 2, self.e + k + 2


def _log10_estimate(m: Fraction) -> int:
    """``log10(m)`` within 1 for a positive Fraction, from the bit lengths."""
    return int((m.numerator.bit_length() - m.denominator.bit_length()) * 0.30102999566398120)


@dataclass(frozen=True)
class Complement:
    """The exact number ``1 - x`` for ``0 < x < 1`` (a mixture weight ``1 - lambda``)."""

    x: Sci


Exact = Fraction | Sci | Complement


def as_sci(x: Fraction | Sci) -> Sci:
    """A positive Fraction or Sci as Sci."""
    return x if isinstance(x, Sci) else Sci(Fraction(x), 0)


def exact_fraction(x: Exact | int) -> Fraction | None:
    """``x`` as a Fraction when that is cheap, else ``None``."""
    if isinstance(x, Sci):
        return x.fraction()
    if isinstance(x, Complement):
        f = x.x.fraction()
        return None if f is None else 1 - f
    return Fraction(x)


def compare(a: Fraction | Sci, b: Fraction | Sci) -> int:
    """The exact sign of ``a - b`` for non-negative rationals (Fraction or Sci)."""
    if not isinstance(a, Sci) and a == 0:
        return 0 if (not isinstance(b, Sci) and b == 0) else -1
    if not isinstance(b, Sci) and b == 0:
        return 1
    sa, sb = as_sci(a), as_sci(b)
    (alo, ahi), (blo, bhi) = sa.log10_bounds(), sb.log10_bounds()
    if ahi <= blo:
        return -1
    if bhi <= alo:
        return 1
    shift = sa.e - sb.e  # small here: the magnitudes overlap
    fa, fb = sa.m * Fraction(10) ** shift, sb.m
    return (fa > fb) - (fa < fb)


def num(ctx: Ctx, q: Exact | int) -> Number:
    """The exact number ``q`` in context ``ctx`` (an enclosing interval in ``mpmath.iv``)."""
    if isinstance(q, Complement):
        return 1 - num(ctx, q.x)
    if isinstance(q, Sci):  # exp of the log: 10**e by squaring costs O(log e) big products
        return ctx.exp(log_num(ctx, q)) if q.e else num(ctx, q.m)
    q = Fraction(q)
    if q.denominator == 1:
        return ctx.mpf(q.numerator)
    return ctx.mpf(q.numerator) / ctx.mpf(q.denominator)


def log_num(ctx: Ctx, q: Exact) -> Number:
    """``log q`` without forming ``q`` when it is tiny (``Sci``) or near 1 (``Complement``)."""
    if isinstance(q, Complement):
        return ctx.log1p(-num(ctx, q.x))
    if isinstance(q, Sci):
        return ctx.log(num(ctx, q.m)) + q.e * ctx.log(ctx.mpf(10))
    return ctx.log(num(ctx, q))


def bernoulli_kl(ctx: Ctx, a: Exact | Number, c: Exact | Number, log_a: Number,
                 log_c: Number, log1m_a: Number, log1m_c: Number) -> Number:
    """``kl(a || c) = a log(a/c) + (1-a) log((1-a)/(1-c))``, the KL divergence of two
    Bernoulli laws, from the logs of ``a, c, 1-a, 1-c`` (``log1p`` forms: no ``1 - tiny``)."""
    va = num(ctx, a) if isinstance(a, Fraction | Sci | Complement) else a
    return va * (log_a - log_c) + (1 - va) * (log1m_a - log1m_c)


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
    log_hi = d * log_rational(ctx, hi)
    if lo == 0:
        return log_hi
    return log_hi + ctx.log(-ctx.expm1(d * (log_rational(ctx, lo) - log_rational(ctx, hi))))


def log_rational(ctx: Ctx, q: Fraction) -> Number:
    """``log q`` for a positive rational, as ``log1p(q - 1)`` near 1 (a radius ``1 + Delta``
    with ``Delta = 1e-300`` keeps its ``Delta``)."""
    if Fraction(1, 2) < q < 2:
        return ctx.log1p(num(ctx, q - 1))
    return ctx.log(num(ctx, q))


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
    raise UndecidableError(f"a sign could not be certified: the two sides agree to "
                           f"{CERTIFY_MAX_DPS} digits (an exact tie, e.g. lambda1 = "
                           "(1+Delta)^-d)")


def enclose(f: Callable[[Ctx], Number], digits: int = 30, dps: int = CERTIFY_DPS) -> mpmath.mpf:
    """The value of ``f`` correct to every digit it is printed with.

    ``f(mpmath.iv)`` is evaluated at rising precision until both ends of the enclosure print
    alike with ``digits`` and with each of :data:`SHOWN_DIGITS` significant digits, and round to
    the same float64; the lower end is returned (an mpf). The precision needed is thus chosen
    by the magnitudes involved (e.g. ``d log(1+Delta)`` at ``d = 10^12``). A value within
    ``10**-VALUE_MAX_DPS`` of a rounding tie is returned as found there.
    """
    dps = max(dps, digits + 10)
    while True:
        with iv_dps(dps) as iv:
            val = f(iv)
            lo = mpmath.mp.make_mpf(val._mpi_[0])
            hi = mpmath.mp.make_mpf(val._mpi_[1])
        if lo == hi or dps >= VALUE_MAX_DPS or _prints_alike(lo, hi, digits):
            return lo
        dps *= 2


def _prints_alike(lo: mpmath.mpf, hi: mpmath.mpf, digits: int) -> bool:
    if mpmath.isinf(lo) or mpmath.isinf(hi) or mpmath.isnan(lo) or mpmath.isnan(hi):
        return False
    if _float(lo) != _float(hi):
        return False
    return all(mpmath.nstr(lo, n) == mpmath.nstr(hi, n) for n in (*SHOWN_DIGITS, digits))


def _float(x: mpmath.mpf) -> float:
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def exact_str(q: Exact, digits: int) -> str:
    """``q`` correctly rounded to ``digits`` significant digits (exact integer arithmetic on the
    mantissa; a Sci of any exponent costs nothing)."""
    if isinstance(q, Complement):
        f = exact_fraction(q)
        if f is None:  # 1 - 10^-huge: rounds to 1 at any printable number of digits
            return "1.0"
        q = f
    sci = as_sci(q) if not (isinstance(q, Fraction) and q == 0) else None
    if sci is None:
        return "0.0"
    m, e = sci.m, sci.e
    # m = M * 10^k with 10^(digits-1) <= M < 10^digits, M = round(m * 10^-k)
    k = _log10_estimate(m) - digits + 1
    while True:
        scaled = m / Fraction(10) ** k
        mant = round(scaled)  # ties to even
        if mant >= 10 ** digits:
            k += 1
        elif mant < 10 ** (digits - 1):
            k -= 1
        else:
            break
    exp10 = k + e + digits - 1
    text = str(mant).rstrip("0") or "0"
    body = text[0] + "." + (text[1:] or "0")
    if -4 <= exp10 < 6 and len(text) <= digits:
        with mpmath.mp.workdps(digits + 5):
            return mpmath.nstr(mpmath.mpf(mant) * mpmath.mpf(10) ** (exp10 - digits + 1), digits,
                               min_fixed=-4, max_fixed=6)
    return f"{body}e{exp10:+d}" if exp10 else body


def fmt(x: mpmath.mpf | float | int, digits: int = 6) -> str:
    """A decimal string for JSON/reports: ``mpmath.nstr`` with ``digits`` significant digits."""
    if isinstance(x, Fraction | Sci | Complement):
        return exact_str(x, digits)
    if isinstance(x, int):
        x = mpmath.mpf(x)
    return mpmath.nstr(x, digits, min_fixed=-4, max_fixed=6)


def json_number(x: mpmath.mpf, digits: int = 17) -> float | str:
    """A float when it fits float64 without underflow/overflow, else a decimal string (from
    the value as given: it is not first rounded to the working precision)."""
    if not isinstance(x, mpmath.mpf):
        x = mpmath.mpf(x)
    if x == 0:
        return 0.0
    if mpmath.isinf(x) or mpmath.isnan(x):
        return str(x)
    if mpmath.mpf("1e-300") < abs(x) < mpmath.mpf("1e300"):
        return float(x)
    return mpmath.nstr(x, digits)
