"""Symbolic derivation of the attack (sympy): the radius sets of properties 1-5 and the exact
success probability as the ``p``-mass of their intersection.

1. ``xbar = x s(r) / r`` with ``s(r) = (1 + Max(r - Delta, 0)) / 2`` and ``r = ||x||``; since
   ``||c x|| = |c| ||x||``, ``||xbar|| = s(r)`` and ``||x - xbar|| = |r - s(r)|`` (also checked
   by sympy on an explicit 3-vector).
2. Each class-conditional density is written (in units of ``1/C_d``, ``d`` kept as a symbol) on
   every radial piece, e.g. ``q(x|0) = 1/(1+Delta)^d``; the posteriors follow by Bayes' rule
   (Lemma 1 appears as the ball entries).
3. Every ingredient of properties 1-3 is decided on each piece exactly, by the one table of
   facts :class:`annulus.pieces.PieceTable` (exact rationals, or signs certified by interval
   arithmetic); the order of the density levels (property 5) is decided here: an identity when
   the difference simplifies to 0, else its sign certified at the numeric ``d``.
4. The set of radii ``r`` for a property on ``x`` is a union of pieces; for a property on
   ``xbar`` it is the preimage under ``s`` of such a union, solved with ``sympy.solveset`` on
   each branch of ``s``; property 4 is ``solveset(|r - s(r)| < Delta)``.
5. ``P(success) = P_p(||X|| in A_1 & ... & A_5)``, summed over the intervals of the intersection
   and the components of ``p`` as ``p(y) w (hi^d - lo^d) / (b^d - a^d)``; sympy cancels it (to
   ``(1 - lambda1)/2`` for the paper's parameters) and mpmath evaluates it at ``d``.

``property 5`` uses the lower median of ``q(X)`` for ``X ~ p``, from the exact piece masses.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cmp_to_key
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from annulus.construction import Construction, JointModel
from annulus.numeric import Ctx, Exact, Number, UndecidableError, certify, exact_fraction, num
from annulus.pieces import PieceTable

r_sym = sp.Symbol("r", nonnegative=True)
rho_sym = sp.Symbol("rho", nonnegative=True)
d_sym = sp.Symbol("d", positive=True, integer=True)
Delta_sym = sp.Symbol("Delta", positive=True)


def _q(x: Exact | int) -> sp.Rational:
    f = exact_fraction(x)
    if f is None:
        raise ValueError(f"{x} is too small for an exact sympy rational")
    return sp.Rational(f.numerator, f.denominator)


def attack_radius_expr(Delta: Any = Delta_sym, r: Any = r_sym) -> sp.Expr:
    """``s(r) = (1 + Max(r - Delta, 0)) / 2``."""
    return (1 + sp.Max(r - Delta, 0)) / 2


def attack_expressions() -> dict[str, Any]:
    """``xbar(x)``, ``||xbar||``, ``||x - xbar||`` (symbolic, general ``d``), and a check on an
    explicit 3-vector that ``||xbar|| = s(r)`` and ``||x - xbar|| = |r - s(r)|``."""
    n = sp.Symbol("n", positive=True, integer=True)
    x = sp.MatrixSymbol("x", n, 1)
    s = attack_radius_expr()
    xbar = (s / r_sym) * x
    c = s / r_sym  # > 0
    norm_xbar = sp.simplify(sp.Abs(c) * r_sym)
    dist = sp.simplify(sp.Abs(1 - c) * r_sym)
    # explicit 3-vector, with s and r = ||x|| as positive symbols: ||(s/r) x|| = s and
    # ||x - (s/r) x|| = |r - s|
    xs = sp.symbols("x1:4", positive=True)
    sv = sp.Symbol("s", positive=True)
    rr = sp.sqrt(sum(v ** 2 for v in xs))
    check_norm = sp.simplify(sp.sqrt(sum((sv / rr * t) ** 2 for t in xs)) - sv)
    check_dist = sp.simplify(sp.sqrt(sum(((1 - sv / rr) * t) ** 2 for t in xs))
                             - sp.Abs(rr - sv))
    return {"xbar": xbar, "norm_xbar": norm_xbar, "distance": dist,
            "check_3d": (check_norm == 0 and check_dist == 0)}


# -- exact evaluation of sympy expressions in an mpmath context -----------------------------------
def to_ctx(expr: sp.Expr, ctx: Ctx, d: int) -> Number:
    """Evaluate a sympy expression (rationals, ``d``, + * ^, exp, log) in ``ctx``.

    Powers with a non-integer or symbolic exponent go through ``exp(e log b)`` (``b > 0``), so
    ``(11/10)**d`` at ``d = 10**5`` is an ordinary (interval) number."""
    if expr == d_sym:
        return ctx.mpf(d)
    if isinstance(expr, sp.Rational):
        return num(ctx, Fraction(int(expr.p), int(expr.q)))
    if isinstance(expr, sp.Add):
        out = ctx.mpf(0)
        for a in expr.args:
            out = out + to_ctx(a, ctx, d)
        return out
    if isinstance(expr, sp.Mul):
        out = ctx.mpf(1)
        for a in expr.args:
            out = out * to_ctx(a, ctx, d)
        return out
    if isinstance(expr, sp.Pow):
        base, e = expr.args
        if isinstance(e, sp.Integer):
            return to_ctx(base, ctx, d) ** int(e)
        return ctx.exp(to_ctx(e, ctx, d) * ctx.log(to_ctx(base, ctx, d)))
    if isinstance(expr, sp.exp):
        return ctx.exp(to_ctx(expr.args[0], ctx, d))
    if isinstance(expr, sp.log):
        return ctx.log(to_ctx(expr.args[0], ctx, d))
    raise TypeError(f"cannot evaluate {expr!r}")


def sign(expr: sp.Expr, d: int) -> int:
    """The exact sign of ``expr`` at ``d``: 0 when it simplifies to 0 (an identity), else
    certified by interval arithmetic."""
    numer, _ = sp.fraction(sp.cancel(sp.together(expr)))
    if sp.expand(numer) == 0:
        return 0
    try:
        if certify(lambda ctx: to_ctx(expr, ctx, d)).holds:
            return 1
        return -1 if certify(lambda ctx: -to_ctx(expr, ctx, d)).holds else 0
    except UndecidableError:
        return 0


# -- densities on the pieces ----------------------------------------------------------------
def _vol(a: Fraction, b: Fraction) -> sp.Expr:
    """``b^d - a^d`` with ``d`` symbolic."""
    if a == 0:
        return sp.Integer(1) if b == 1 else _q(b) ** d_sym
    return _q(b) ** d_sym - _q(a) ** d_sym


def joint_expr(model: JointModel, y: int, lo: Fraction, hi: Fraction) -> sp.Expr:
    """``C_d m(x, y)`` for ``lo < ||x|| < hi`` (a piece): ``m(y) sum_c w_c / (b_c^d - a_c^d)``."""
    terms = [_q(w) / _vol(ann.a, ann.b) for w, ann in model.conditionals[y].components
             if exact_fraction(w) != 0 and ann.covers(lo, hi)]
    return _q(model.prior[y]) * sp.Add(*terms)


def mass_expr(model: JointModel, lo: Any, hi: Any) -> sp.Expr:
    """``P_m(lo <= ||X|| <= hi)`` (exact sympy expression in ``d``)."""
    total = sp.Integer(0)
    for y in (0, 1):
        for w, ann in model.conditionals[y].components:
            a, b = _q(ann.a), _q(ann.b)
            u, v = sp.Max(a, lo), sp.Min(b, hi)
            if exact_fraction(w) == 0 or not bool(u < v):
                continue
            top = (v ** d_sym if v != 0 else 0) - (u ** d_sym if u != 0 else 0)
            total += _q(model.prior[y]) * _q(w) * top / _vol(ann.a, ann.b)
    return total


@dataclass
class PieceFacts:
    """Per-piece symbolic posteriors and the exact property ingredients."""

    interval: sp.Interval
    lo: Fraction
    hi: Fraction | None
    p_post0: sp.Expr | None
    q_post0: sp.Expr | None
    q_level: sp.Expr
    yp: int
    yq: int
    conf_p: bool
    conf_q: bool
    q_true_small: bool


def piece_facts(con: Construction, delta: Fraction) -> list[PieceFacts]:
    """The pieces ``[r_k, r_{k+1})`` and ``[r_max, oo)``: the sympy posteriors and levels, and
    the exact decisions of :class:`annulus.pieces.PieceTable` (one table of facts)."""
    table = PieceTable.of(con, delta)
    radii = sorted(set(con.p.breakpoints) | set(con.q.breakpoints) | {Fraction(0)})
    spans: list[tuple[Fraction, Fraction | None]] = list(zip(radii[:-1], radii[1:],
                                                             strict=True))
    spans.append((radii[-1], None))
    out = []
    for k, (lo, hi) in enumerate(spans):
        interval = (sp.Interval.Ropen(_q(lo), _q(hi)) if hi is not None
                    else sp.Interval(_q(lo), sp.oo))
        posts = []
        for model in (con.p, con.q):
            if hi is None:
                posts.append(None)
                continue
            g0, g1 = joint_expr(model, 0, lo, hi), joint_expr(model, 1, lo, hi)
            posts.append(None if g0 + g1 == 0 else sp.cancel(g0 / (g0 + g1)))
        p0, q0 = posts
        q_level = (joint_expr(con.q, 0, lo, hi) + joint_expr(con.q, 1, lo, hi)
                   if hi is not None else sp.Integer(0))
        out.append(PieceFacts(interval, lo, hi, p0, q0, q_level, int(table.yp[k]),
                              int(table.yq[k]), bool(table.conf_p[k]), bool(table.conf_q[k]),
                              bool(table.q_true_small[k])))
    return out


# -- radius sets ------------------------------------------------------------------------------
def preimage_s(target: sp.Set, Delta: Fraction) -> sp.Set:
    """``{r >= 0 : s(r) in target}`` solved with ``solveset`` on the two branches of ``s``."""
    D = _q(Delta)
    out: sp.Set = sp.S.EmptySet
    # branch r < Delta: s = 1/2
    if target.contains(sp.Rational(1, 2)) == sp.true:
        out = sp.Union(out, sp.Interval.Ropen(0, D))
    # branch r >= Delta: s = (1 + r - Delta)/2, increasing
    lin = (1 + r_sym - D) / 2
    dom = sp.Interval(D, sp.oo)
    parts = target.args if isinstance(target, sp.Union) else (target,)
    for iv in parts:
        if iv is sp.S.EmptySet:
            continue
        if not isinstance(iv, sp.Interval):
            raise TypeError(f"unexpected set {iv!r}")
        lower = lin > iv.start if iv.left_open else lin >= iv.start
        sol = sp.solveset(lower, r_sym, dom)
        if iv.end != sp.oo:
            upper = lin < iv.end if iv.right_open else lin <= iv.end
            sol = sp.Intersection(sol, sp.solveset(upper, r_sym, dom))
        out = sp.Union(out, sol)
    return out


def _union(intervals: list[sp.Set]) -> sp.Set:
    return sp.Union(*intervals) if intervals else sp.S.EmptySet


@dataclass
class SymbolicAttack:
    """The derivation's results (see the module docstring)."""

    expressions: dict[str, Any]
    facts: list[PieceFacts]
    median_level: sp.Expr
    sets: dict[str, sp.Set]
    success: sp.Set
    probability_expr: sp.Expr
    d: int

    def probability(self, dps: int = 40) -> mpmath.mpf:
        """``P_{x~p}(properties 1-5)`` at ``d`` as an mpmath number."""
        with mpmath.mp.workdps(dps):
            return +to_ctx(self.probability_expr, mpmath.mp, self.d)

    def contains(self, key: str, r: np.ndarray) -> np.ndarray:
        """Membership of float radii ``r`` in ``sets[key]`` (``"success"`` for the
        intersection), from the set's intervals."""
        st = self.success if key == "success" else self.sets[key]
        return contains(st, r)


