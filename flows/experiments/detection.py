"""Detection (Sec. 4.3) and the statistics every experiment reports.

A scored image is accepted as a real image iff its bits/dim (of the ``S``-draw ``log p(k)``,
:mod:`flows.scoring`) is ``<= T``. Thresholds (:func:`thresholds`): the paper's (1.4 MNIST, 4.0
CIFAR-10; App. B) and ``quantile``, the ``q``-quantile of the test bits/dim with ``q`` = the
paper's accepted share capped at :data:`MAX_QUANTILE` (0.99: the paper's 100% for MNIST would be
the maximum of the test set, an outlier that no attack can exceed), 0.786 for CIFAR-10 and
BG-MNIST. Each records its recall (share of test images accepted) with a 95% Wilson interval and
n (:func:`pct_ci`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from foundation import errors, paper_numbers
from foundation.percent import pct_ci, share_text

PAPER_THRESHOLD_BPD: dict[str, float] = paper_numbers.THRESHOLD_BPD
"""Paper App. B detection thresholds in bits/dim."""

PAPER_ACCEPT_SHARE: dict[str, float] = paper_numbers.THRESHOLD_ACCEPTED_SHARE
"""Share of test images below the paper's threshold (App. B / Sec. 4.4)."""

DEFAULT_ACCEPT_SHARE = 0.786
"""Share used for datasets without a paper threshold (BG-MNIST)."""

MAX_QUANTILE = 0.99
"""Cap of the quantile threshold's target recall (never the maximum of the test set)."""


def accepted(bpd: np.ndarray | torch.Tensor | float, threshold_bpd: float) -> Any:
    """Detection rule: accepted as a real image iff ``bits/dim <= T``."""
    return bpd <= threshold_bpd


def fmt_ci(c: dict[str, Any]) -> str:
    """``"12% [7, 20] (n=100)"`` from :func:`pct_ci`."""
    if c.get("pct") is None:
        return "- (n=0)"
    return f"{share_text(c)} (n={c['n']})"


def quantile_share(dataset: str) -> float:
    """Target recall of the quantile threshold: the paper's share, capped at MAX_QUANTILE."""
    return min(PAPER_ACCEPT_SHARE.get(dataset, DEFAULT_ACCEPT_SHARE), MAX_QUANTILE)


def quantile_threshold(bpd_test: np.ndarray, share: float) -> float:
    """The smallest test bits/dim ``T`` with ``mean(bpd <= T) >= share``, below the maximum.

    With ``n`` values: the ``ceil(share n)``-th smallest, but at most the second largest, so the
    threshold is never set by the single least likely test image.
    """
    v = np.sort(np.asarray(bpd_test, dtype=np.float64))
    n = len(v)
    if n == 0:
        return math.nan
    i = min(max(math.ceil(share * n) - 1, 0), max(n - 2, 0))
    return float(v[i])


def thresholds(bpd_test: np.ndarray, dataset: str) -> dict[str, dict[str, Any]]:
    """Paper and quantile thresholds with their recall on ``bpd_test`` (Wilson 95%, n)."""
    bpd_test = np.asarray(bpd_test, dtype=np.float64)
    n = len(bpd_test)
    out: dict[str, dict[str, Any]] = {}
    t_paper = PAPER_THRESHOLD_BPD.get(dataset)
    rec = None if t_paper is None else pct_ci(int(np.sum(accepted(bpd_test, t_paper))), n)
    out["paper"] = {
        "T_bpd": t_paper,
        "accepted_share_test": None if rec is None else rec["k"] / max(n, 1),
        "recall_test": rec,
        "paper_accepted_share": PAPER_ACCEPT_SHARE.get(dataset),
        "rule": "paper App. B value" if t_paper is not None else "paper gives none",
    }
    share = quantile_share(dataset)
    t_q = quantile_threshold(bpd_test, share)
    rec_q = pct_ci(int(np.sum(accepted(bpd_test, t_q))), n)
    out["quantile"] = {
        "T_bpd": t_q,
        "accepted_share_test": rec_q["k"] / max(n, 1),
        "recall_test": rec_q,
        "target_share": share,
        "test_max_bpd": float(bpd_test.max()) if n else None,
        "rule": f"smallest test bits/dim accepting >= {share} of the test set (the paper's "
                f"{PAPER_ACCEPT_SHARE.get(dataset, DEFAULT_ACCEPT_SHARE)} capped at "
                f"{MAX_QUANTILE}), never the test maximum",
    }
    return out


def require_rule(rule: str, dataset: str) -> None:
    """Before any scoring: ``--threshold paper`` needs a paper value for ``dataset``."""
    if rule == "paper" and dataset not in PAPER_THRESHOLD_BPD:
        raise errors.UsageError(
            f"--threshold paper: the paper gives no likelihood threshold for {dataset} (only "
            f"for {', '.join(sorted(PAPER_THRESHOLD_BPD))}); use --threshold quantile")


def pick_threshold(ths: dict[str, dict[str, Any]], rule: str) -> float:
    """``T`` for ``rule`` in {"paper", "quantile"}; error when the paper gives none."""
    if rule not in ths:
        raise errors.UsageError(f"--threshold: unknown rule {rule!r}; use 'paper' or 'quantile'")
    t = ths[rule]["T_bpd"]
    if t is None:
        raise errors.UsageError(f"--threshold: rule {rule!r} has no value for this dataset")
    return float(t)


def summary(v: np.ndarray) -> dict[str, float]:
    """mean, std, min, max and the 1/5/25/50/75/95/99 percentiles (finite values only)."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {}
    qs = [1, 5, 25, 50, 75, 95, 99]
    out = {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std()),
           "min": float(v.min()), "max": float(v.max())}
    out.update({f"p{q:02d}": float(np.percentile(v, q)) for q in qs})
    return out
