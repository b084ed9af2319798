"""Figures 1, 4 and 6 (paper Sec. 4.4, 4.5): linear interpolations between test images.

Endpoints: test images (first ``--n-test``) that are correctly classified and accepted,
``bits/dim <= T`` with ``T`` the ``--threshold`` rule (default ``quantile``; see
:mod:`flows.experiments.detection`).  ``--n-pairs`` pairs ``(x0, x1)`` with different labels
``y0 != y1`` are drawn with ``--seed``.  Along the 8-bit images ``k_a = round(a k1 + (1 - a) k0)``
for ``--n-alphas`` (21) values ``a = linspace(0, 1)`` (``a = 0, 1`` are exactly the endpoints)
we record ``bits/dim(k_a)``, ``p(y0|k_a)`` and ``p(y1|k_a)``, all from
:func:`flows.scoring.score_images` (``--draws`` noise draws).

The paper's findings to check: MNIST - the likelihood drops between the images (0.5% of paths stay
accepted); CIFAR-10 and BG-MNIST-0 - interpolants are *more* likely than the endpoints (100% of
paths stay accepted).  ``finding`` states what our model shows: ``"drops"`` when the mean
mid-path bits/dim is above the mean endpoint bits/dim (less likely), ``"rises"`` otherwise.

CLI::

    python -m flows.experiments.interpolation --run RUN_DIR --out OUT.json [--png-dir DIR]
        [--n-pairs 200] [--n-alphas 21] [--seed 0] [--threshold quantile|paper] [--n-test N]
        [--draws 8] [--n-examples 4] [--batch-size 250] [--cache-dir DIR]

``--png-dir`` saves Figure-1 style strips of the example paths (images only the data can show);
Figures 1 and 4 are drawn from the JSON by ``python -m paper_figures --only fig1 --only fig4``.

JSON keys: ``experiment`` "interpolation"; ``dataset``; ``n_test``; ``thresholds`` (``paper`` /
``quantile``); ``threshold_used``; ``T_used_bpd``; ``pool_size``; ``n_pairs``; ``seed``;
``alphas`` [A]; ``bpd_mean``, ``bpd_std``, ``bpd_p05``, ``bpd_p95`` [A] (over pairs; bits/dim,
lower = more likely); ``log_px_mean`` [A] (nats); ``p_y0_mean``, ``p_y1_mean`` [A];
``endpoint_bpd_mean``; ``mid_bpd_mean`` (a = alphas[A // 2]); ``mid_minus_endpoints_bpd``
(mean over pairs of bpd(mid) - (bpd(x0) + bpd(x1)) / 2) and its ``_se``;
``share_mid_more_likely_than_both``; ``mid_more_likely_than_both`` / ``mid_less_likely_than_both``
and ``paths_all_accepted`` {threshold name} as ``{k, n, pct, wilson95_pct}`` (95% Wilson);
``share_paths_all_accepted`` {threshold name: share of paths with every ``x_a`` accepted};
``share_points_accepted`` {threshold name: share of all ``x_a``}; ``finding``;
``pairs``: {``i0``, ``i1``, ``y0``, ``y1``} test indices and labels;
``examples``: list of {``i0``, ``i1``, ``y0``, ``y1``, ``bpd``, ``p_y0``, ``p_y1``} (Fig. 1);
``provenance``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flows import pixels
from flows.experiments import detection, png_files, runner, scored_runs
from flows.provenance import Provenance, write_result
from flows.scoring import Scores
from foundation import cli, errors

MODULE = "flows.experiments.interpolation"


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
        "mid_minus_endpoints_bpd_se": float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
        "share_mid_more_likely_than_both": float(np.mean(mid_better)),
        "mid_more_likely_than_both": detection.pct_ci(int(mid_better.sum()), n),
        "mid_less_likely_than_both": detection.pct_ci(
            int(((mid > bpd[:, 0]) & (mid > bpd[:, -1])).sum()), n),
        "share_paths_all_accepted": share_paths,
        "paths_all_accepted": ci_paths,
        "share_points_accepted": share_points,
        "finding": "drops" if diff.mean() > 0 else "rises",
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


def build_parser() -> argparse.ArgumentParser:
    p = runner.experiment_parser(
        "interpolation",
        "Figures 1/4/6: likelihood and class probabilities along interpolations.",
        images="the example paths (fig1_strips_DATASET.png)")
    p.add_argument("--n-pairs", type=runner.count, default=200)
    p.add_argument("--n-alphas", type=cli.int_range(3, 10001), default=21)
    p.add_argument("--n-examples", type=runner.count0, default=4)
    p.add_argument("--threshold", default="quantile", choices=("quantile", "paper"))
    return p


@runner.cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runner.require_run(args)
    runner.set_seed(args.seed)
    prov = Provenance(seed=args.seed, run_dir=args.run, run_config=None, device=args.device,
                      argv=argv, module=MODULE)
    run = scored_runs.load_scored_run(
        args.run, scored_runs.ScoringSettings.from_args(args), args.dataset)
    prov.run_config = run.config
    model, dataset, scores = run.model, run.dataset, run.scores
    x_test, y_test = run.images, run.y
    result, _ = run_interpolation(
        model, x_test, y_test, scores, dataset, n_pairs=args.n_pairs, n_alphas=args.n_alphas,
        seed=args.seed, threshold=args.threshold, n_examples=args.n_examples,
        batch_size=args.batch_size, draws=args.draws, device=args.device,
    )
    result["provenance"] = prov.finish()
    write_result(args.out, result)
    png = png_files.resolve_png_dir(args.png_dir)
    if png is not None:
        plot_strips(x_test, result, png / f"fig1_strips_{dataset}.png")
    print(
        f"{dataset}: {result['n_pairs']} pairs, endpoints {result['endpoint_bpd_mean']:.3f} "
        f"mid {result['mid_bpd_mean']:.3f} bits/dim ({result['finding']}); paths all accepted: "
        f"{result['share_paths_all_accepted']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