def intervals_of(st: sp.Set) -> list[tuple[float, float, bool, bool]]:
    """``(lo, hi, left_open, right_open)`` float intervals of a union of intervals."""
    if st is sp.S.EmptySet:
        return []
    parts = st.args if isinstance(st, sp.Union) else (st,)
    out = []
    for iv in parts:
        if isinstance(iv, sp.FiniteSet):  # isolated points: measure zero, kept for membership
            out.extend((float(v), float(v), False, False) for v in iv)
            continue
        out.append((float(iv.start), float(iv.end), bool(iv.left_open), bool(iv.right_open)))
    return out


def contains(st: sp.Set, r: np.ndarray) -> np.ndarray:
    """Vectorised membership of float radii in a sympy union of intervals."""
    r = np.asarray(r, dtype=float)
    hit = np.zeros(r.shape, dtype=bool)
    for lo, hi, lo_open, hi_open in intervals_of(st):
        left = r > lo if lo_open else r >= lo
        right = r < hi if hi_open else r <= hi
        hit |= left & right
    return hit


def derive(con: Construction, delta: Fraction) -> SymbolicAttack:
    """Derive the per-property radius sets and the exact success probability for ``con``."""
    d = con.d
    facts = piece_facts(con, delta)
    # exact lower median of q(X), X ~ p: order the pieces by q level, accumulate p-mass
    order = sorted(range(len(facts)), key=cmp_to_key(
        lambda i, j: sign(facts[i].q_level - facts[j].q_level, d)))
    acc = sp.Integer(0)
    median_level = facts[order[-1]].q_level
    for i in order:
        f = facts[i]
        hi = _q(f.hi) if f.hi is not None else sp.oo
        acc = acc + mass_expr(con.p, _q(f.lo), hi)
        if sign(acc - sp.Rational(1, 2), d) >= 0:
            median_level = f.q_level
            break
    A1 = _union([f.interval for f in facts
                 if f.yp >= 0 and f.yq == f.yp and f.conf_p and f.conf_q])
    A2_parts = []
    for fx in facts:
        if fx.yp < 0:
            continue
        good = _union([fb.interval for fb in facts if fb.yp == fx.yp and fb.yq != fb.yp])
        A2_parts.append(sp.Intersection(fx.interval, preimage_s(good, con.Delta)))
    A2 = _union(A2_parts)
    A3 = preimage_s(_union([f.interval for f in facts
                            if f.yp >= 0 and f.q_true_small and f.conf_p]), con.Delta)
    D = _q(con.Delta)
    A4 = sp.Union(
        sp.solveset(sp.Abs(r_sym - sp.Rational(1, 2)) < D, r_sym, sp.Interval.Ropen(0, D)),
        sp.solveset(sp.Abs(r_sym - (1 + r_sym - D) / 2) < D, r_sym, sp.Interval(D, sp.oo)))
    A5 = preimage_s(_union([f.interval for f in facts
                            if sign(f.q_level - median_level, d) >= 0]), con.Delta)
    sets = {"1": A1, "2": A2, "3": A3, "4": A4, "5": A5}
    success = sp.Intersection(A1, A2, A3, A4, A5)
    prob = sp.Integer(0)
    if success is not sp.S.EmptySet:
        for iv in (success.args if isinstance(success, sp.Union) else (success,)):
            if isinstance(iv, sp.Interval):  # isolated points carry no mass
                prob += mass_expr(con.p, iv.start, iv.end)
    prob = sp.simplify(prob)
    return SymbolicAttack(attack_expressions(), facts, median_level, sets, success, prob, d)

