"""Exact per-piece facts of Proposition 1, shared by the certificate, the sampling section
and the symbolic derivation.

``p``, ``q`` are constant on every piece, so each property ingredient of Proposition 1
(prediction ``argmax_y m(y|x)``, ``m(y|x) >= 1 - delta``, ``q(y|x) <= delta``, the order of the
density levels) is decided once per piece, exactly: rational arithmetic (or ``Sci`` numbers
sharing one exponent) when that is cheap, else interval arithmetic
(:func:`annulus.numeric.certify`). This matters: with the proof's ``lambda2``,
``p(0|x) = 1 - delta`` *exactly* in the unit ball, and a float64 comparison would fail on
rounding half of the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from annulus.construction import Construction, JointModel
from annulus.numeric import (
    Sci,
    UndecidableError,
    as_sci,
    certify,
    compare,
    exact_fraction,
    log_unit_ball_volume,
    num,
)
from annulus.radial import Piece, pieces

#: Integers above this many bits are not used for exact rational decisions (interval instead).
MAX_EXACT_BITS = 20_000


def _joint_exact(model: JointModel, piece: Piece, y: int) -> Fraction | Sci | None:
    """``C_d m(x, y)`` on the piece exactly: ``sum_c m(y) w_c / (b_c^d - a_c^d)`` as a Fraction,
    or as a Sci when the weights share one decimal exponent (the unit ball at large ``d``,
    where the volume is 1); ``None`` when that needs huge integers."""
    d = model.d
    terms: list[Sci] = []
    for w, ann in model.conditionals[y].components:
        if (isinstance(w, Fraction) and w == 0) or not ann.covers(piece.lo, piece.hi):
            continue
        bits = d * max(ann.b.numerator.bit_length(), ann.b.denominator.bit_length(),
                       ann.a.numerator.bit_length(), ann.a.denominator.bit_length())
        if ann.b == 1 and ann.a == 0:
            vol = Fraction(1)
        elif bits > MAX_EXACT_BITS:
            return None
        else:
            vol = ann.b ** d - ann.a ** d
        weight = w if isinstance(w, Sci) else exact_fraction(w)
        if weight is None:
            return None
        terms.append(as_sci(weight).scale(model.prior[y] / vol))
    return _exact_sum(terms)


def _exact_sum(terms: list[Sci]) -> Fraction | Sci | None:
    """The exact sum of positive Sci numbers (``None`` if it needs a huge Fraction)."""
    if not terms:
        return Fraction(0)
    if all(t.e == terms[0].e for t in terms):
        return Sci(sum((t.m for t in terms), Fraction(0)), terms[0].e)
    fractions = [t.fraction() for t in terms]
    return None if any(f is None for f in fractions) else sum(fractions, Fraction(0))


def _posterior_at_least(model: JointModel, piece: Piece, y: int, t: Fraction) -> bool:
    """Exactly decide ``m(y|x) >= t`` on the piece (``m(x) > 0`` there)."""
    g = [_joint_exact(model, piece, yy) for yy in (0, 1)]
    if g[0] is not None and g[1] is not None:
        total = _exact_sum([as_sci(v) for v in g if not (isinstance(v, Fraction) and v == 0)])
        if total is not None:
            top = g[y]
            if isinstance(top, Fraction) and top == 0:
                return t <= 0
            return compare(as_sci(top), as_sci(total).scale(t)) >= 0 if t > 0 else True
    try:
        return certify(lambda ctx: model.posterior_on(ctx, piece, y) - num(ctx, t),
                       strict=False).holds
    except UndecidableError:  # equal to CERTIFY_MAX_DPS digits: an identity, take the tie
        return True


def _prediction(model: JointModel, piece: Piece) -> int:
    """``argmax_y m(y|x)`` on the piece; -1 off the support or on a tie."""
    if model.log_marginal_on(mpmath.mp, piece) is None:
        return -1
    if not _posterior_at_least(model, piece, 0, Fraction(1, 2)):
        return 1
    if not _posterior_at_least(model, piece, 1, Fraction(1, 2)):
        return 0
    return -1


def _float(r: Fraction) -> float:
    """A radius as float64 (``inf`` beyond its range, e.g. ``1 + Delta`` at Delta = 1e400)."""
    try:
        return float(r)
    except OverflowError:
        return np.inf


@dataclass(frozen=True)
class PieceTable:
    """Property ingredients of Prop. 1 on each piece ``[breaks[k], breaks[k+1])``; the last
    index is ``r >= breaks[-1]`` (off every support).

    ``yp, yq``: predictions (-1: undefined); ``conf_p, conf_q``: ``m(y_m|x) >= 1 - delta``;
    ``q_true_small``: ``q(y_p(x)|x) <= delta``; ``level_rank``: rank of ``q(x)`` (equal levels
    share a rank); ``log_q``: ``log q(x)`` (float64); ``p0, q0``: ``p(0|x), q(0|x)`` (float,
    nan off support)."""

    breaks: np.ndarray
    yp: np.ndarray
    yq: np.ndarray
    conf_p: np.ndarray
    conf_q: np.ndarray
    q_true_small: np.ndarray
    level_rank: np.ndarray
    log_q: np.ndarray
    log_q_mp: tuple[Any, ...]
    p0: np.ndarray
    q0: np.ndarray
    q0_mp: tuple[Any, ...] = ()

    @classmethod
    def of(cls, con: Construction, delta: Fraction) -> PieceTable:
        pcs = list(pieces(sorted(set(con.p.breakpoints) | set(con.q.breakpoints))))
        breaks = np.array([_float(pc.lo) for pc in pcs] + [_float(pcs[-1].hi)])
        top = pcs[-1].hi
        pcs.append(Piece(top, top + 1))  # stands for r >= top (no density covers it)
        mp = mpmath.mp
        yp = np.array([_prediction(con.p, pc) for pc in pcs], dtype=np.int8)
        yq = np.array([_prediction(con.q, pc) for pc in pcs], dtype=np.int8)
        conf_p = np.array([yp[k] >= 0 and _posterior_at_least(con.p, pc, int(yp[k]), 1 - delta)
                           for k, pc in enumerate(pcs)])
        conf_q = np.array([yq[k] >= 0 and _posterior_at_least(con.q, pc, int(yq[k]), 1 - delta)
                           for k, pc in enumerate(pcs)])
        # q(y_p|x) <= delta  <=>  q(1 - y_p | x) >= 1 - delta (q(x) > 0)
        q_small = np.array([
            yp[k] >= 0 and con.q.log_marginal_on(mp, pc) is not None
            and _posterior_at_least(con.q, pc, 1 - int(yp[k]), 1 - delta)
            for k, pc in enumerate(pcs)])
        with mp.workdps(60 + len(str(con.d))):  # levels ~ d log(1+Delta): keep 60 digits
            log_cd = log_unit_ball_volume(mp, con.d)
            lq = [con.q.log_marginal_on(mp, pc) for pc in pcs]
            lq = [mp.mpf("-inf") if v is None else v - log_cd for v in lq]
            distinct: list[Any] = []
            for v in sorted(lq):
                if not distinct or not _equal_levels(v, distinct[-1]):
                    distinct.append(v)
            rank = np.array([next(i for i, u in enumerate(distinct) if _equal_levels(u, v))
                             for v in lq], dtype=np.int16)
            p0 = [con.p.posterior_on(mp, pc, 0) for pc in pcs]
            q0 = [con.q.posterior_on(mp, pc, 0) for pc in pcs]
        return cls(breaks, yp, yq, conf_p, conf_q, q_small, rank,
                   np.array([float(v) for v in lq]), tuple(+v for v in lq),
                   np.array([np.nan if v is None else float(v) for v in p0]),
                   np.array([np.nan if v is None else float(v) for v in q0]),
                   tuple(mp.mpf("nan") if v is None else +v for v in q0))

    def index(self, r: np.ndarray) -> np.ndarray:
        """Piece index of radii ``r`` (a breakpoint belongs to the piece above it)."""
        return np.searchsorted(self.breaks, r, side="right") - 1

    def properties(self, kx: np.ndarray, kb: np.ndarray, dist: np.ndarray,
                   Delta: float) -> dict[str, np.ndarray]:
        """Properties 1-4 from the pieces of ``x`` and ``xbar`` and ``||x - xbar||``."""
        yp_x, yp_b = self.yp[kx], self.yp[kb]
        return {
            "1": (yp_x >= 0) & (self.yq[kx] == yp_x) & self.conf_p[kx] & self.conf_q[kx],
            "2": (yp_b >= 0) & (yp_b == yp_x) & (self.yq[kb] != yp_b),
            "3": (yp_b >= 0) & self.q_true_small[kb] & self.conf_p[kb],
            "4": dist < Delta,
        }


def _equal_levels(a: Any, b: Any) -> bool:
    """Two density levels (60-digit mp values) that agree to 40 digits share a rank."""
    if mpmath.isinf(a) or mpmath.isinf(b):
        return a == b
    return abs(a - b) <= mpmath.mpf(10) ** -40 * max(1, abs(a), abs(b))
