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
paths stay accepted).  ``finding`` states what our model shows: ``"drops"`` when the 95%
interval of the mean ``bpd(mid) - bpd(endpoints)`` over pairs lies above 0 (mid-path less
likely), ``"rises"`` when it lies below, ``"no clear change"`` otherwise.

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

from flows.experiments import png_files, runner
from flows.experiments.interpolation_paths import plot_strips, run_interpolation
from foundation import cli

MODULE = "flows.experiments.interpolation"


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
    prov, run = runner.start_scored_run(args, argv, MODULE)
    model, dataset, scores = run.model, run.dataset, run.scores
    x_test, y_test = run.images, run.y
    result, _ = run_interpolation(
        model, x_test, y_test, scores, dataset, n_pairs=args.n_pairs, n_alphas=args.n_alphas,
        seed=args.seed, threshold=args.threshold, n_examples=args.n_examples,
        batch_size=args.batch_size, draws=args.draws, device=args.device,
    )
    runner.write_with_provenance(args.out, result, prov)
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
