"""One rounding rule for every percentage the project prints (tables, figures, experiment logs).

A share ``k / n`` is rounded from its exact value, half up: 1971 / 2000 = 98.55% prints as
``98.6`` at one decimal. Formatting the float ``100 * k / n`` instead prints ``98.5`` (the double
nearest 98.55 lies below it) while ``100 * 0.9855`` prints ``98.6``, so the same result used to
read differently in two tables.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

from foundation.intervals import Z95, wilson_interval


def exact_share(share: float, n: int | None = None) -> Fraction:
    """The exact value of a recorded share: ``k / n`` when ``share`` is a count over ``n`` (as
    a JSON float holds it, up to float rounding), else the decimal the float prints as."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not math.isfinite(share):
        raise ValueError(f"not a finite number: {share!r}")
    if isinstance(n, int) and not isinstance(n, bool) and n > 0:
        k = round(share * n)
        if abs(share * n - k) <= 1e-12 * n:  # float rounding of k / n only
            return Fraction(k, n)
    return Fraction(repr(float(share)))


def percent(share: float | Fraction, digits: int = 1, n: int | None = None) -> str:
    """``100 * share`` with ``digits`` decimals, rounded half up on its exact value
    (:func:`exact_share`; a :class:`~fractions.Fraction` is taken as exact)."""
    exact = share if isinstance(share, Fraction) else exact_share(share, n)
    value = 100 * exact
    with localcontext() as ctx:
        ctx.prec = len(str(abs(value.numerator) // value.denominator)) + digits + 40
        dec = Decimal(value.numerator) / Decimal(value.denominator)
        return str(dec.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def pct_ci(k: int, n: int) -> dict[str, Any]:
    """``{"k", "n", "pct", "wilson95_pct": [lo, hi]}`` for a share ``k / n`` (95% Wilson), the
    record every experiment stores and :func:`share_text` prints."""
    k, n = int(k), int(n)
    if n == 0:
        return {"k": 0, "n": 0, "pct": None, "wilson95_pct": None}
    lo, hi = wilson_interval(k, n, z=Z95)
    pct = 100.0 * k / n
    # clamp rounding noise (k = 0 or n give an end of the interval at the estimate itself)
    return {"k": k, "n": n, "pct": pct,
            "wilson95_pct": [min(100.0 * lo, pct), max(100.0 * hi, pct)]}


def share_text(c: dict[str, Any] | None, digits: int = 0) -> str:
    """``"12% [7, 20]"`` from a ``{"k", "n", "pct", "wilson95_pct"}`` share (95% Wilson bounds,
    :func:`pct_ci`); ``"-"`` for none or ``n = 0``. The estimate is
    rounded from ``k / n`` exactly (:func:`percent`); the bounds, irrational, as floats."""
    if not c or c.get("pct") is None:
        return "-"
    lo, hi = c["wilson95_pct"]
    return f"{percent(Fraction(c['k'], c['n']), digits)}% [{lo:.{digits}f}, {hi:.{digits}f}]"
