"""Interpolation paths between test images on the 8-bit grid (paper Sec. 4.4, 4.5): the pairs,
the rounded interpolants ``k_a = round(a k1 + (1 - a) k0)``, their scores along each path and
the summary that Figures 1, 4 and 6 show. Used by :mod:`flows.experiments.interpolation` (any
run) and :mod:`flows.experiments.bg_mnist` (Figure 6); the JSON keys are listed in the former.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flows import pixels
from flows.experiments import detection, png_files, scored_runs
from flows.scoring import Scores
from foundation import errors
from foundation.intervals import Z95


def select_pairs(
    labels: np.ndarray, pool: np.ndarray, n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` random ``(i0, i1)`` from ``pool`` with different labels (no repeated pair)."""
    if len(np.unique(labels[pool])) < 2:
        raise errors.UsageError("need accepted, correct test images of two classes")
    seen: set[tuple[int, int]] = set()
    i0, i1 = [], []
    tries = 0
    while len(i0) < n_pairs and tries < 100 * n_pairs:
        tries += 1
        a, b = rng.choice(pool, size=2, replace=False)
        if labels[a] == labels[b] or (int(a), int(b)) in seen:
            continue
        seen.add((int(a), int(b)))
        i0.append(int(a))
        i1.append(int(b))
    return np.array(i0, dtype=np.int64), np.array(i1, dtype=np.int64)


def interpolant_images(k0: torch.Tensor, k1: torch.Tensor, alphas: np.ndarray) -> torch.Tensor:
    """8-bit interpolants ``round(a k1 + (1 - a) k0)``, ``[P, A, C, H, W]`` uint8."""
    al = torch.as_tensor(alphas, dtype=torch.float64)[None, :, None, None, None]
    mix = al * k1[:, None].double() + (1 - al) * k0[:, None].double()
    return pixels.quantize(mix)


def interpolate(
    model: nn.Module,
    k0: torch.Tensor,
    k1: torch.Tensor,
    y0: np.ndarray,
    y1: np.ndarray,
    alphas: np.ndarray,
    *,
    draws: int = 8,
    seed: int = 0,
    batch_size: int = 250,
    device: str = "cpu",
    progress: str | None = None,
) -> dict[str, np.ndarray]:
    """bits/dim, log p and p(y0|x_a), p(y1|x_a) of the 8-bit interpolants: arrays ``[P, A]``.

    Every interpolant is rounded to the 8-bit grid and scored with :mod:`flows.scoring`.
    """
    p, a = len(k0), len(alphas)
    imgs = interpolant_images(k0, k1, alphas).reshape(p * a, *k0.shape[1:])
    sc = scored_runs.score(model, imgs, draws=draws, seed=seed, batch_size=batch_size,
                           device=device, desc=progress)
    post = sc.posterior.reshape(p, a, -1)
    r = np.arange(p)
    return {"bpd": sc.bpd.reshape(p, a), "log_px": sc.log_px.reshape(p, a),
            "p_y0": post[r, :, y0], "p_y1": post[r, :, y1]}


FINDINGS = ("drops", "rises", "no clear change")


def mid_path_finding(diff_mean: float, diff_se: float | None) -> str:
    """``"drops"`` (mid-path less likely) when the 95% interval ``mean +- 1.96 se`` of the mean
    ``bpd(mid) - bpd(endpoints)`` lies above 0, ``"rises"`` when it lies below, else ``"no clear
    change"``. Without a standard error (one pair) the interval is unknown: no clear change."""
    if diff_se is None or not np.isfinite(diff_se):
        return FINDINGS[2]
    if diff_mean - Z95 * diff_se > 0:
        return FINDINGS[0]
    if diff_mean + Z95 * diff_se < 0:
        return FINDINGS[1]
    return FINDINGS[2]


