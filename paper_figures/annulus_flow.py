"""Issue 18 figure: a trained conditional flow vs. the theorem's q vs. the Bayes classifier.

Reads ``results/annulus_flow/annulus_flow.json`` (``python -m flows.experiments.annulus_flow``)
and plots, against the dimension ``d``: the attack success rate (properties 1-5 of
Proposition 1), the undetectable share (property 5: ``log q(xbar) >=`` the median of
``log q(X)``, ``X ~ p``), both with their 99% Wilson intervals, and ``KL(p || model)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paper_figures import style

#: (label, model key, attack key, colour, marker)
SERIES = (
    ("trained flow q_theta, radial attack", "trained", "attack_radial", style.OURS, "o"),
    ("trained flow q_theta, PGD attack", "trained", "attack_pgd", style.OKABE_ITO["green"], "s"),
    ("theorem's q, radial attack", "theorem_q", "attack_radial", style.CLASS1, "^"),
    ("Bayes classifier p, radial attack", "bayes_p", "attack_radial", "0.35", "v"),
)


def _rates(rows: list[dict[str, Any]], model: str, attack: str,
           key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rate and 99% Wilson ends of ``rows[i][model][attack][key]``."""
    recs = [r[model][attack][key] for r in rows]
    return (np.array([x["rate"] for x in recs], dtype=float),
            np.array([x["wilson99"][0] for x in recs], dtype=float),
            np.array([x["wilson99"][1] for x in recs], dtype=float))


def plot_annulus_flow(res: dict[str, Any], out_dir: Path) -> list[Path]:
    """Three panels against ``d``: attack success, undetectable share, ``KL(p || model)``."""
    rows = sorted(res["dims"], key=lambda r: r["d"])
    d = np.array([r["d"] for r in rows], dtype=float)
    fig, axes = style.figure(1, 3, figsize=(14, 4.2))
    for ax, key, title in ((axes[0], "success", "attack success (properties 1-5)"),
                           (axes[1], "undetectable_5", "undetectable: log q(xbar) >= median")):
        for i, (label, model, attack, colour, marker) in enumerate(SERIES):
            if rows[0][model].get(attack) is None:
                continue
            rate, lo, hi = _rates(rows, model, attack, key)
            shift = d * (1 + 0.04 * (i - 1.5))  # separate overlapping points
            err = [np.maximum(rate - lo, 0), np.maximum(hi - rate, 0)]
            ax.errorbar(shift, rate, yerr=err, color=colour, marker=marker, capsize=3, lw=1.2,
                        label=label)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("dimension d")
        ax.set_ylabel("share of attacked shell points")
        ax.set_title(title)
    axes[0].legend(fontsize=7.5, loc="upper left")
    ax = axes[2]
    kl = np.array([r["trained"]["kl_p_q_theta_joint"]["mean"] for r in rows])
    se = np.array([r["trained"]["kl_p_q_theta_joint"]["stderr"] for r in rows])
    ax.errorbar(d, kl, yerr=se, color=style.OURS, marker="o", capsize=3,
                label="KL(p || q_theta) (Monte Carlo, +-1 s.e.)")
    ax.plot(d, [r["theory"]["kl_p_q_joint_exact"] for r in rows], color=style.CLASS1,
            marker="^", label="KL(p || theorem's q) (exact)")
    ax.axhline(float(eval_fraction(res["params"]["eps"])), color="k", ls="--", lw=1,
               label="eps")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("nats")
    ax.set_title("joint KL(p || model)")
    ax.legend(fontsize=7.5)
    cfg = res["config"]
    fl, ev = cfg["flow"], cfg["eval"]
    fig.suptitle("Appendix D: does a trained conditional flow behave like the theorem's q? "
                 f"(eps {res['params']['eps']}, delta {res['params']['delta']}, "
                 f"Delta {res['params']['Delta']}, lambda1 {res['lambda1']['value']:.4g} at all d)")
    fig.text(0.5, -0.01, style.scale_note(
        f"zuko MAF, {fl['transforms']} transforms, hidden {fl['hidden']}, {fl['steps']} Adam "
        f"steps of {fl['batch']} from {fl['n_train']} exact draws per d; "
        f"{ev['n_eval']} draws of p for KL/median, up to {ev['n_attack']} shell points "
        f"attacked, PGD {ev['pgd_steps']} steps; 99% Wilson intervals"),
        ha="center", va="top", fontsize=8, color="0.25")
    return style.save(fig, out_dir, "annulus_flow")


def eval_fraction(text: str) -> float:
    """``"1/10"`` -> 0.1 (the JSON stores the parameters as exact fractions)."""
    num, _, den = str(text).partition("/")
    return float(num) / float(den or 1)
