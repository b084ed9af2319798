"""Symbolic derivations with sympy (imported lazily: sympy is slow to import).

The densities of Eqs. (7)-(10) are written as sympy ``Piecewise`` functions of the radius ``r``;
posteriors follow from Bayes' rule and the KL divergences from integrating
``f log(f/g)`` against the radial volume element ``d C_d r^(d-1) dr`` over the pieces where both
densities are constant. Region membership (e.g. whether ``1 + Delta/2 >= 2``) is decided by
``sympy.ask`` under the assumption ``0 < Delta < 1`` of Property 6. Nothing is typed in: the
paper's expressions are only used to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import mpmath

from annulus.numeric import num


@dataclass(frozen=True)
class Derivation:
    """The derived closed forms (sympy expressions)."""

    symbols: dict[str, Any]
    p0_inner: Any   # p(0|x), ||x|| < 1
    q0_inner: Any   # q(0|x), ||x|| < 1
    p0_shell: Any   # p(0|x), 1 < ||x|| < 1 + Delta
    q0_shell: Any
    kl_q_p_class0: Any
    kl_p_q_class0: Any
    kl_q_p_class1: Any
    kl_p_q_class1: Any
    kl_q_p_joint: Any
    kl_p_q_joint: Any
    condition2_lambda1: Any  # lambda1 at which q(0|x) = delta in the ball (lambda2 tied)
    minimal_t: list[Any]     # t = d log(1+Delta) solving K e^-t = eps/t


@lru_cache(maxsize=1)
def derive() -> Derivation:
    """Derive posteriors (Lemma 1) and KL divergences (Lemmas 2-3) from the densities."""
    import sympy as sp

    d = sp.Symbol("d", positive=True, integer=True)
    Delta = sp.Symbol("Delta", positive=True)
    l1, l2 = sp.symbols("lambda1 lambda2", positive=True)
    r, C = sp.symbols("r C_d", positive=True)
    delta, eps, K, t = sp.symbols("delta epsilon K t", positive=True)
    assumptions = sp.Q.lt(Delta, 1) & sp.Q.positive(Delta)

    def U(a: Any, b: Any) -> Any:
        return sp.Piecewise((1 / (C * (b**d - a**d)), (r >= a) & (r <= b)), (0, True))

    one, zero = sp.Integer(1), sp.Integer(0)
    p0 = l1 * U(zero, one) + (1 - l1) * U(one, 1 + Delta)                   # (7)
    p1 = l2 * U(zero, one) + (1 - l2) * U(sp.Integer(2), sp.Integer(3))     # (8)
    q0 = U(zero, 1 + Delta)                                                 # (9)
    q1 = l2 * U(zero, one) + (1 - l2) * U(sp.Integer(2), sp.Integer(3))     # (10)
    regions = [(zero, one), (one, 1 + Delta), (1 + Delta, sp.Integer(2)),
               (sp.Integer(2), sp.Integer(3))]

    @cache
    def decide(cond: Any) -> bool:
        if cond in (sp.true, True):
            return True
        if cond in (sp.false, False):
            return False
        if isinstance(cond, sp.And):
            return all(decide(c) for c in cond.args)
        if isinstance(cond, sp.Or):
            return any(decide(c) for c in cond.args)
        verdict = sp.ask(cond, assumptions)
        if verdict is None:
            raise ValueError(f"cannot decide {cond} under 0 < Delta < 1")
        return bool(verdict)

    def on(expr: Any, lo: Any, hi: Any) -> Any:
        """The constant value of a piecewise density on the region ``lo < r < hi``."""
        at = expr.subs(r, (lo + hi) / 2)
        return sp.factor(at.replace(
            lambda e: isinstance(e, sp.Piecewise),
            lambda e: next(v for v, c in e.args if decide(c))))

    def kl(f: Any, g: Any) -> Any:
        total = sp.Integer(0)
        for lo, hi in regions:
            fv, gv = on(f, lo, hi), on(g, lo, hi)
            if fv == 0:
                continue
            volume = sp.integrate(d * C * r ** (d - 1), (r, lo, hi))
            total += fv * sp.log(fv / gv) * volume
        return sp.simplify(total)

    def post(f0: Any, f1: Any, lo: Any, hi: Any) -> Any:
        a, b = on(f0, lo, hi), on(f1, lo, hi)
        return sp.simplify(a / (a + b))

    kq0, kp0 = kl(q0, p0), kl(p0, q0)
    kq1, kp1 = kl(q1, p1), kl(p1, q1)
    half = sp.Rational(1, 2)
    # chain rule with p(y) = q(y) = 1/2
    kq_joint = sp.simplify(half * kq0 + half * kq1)
    kp_joint = sp.simplify(half * kp0 + half * kp1)
    q0_in = post(q0, q1, zero, one)
    lam_c2 = sp.solve(sp.Eq(q0_in.subs(l2, delta / (1 - delta) * l1), delta), l1)
    roots = sp.solve(sp.Eq(K * sp.exp(-t), eps / t), t)
    return Derivation(
        symbols={"d": d, "Delta": Delta, "lambda1": l1, "lambda2": l2, "delta": delta,
                 "epsilon": eps, "K": K, "t": t},
        p0_inner=post(p0, p1, zero, one), q0_inner=q0_in,
        p0_shell=post(p0, p1, one, 1 + Delta), q0_shell=post(q0, q1, one, 1 + Delta),
        kl_q_p_class0=kq0, kl_p_q_class0=kp0, kl_q_p_class1=kq1, kl_p_q_class1=kp1,
        kl_q_p_joint=kq_joint, kl_p_q_joint=kp_joint,
        condition2_lambda1=lam_c2[0] if lam_c2 else None, minimal_t=roots,
    )


def paper_expressions() -> dict[str, Any]:
    """The paper's own closed forms, Eqs. (11), (12), (14) and (16)-(17), for comparison."""
    import sympy as sp

    der = derive()
    s = der.symbols
    d, Delta, l1, l2 = s["d"], s["Delta"], s["lambda1"], s["lambda2"]
    V = (1 + Delta) ** d
    return {
        "eq11_p0_inner": l1 / (l1 + l2),
        "eq12_q0_inner": 1 / (1 + l2 * V),
        "eq14_kl_q_p": -sp.log(l1 * V) / V + (V - 1) / V * sp.log((V - 1) / ((1 - l1) * V)),
        "eq16_17_kl_p_q": l1 * sp.log(l1 * V) + (1 - l1) * sp.log((1 - l1) * V / (V - 1)),
    }