def analyse(
    curves: dict[str, np.ndarray],
    alphas: np.ndarray,
    thresholds_bpd: dict[str, float | None],
) -> dict[str, Any]:
    """Mean curves, accepted shares and the drop/rise finding."""
    bpd = curves["bpd"]
    a = len(alphas)
    mid = bpd[:, a // 2]
    ends = 0.5 * (bpd[:, 0] + bpd[:, -1])
    share_paths = {}
    share_points = {}
    ci_paths: dict[str, Any] = {}
    for name, t in thresholds_bpd.items():
        if t is None:
            continue
        acc = detection.accepted(bpd, t)
        share_paths[name] = float(np.mean(acc.all(axis=1)))
        share_points[name] = float(np.mean(acc))
        ci_paths[name] = detection.pct_ci(int(acc.all(axis=1).sum()), len(bpd))
    diff = mid - ends
    n = len(bpd)
    diff_se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else None
    mid_better = (mid < bpd[:, 0]) & (mid < bpd[:, -1])
    return {
        "alphas": alphas,
        "bpd_mean": bpd.mean(0),
        "bpd_std": bpd.std(0),
        "bpd_p05": np.percentile(bpd, 5, axis=0),
        "bpd_p95": np.percentile(bpd, 95, axis=0),
        "log_px_mean": curves["log_px"].mean(0),
        "p_y0_mean": curves["p_y0"].mean(0),
        "p_y1_mean": curves["p_y1"].mean(0),
        "endpoint_bpd_mean": float(ends.mean()),
        "mid_bpd_mean": float(mid.mean()),
        "mid_minus_endpoints_bpd": float(diff.mean()),
        "mid_minus_endpoints_bpd_se": diff_se,
        "share_mid_more_likely_than_both": float(np.mean(mid_better)),
        "mid_more_likely_than_both": detection.pct_ci(int(mid_better.sum()), n),
        "mid_less_likely_than_both": detection.pct_ci(
            int(((mid > bpd[:, 0]) & (mid > bpd[:, -1])).sum()), n),
        "share_paths_all_accepted": share_paths,
        "paths_all_accepted": ci_paths,
        "share_points_accepted": share_points,
        "finding": mid_path_finding(float(diff.mean()), diff_se),
    }


def run_interpolation(
    model: nn.Module,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    test_scores: Scores,
    dataset: str,
    *,
    n_pairs: int,
    n_alphas: int = 21,
    seed: int = 0,
    threshold: str = "quantile",
    n_examples: int = 4,
    batch_size: int = 250,
    draws: int = 8,
    device: str = "cpu",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Pick pairs of uint8 test images ``x_test``, score the 8-bit paths, summarise.

    Returns (result, raw curves [P, A]).
    """
    if n_pairs <= 0:
        raise errors.UsageError(f"--n-pairs: expected >= 1, got {n_pairs}")
    if n_alphas < 3:
        raise errors.UsageError(f"--n-alphas: expected >= 3, got {n_alphas}")
    labels = y_test.numpy()
    bpd_test = test_scores.bpd
    ths = detection.thresholds(bpd_test, dataset)
    t_used = detection.pick_threshold(ths, threshold)
    pool = np.flatnonzero((test_scores.pred == labels) & detection.accepted(bpd_test, t_used))
    rng = np.random.default_rng(seed)
    i0, i1 = select_pairs(labels, pool, n_pairs, rng)
    if len(i0) < n_pairs:
        print(f"note: --n-pairs {n_pairs}: the {len(pool)} accepted, correctly classified test "
              f"images give {len(i0)} distinct pairs of different classes; using those",
              file=sys.stderr)
    alphas = np.linspace(0.0, 1.0, n_alphas)
    curves = interpolate(
        model, x_test[i0], x_test[i1], labels[i0], labels[i1], alphas, draws=draws,
        seed=seed + 1, batch_size=batch_size, device=device,
        progress=f"{dataset} interpolation ({len(i0)} pairs x {n_alphas}, S={draws})",
    )
    res = {
        "experiment": "interpolation",
        "dataset": dataset,
        "n_test": len(x_test),
        "thresholds": ths,
        "threshold_used": threshold,
        "T_used_bpd": t_used,
        "pool_size": len(pool),
        "n_pairs": len(i0),
        "n_pairs_requested": n_pairs,
        "draws": draws,
        "images": "8-bit interpolants round(a k1 + (1-a) k0), scored with flows.scoring",
        "seed": seed,
        **analyse(curves, alphas, {k: v["T_bpd"] for k, v in ths.items()}),
        "pairs": {"i0": i0, "i1": i1, "y0": labels[i0], "y1": labels[i1]},
        "examples": [
            {
                "i0": i0[k],
                "i1": i1[k],
                "y0": labels[i0[k]],
                "y1": labels[i1[k]],
                "bpd": curves["bpd"][k],
                "p_y0": curves["p_y0"][k],
                "p_y1": curves["p_y1"][k],
            }  # fmt: skip
            for k in range(min(n_examples, len(i0)))
        ],
    }
    return res, curves


def plot_strips(x_test: torch.Tensor, result: dict[str, Any], path: Path, n_cols: int = 9) -> None:
    """Figure 1 style strips: interpolated images and the bits/dim curve per example pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ex = result["examples"]
    if not ex:
        return
    alphas = np.asarray(result["alphas"])
    fig, axes = plt.subplots(
        len(ex),
        n_cols + 1,
        figsize=(1.2 * (n_cols + 3), 1.3 * len(ex)),
        squeeze=False,
        gridspec_kw={"width_ratios": [1] * n_cols + [3]},
    )
    cols = np.linspace(0, 1, n_cols)
    for r, e in enumerate(ex):
        row = interpolant_images(x_test[e["i0"]][None], x_test[e["i1"]][None], cols)[0]
        for c in range(n_cols):
            img = pixels.intensity(row[c].numpy().transpose(1, 2, 0))
            ax = axes[r, c]
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[r, -1]
        ax.plot(alphas, e["bpd"])
        ax.invert_yaxis()
        ax.set_title(f"{e['y0']} -> {e['y1']} bits/dim", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    png_files.savefig(fig, path, dpi=70)
    plt.close(fig)
