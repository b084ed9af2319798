"""Per-image outcomes of stored attack results and paired tests between settings.

Reads ``flows.experiments.attacks`` JSON only (no model, no data). For a setting and a threshold
``T`` the outcome of image ``i`` is the Table-2 cell "undetected within eps":

    fooled_i = found_i and pred_i != y_i and L2_i > 0        (an unchanged image never counts)
    U_i      = fooled_i and bpd_i <= T and L2_i <= eps

exactly as ``attacks.evaluate`` counts it; :func:`outcomes` re-counts and checks the stored ``k``.
Two settings run on the same images (same indices) are compared with McNemar's exact test: under
H0 the discordant pairs split 1:1, so ``p = P(Binomial(b + c, 1/2) as or more extreme than b)``
(two-sided, ``scipy.stats.binomtest``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest

from foundation.percent import pct_ci, share_text


def _floats(values: list[Any]) -> np.ndarray:
    """JSON numbers with ``null`` (a non-finite value on write) read as ``+inf``."""
    return np.array([np.inf if v is None else float(v) for v in values], dtype=np.float64)


@dataclass(frozen=True)
class Outcomes:
    """Per-image outcomes of one setting under one threshold, in the order of ``index``."""

    index: np.ndarray
    found: np.ndarray
    fooled: np.ndarray
    accepted: np.ndarray
    undetected_within_eps: np.ndarray
    l2: np.ndarray  # L2 of the 8-bit adversarial image ([0, 1] scale); +inf where none was found


def outcomes(result: dict[str, Any], setting: str, threshold: str) -> Outcomes:
    """The per-image outcomes of ``setting`` under ``threshold`` (``"quantile"``/``"paper"``);
    ``ValueError`` when the re-count differs from the stored Table-2 cell."""
    s = result["settings"][setting]
    pi = s["per_image"]
    t = result["thresholds"][threshold]["T_bpd"]
    if t is None:
        raise ValueError(f"{setting}: no {threshold} threshold stored")
    l2 = _floats(pi["l2"])
    found = np.asarray(pi["found"], dtype=bool)
    fooled = found & (np.asarray(pi["pred_adv"]) != np.asarray(pi["label"])) & (l2 > 0)
    accepted = _floats(pi["bpd_adv"]) <= float(t)
    u = fooled & accepted & (l2 <= float(result["eps_l2"]))
    stored = s["table2"][threshold]["undetected_within_eps"]["k"]
    if int(u.sum()) != int(stored):
        raise ValueError(f"{setting} ({threshold}): {int(u.sum())} undetected within eps "
                         f"re-counted, {stored} stored")
    l2 = np.where(found, l2, np.inf)
    return Outcomes(np.asarray(pi.get("index", range(len(found)))), found, fooled, accepted, u, l2)


def table2_cell(result: dict[str, Any], setting: str, threshold: str) -> str:
    """The Table-2 cell of ``setting`` under ``threshold`` re-counted from its per-image outcomes,
    as ``flows.experiments.attacks`` writes it (``"4% [2, 10] (98% [93, 99]) n=100"``: undetected
    within eps, in parentheses fooled within eps, with 95% Wilson intervals)."""
    o = outcomes(result, setting, threshold)
    n = len(o.found)
    if n == 0:
        return "- (n=0)"
    u = int(o.undetected_within_eps.sum())
    f = int((o.fooled & (o.l2 <= float(result["eps_l2"]))).sum())
    return f"{share_text(pct_ci(u, n))} ({share_text(pct_ci(f, n))}) n={n}"


def final_check_breakdown(result: dict[str, Any], setting: str) -> dict[str, int]:
    """Why in-loop successes failed the final ``S``-draw check: ``not_fooled`` (not
    misclassified after re-scoring, or unchanged by rounding) and ``rejected`` (misclassified but
    above the threshold used; counts only for detection-aware settings)."""
    o = outcomes(result, setting, result["threshold_used"])
    detection_aware = bool(result["settings"][setting].get("detection_aware"))
    rejected = o.found & o.fooled & ~o.accepted if detection_aware else np.zeros_like(o.found)
    return {"not_fooled": int((o.found & ~o.fooled).sum()), "rejected": int(rejected.sum())}


def mcnemar(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test of paired booleans: ``a_only`` (a true, b false), ``b_only`` and the
    two-sided p-value (1.0 when there are no discordant pairs)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError("paired outcomes need the same images")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return {"n": int(a.size), "a": int(a.sum()), "b": int(b.sum()), "a_only": a_only,
            "b_only": b_only, "p_exact": p}


def compare(result_a: dict[str, Any], setting_a: str, result_b: dict[str, Any], setting_b: str,
            threshold: str = "quantile") -> dict[str, Any]:
    """McNemar on "undetected within eps" of two settings attacked on the same images
    (``ValueError`` when the attacked images differ)."""
    oa = outcomes(result_a, setting_a, threshold)
    ob = outcomes(result_b, setting_b, threshold)
    if oa.index.shape != ob.index.shape or not np.array_equal(oa.index, ob.index):
        raise ValueError(f"{setting_a} and {setting_b} attacked different images")
    return mcnemar(oa.undetected_within_eps, ob.undetected_within_eps)