def _same(a: Any, b: Any) -> bool:
    """Symbolic identity of two closed forms under ``0 < lambda1 < 1``, ``(1+Delta)^d > 1``.

    Substitutes ``(1+Delta)^d = 1 + w`` and ``lambda1 = 1 - u`` (``w, u > 0``) so that every
    logarithm has a positive argument, expands the logarithms and simplifies the difference.
    """
    import sympy as sp

    s = derive().symbols
    w, u = sp.symbols("w u", positive=True)
    V = (1 + s["Delta"]) ** s["d"]
    diff = (a - b).subs(V, 1 + w).subs(s["lambda1"], 1 - u)
    return sp.simplify(sp.expand(sp.expand_log(diff, force=True))) == 0


def check_against_exact(cert: Any) -> dict[str, Any]:
    """Compare the sympy closed forms with the paper and with the exact numeric evaluator."""
    import sympy as sp

    der = derive()
    paper = paper_expressions()
    s = der.symbols
    args = [s["d"], s["Delta"], s["lambda1"], s["lambda2"]]
    out: dict[str, Any] = {"expressions": {}, "agrees_with_paper": {}, "numeric": {}}
    for name in ("p0_inner", "q0_inner", "kl_q_p_class0", "kl_p_q_class0", "kl_q_p_joint",
                 "kl_p_q_joint", "condition2_lambda1"):
        out["expressions"][name] = str(getattr(der, name))
    out["expressions"]["minimal_t"] = [str(x) for x in der.minimal_t]
    out["agrees_with_paper"] = {
        "eq11": _same(der.p0_inner, paper["eq11_p0_inner"]),
        "eq12": _same(der.q0_inner, paper["eq12_q0_inner"]),
        "eq14_class0": _same(der.kl_q_p_class0, paper["eq14_kl_q_p"]),
        "eq16_17_class0": _same(der.kl_p_q_class0, paper["eq16_17_kl_p_q"]),
        "lemma2_joint_equals_class0": _same(der.kl_q_p_joint, der.kl_q_p_class0),
        "joint_is_half_class0": _same(der.kl_q_p_joint, der.kl_q_p_class0 / 2)
        and _same(der.kl_p_q_joint, der.kl_p_q_class0 / 2),
    }
    inputs = (cert.dimension, cert.params.Delta, cert.lambda1, cert.lambda2)
    agree = True
    for name, key in (("kl_q_p_joint", "q_p_joint"), ("kl_p_q_joint", "p_q_joint"),
                      ("kl_q_p_class0", "q_p_class0"), ("kl_p_q_class0", "p_q_class0")):
        fn = sp.lambdify(args, getattr(der, name), modules="mpmath")
        sym_val, work = closed_form_value(fn, inputs, cert.dps + _digits_below_one(cert))
        with mpmath.mp.workdps(work):
            exact = cert.kl[key]
            rel = abs(sym_val - exact) / max(abs(exact), mpmath.mpf(10) ** (-cert.dps - 5))
        agree = agree and rel <= mpmath.mpf(10) ** -(cert.dps // 2)
        out["numeric"][name] = {"symbolic": mpmath.nstr(sym_val, 15),
                                "exact": mpmath.nstr(exact, 15),
                                "relative_difference": mpmath.nstr(rel, 3),
                                "working_digits": work}
    out["numeric_agrees"] = agree  # to half the certificate's digits, every KL
    return out


def _digits_below_one(cert: Any) -> int:
    """About ``-log10(Delta)``: the digits ``1 + Delta`` needs before Delta shows in it, added to
    the starting precision so that no two evaluations agree only because both rounded it to 1."""
    with mpmath.mp.workdps(30):
        return max(0, int(-mpmath.floor(mpmath.log10(num(mpmath.mp, cert.params.Delta)))))


MAX_WORKING_DIGITS = 20_000
"""Most digits :func:`closed_form_value` works with (Delta down to about 1e-10000)."""


def closed_form_value(fn: Any, inputs: tuple[Any, ...], digits: int) -> tuple[Any, int]:
    """``fn`` (a closed form, lambdified to mpmath) at the exact ``inputs``, correct to about
    ``digits`` significant digits, and the working precision that gave it.

    The closed forms cancel catastrophically for small Delta (``(1 + Delta)**d - 1``,
    ``log(1 - 1/V)``): at a fixed precision ``1 + Delta`` rounds to 1 and they divide by zero or
    lose every digit. So the inputs are converted and ``fn`` evaluated at a precision doubled
    from ``digits + 10`` until two successive values agree to ``digits + 5`` digits."""
    prev, work = None, digits + 10
    while work <= MAX_WORKING_DIGITS:
        with mpmath.mp.workdps(work):
            try:
                v = mpmath.mpf(fn(*[num(mpmath.mp, q) for q in inputs]))
            except (ZeroDivisionError, ValueError):  # 1 + Delta rounded to 1 at this precision
                v = None
            if v is not None and not mpmath.isfinite(v):
                v = None
            if v is not None and prev is not None and (
                    abs(v - prev) <= abs(v) * mpmath.mpf(10) ** -(digits + 5)):
                return v, work
        prev, work = v, 2 * work
    raise ArithmeticError(f"the sympy closed form does not settle to {digits} digits within "
                          f"{MAX_WORKING_DIGITS} working digits")


def format_symbolic(result: dict[str, Any]) -> str:
    lines = ["Symbolic derivation (sympy)"]
    for k, v in result["expressions"].items():
        lines.append(f"  {k} = {v}")
    lines.append("  matches the paper:")
    for k, v in result["agrees_with_paper"].items():
        lines.append(f"    {'✓' if v else '✗'} {k}")
    lines.append("  numeric agreement with the exact evaluator:")
    for k, v in result["numeric"].items():
        lines.append(f"    {k}: symbolic {v['symbolic']}  exact {v['exact']}  "
                     f"rel. diff {v['relative_difference']}")
    return "\n".join(lines)
