"""Table 2 as curves, from the stored attack JSON (no model, no data).

For each attack setting, over the L2 budget ``g`` (8-bit images, [0, 1] pixel scale):

    fooled(g)     = share of attacked images with  fooled_i and L2_i <= g
    undetected(g) = share with  fooled_i and bpd_i <= T and L2_i <= g

with ``fooled_i``, ``T`` (the threshold the run used) and ``L2_i`` exactly as Table 2 counts them
(:func:`paper_figures.paired.outcomes`); at ``g = eps`` the curves are the Table-2 cells. The
boundary attacks also get their median L2 per step (the trajectory the convergence rule reads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from paper_figures import paired, style
from paper_figures.empirical import footer, label, scale_text


def _budgets(result: dict[str, Any]) -> tuple[np.ndarray, bool]:
    """L2 budgets up to twice eps or the largest finite L2, whichever is larger, and whether
    they are log-spaced (from eps / 10; when the largest L2 is over 20 eps, as for the boundary
    attacks) rather than linear from 0."""
    eps = float(result["eps_l2"])
    hi = 2 * eps
    for s in result["settings"].values():
        l2 = paired._floats(s["per_image"]["l2"])
        if np.isfinite(l2).any():
            hi = max(hi, float(l2[np.isfinite(l2)].max()))
    if hi > 20 * eps:
        return np.geomspace(eps / 10, hi, 400), True
    return np.linspace(0.0, hi, 400), False


def success_curves(result: dict[str, Any], setting: str, budgets: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(fooled(g), undetected(g))`` in % of the attacked images for each budget ``g``, under
    the threshold the run used; at ``g = eps`` they are that setting's Table-2 cells."""
    o = paired.outcomes(result, setting, result["threshold_used"])
    within = o.l2[None, :] <= np.asarray(budgets, dtype=np.float64)[:, None]
    n = len(o.found)
    return (100 * (o.fooled & within).sum(1) / n,
            100 * (o.fooled & o.accepted & within).sum(1) / n)


def plot_attack_curves(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One panel per stored attack result: every setting's fooled (dashed) and fooled and
    undetected (solid) share against the L2 budget, with the paper's eps marked."""
    n = len(results)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = style.figure(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    notes = []
    for ax, r in zip(axes.flat, results, strict=False):
        grid, log_x = _budgets(r)
        for name, s in r["settings"].items():
            fooled, undetected = success_curves(r, name, grid)
            (line,) = ax.plot(grid, undetected, label=f"{name} (n = {len(s['per_image']['l2'])})")
            ax.plot(grid, fooled, ls="--", lw=1.2, color=line.get_color())
        eps = float(r["eps_l2"])
        ax.axvline(eps, color=style.THRESHOLD, lw=0.9, ls=":")
        if log_x:
            ax.set_xscale("log")
            ax.set_xlim(grid[0], grid[-1])
        ax.set_xlabel("L2 budget (8-bit image, [0, 1] scale)")
        ax.set_ylabel("% of attacked images")
        ax.set_ylim(-2, 102)
        model = Path(str((r.get("provenance") or {}).get("run_dir") or "")).name
        ax.set_title(f"{label(r['dataset'])} {model}".strip(), fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
        notes.append(f"{label(r['dataset'])} {model}: T = {float(r['T_used_bpd']):.3f} bits/dim "
                     f"({r['threshold_used']}), eps = {float(r['eps_l2']):g}; {scale_text(r)}")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("Attack success against the L2 budget: solid fooled and undetected, "
                 "dashed fooled (dotted line: the paper's eps)")
    footer(fig, list(dict.fromkeys(notes)))  # a model's CW and boundary results: one line
    return style.save(fig, out_dir, "attack_curves")


def plot_boundary_trajectories(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Median L2 of the best rounded adversarial per boundary-attack step, per result."""
    with_traj = [r for r in results if any((s.get("boundary") or {}).get("trajectory")
                                           for s in r["settings"].values())]
    if not with_traj:
        return []
    n = len(with_traj)
    fig, axes = style.figure(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    for ax, r in zip(axes.flat, with_traj, strict=True):
        for name, s in r["settings"].items():
            t = (s.get("boundary") or {}).get("trajectory")
            if not t:
                continue
            l2 = np.array([[np.nan if v is None else v for v in row] for row in t["l2"]], float)
            ax.plot(t["step"], np.nanmedian(l2, axis=1), label=f"{name} (median)")
        ax.axhline(float(r["eps_l2"]), color=style.THRESHOLD, lw=0.9, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("boundary-attack step")
        ax.set_ylabel("L2 of the best rounded adversarial")
        model = Path(str((r.get("provenance") or {}).get("run_dir") or "")).name
        ax.set_title(f"{label(r['dataset'])} {model}".strip(), fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Boundary attacks: median L2 per step (dotted line: the paper's eps)")
    return style.save(fig, out_dir, "boundary_trajectories")
