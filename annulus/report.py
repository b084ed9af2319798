"""Render a :class:`~annulus.certificate.Certificate` as a text report or as JSON."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import mpmath

from annulus.certificate import CERTIFIED, CLAIM_FAILS, Certificate, Check
from annulus.numeric import Complement, Sci, exact_str, fmt, json_number

OK, BAD = "✓", "✗"


def _val(x: Any) -> Any:
    """JSON form of a value: floats where they fit float64, decimal strings otherwise."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, int):
        return x
    if isinstance(x, Fraction | Sci | Complement):
        return _exact_json(x)
    if isinstance(x, dict):
        return {k: _val(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_val(v) for v in x]
    return json_number(x)


def _exact_json(q: Fraction | Sci | Complement) -> float | str:
    """An exact number as the nearest float64 when it fits, else a 17-digit decimal string."""
    text = exact_str(q, 40)
    value = float(text)
    if value != 0 and 1e-300 < abs(value) < 1e300:
        return value
    return value if text in ("0.0", "1.0") else exact_str(q, 17)


def _decimal(q: Fraction | Sci, digits: int = 30) -> str:
    return exact_str(q, digits)


def _check_json(c: Check) -> dict[str, Any]:
    holds = None if c.holds is None else bool(c.holds)
    return {"id": c.id, "statement": c.statement, "holds": holds, "value": _val(c.value),
            "bound": _val(c.bound), "method": c.method, "note": c.note}


def to_json(cert: Certificate) -> dict[str, Any]:
    """The certificate as one JSON object (see README, 'Reading the JSON')."""
    p = cert.params
    return {
        "eps": _val(p.eps), "delta": _val(p.delta), "Delta": _val(p.Delta),
        "dimension": cert.dimension, "dimension_source": cert.dimension_source,
        "lambda1": _val(cert.lambda1), "lambda2": _val(cert.lambda2),
        "lambda1_decimal": _decimal(cert.lambda1), "lambda2_decimal": _decimal(cert.lambda2),
        "lambda1_source": cert.lambda1_source,
        "minimal_dimension": dict(cert.minimal_dimension),
        "kl": _val(cert.kl),
        "lemma_bounds": _val(cert.lemma_bounds),
        "kl_checks": [_check_json(c) for c in cert.kl_checks],
        "lemmas": [_check_json(c) for c in cert.lemmas],
        "sufficient_conditions": [_check_json(c) for c in cert.conditions],
        "attack_probability": _val(cert.attack_probability),
        "attack_probability_check": _check_json(cert.attack_probability_check),
        "properties": [_check_json(c) for c in cert.properties],
        "errata": [{"where": e.where, "paper_says": e.paper_says,
                    "correct_statement": e.correct_statement, "evidence": e.evidence}
                   for e in cert.errata],
        "certified": cert.certified,
        "verdict": cert.verdict,
        "verdict_reason": cert.verdict_reason(),
        "attack_radii": [[_val(lo), _val(hi)] for lo, hi in cert.attack_radii],
        "admissible_lambda1": _val(cert.extra["admissible_lambda1"]),
        "precision_digits": cert.dps,
        "sign_method": "interval arithmetic (mpmath.iv, outward rounding, precision doubled "
                       "until the sign is certain); exact rationals where both sides are rational",
        "seconds": round(cert.seconds, 4),
    }


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else (OK if ok else BAD)


def _show(x: Any, digits: int) -> str:
    if isinstance(x, dict):
        return ", ".join(f"{k}={_show(v, digits)}" for k, v in x.items())
    if x is None:
        return "-"
    if isinstance(x, int | str):
        return str(x)
    if isinstance(x, Fraction):
        x = mpmath.mpf(x.numerator) / x.denominator
    return fmt(x, digits)


def format_text(cert: Certificate, digits: int = 6) -> str:
    """A compact human-readable report."""
    p = cert.params
    md = cert.minimal_dimension
    lines = [
        "annulus.verify: the counter-example of Fetaya et al. (ICLR 2020), Appendix D",
        f"  eps = {_show(p.eps, digits)}   delta = {_show(p.delta, digits)}   "
        f"Delta = {_show(p.Delta, digits)}",
        f"  dimension d = {cert.dimension} ({cert.dimension_source})",
        f"  minimal d: proof's sufficient conditions d* = {md['sufficient_conditions']} (search) "
        f"/ {md['closed_form']} (closed form); with lambda1 < 1/3 "
        f"{md['with_lambda1_below_third']}; exact quantities {md['exact']}",
        f"  lambda1 = {_show(cert.lambda1, digits)} ({cert.lambda1_source}; admissible "
        f"[{_show(cert.extra['admissible_lambda1']['lo'], 4)}, "
        f"{_show(cert.extra['admissible_lambda1']['hi'], 4)}]), "
        f"lambda2 = delta/(1-delta) lambda1 = {_show(cert.lambda2, digits)}",
        "",
        "KL divergences (exact)",
    ]
    kl, lb = cert.kl, cert.lemma_bounds
    for c in cert.kl_checks:
        lines.append(f"  {_mark(c.holds)} {c.statement:<28} {_show(c.value, digits):>12}   "
                     f"eps = {_show(c.bound, digits)}")
    lines.append(f"    KL(q(x|0)||p(x|0)) = {_show(kl['q_p_class0'], digits)}   "
                 f"Lemma 2 bound log(1/(1-lambda1)) = {_show(lb['lemma2'], digits)}")
    lines.append(f"    KL(p(x|0)||q(x|0)) = {_show(kl['p_q_class0'], digits)}   "
                 f"Lemma 3 bound lambda1 d log(1+Delta) = {_show(lb['lemma3'], digits)}")
    lines += ["", "Lemmas"]
    for c in cert.lemmas:
        lines.append(f"  {_mark(c.holds)} {c.id}: {c.note}")
    lines += ["", "Sufficient conditions of the proof"]
    for c in cert.conditions:
        lines.append(f"  {_mark(c.holds)} {c.id} {c.statement:<34} value {_show(c.value, digits)}"
                     f"  bound {_show(c.bound, digits)}")
    lines += ["", "Proposition 1 (attack: radial move from the shell into the unit ball)"]
    for c in cert.properties:
        lines.append(f"  {_mark(c.holds)} property {c.id}: {c.statement}")
        lines.append(f"      value {_show(c.value, digits)}   bound {_show(c.bound, digits)}")
    a = cert.attack_probability_check
    radii = ", ".join(f"[{_show(lo, 6)}, {_show(hi, 6)})" for lo, hi in cert.attack_radii)
    lines.append(f"  {_mark(a.holds)} P(attack exists, x ~ p) = {_show(a.value, digits)}  "
                 f"(claimed > 1/3; attacked radii: {radii or 'none'})")
    lines += ["", f"Errata found by the computation ({len(cert.errata)})"]
    for i, e in enumerate(cert.errata, 1):
        lines.append(f"  [{i}] {e.where}")
        lines.append(f"      paper:   {e.paper_says}")
        lines.append(f"      correct: {e.correct_statement}")
        if e.evidence:
            lines.append(f"      because: {e.evidence}")
    return "\n".join(lines)


HEADLINES = {CERTIFIED: "CERTIFIED", CLAIM_FAILS: "PROPERTIES HOLD, CLAIM FAILS"}


def format_verdict(verdict: str, reason: str, seconds: float) -> str:
    """The headline: the verdict's word and its reason (it agrees with the exit status)."""
    word = HEADLINES.get(verdict, "NOT CERTIFIED")
    return f"{word}: {reason} (signs by interval arithmetic; {seconds:.2f} s)"
