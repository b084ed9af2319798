"""Figure 3 (paper Sec. 4.2): log p(x|y_true) vs log p(x|y_wrong) over the test set.

``y_wrong`` is the most likely wrong class, ``argmax_{y != y_true} p(y|x)`` (with the model's
prior this is also the wrong class with the largest ``log p(x|y) + log p(y)``).  The per-image
gap is ``g = log p(x|y_true) - log p(x|y_wrong)`` in nats.

Confidence argument (Sec. 4.2): ``p(y|x) >= 1 - delta`` holds as soon as the logit of ``y`` beats
every other logit by ``m(delta) = log C + log((1 - delta) / delta)`` (natural log; exact bound is
``log(C - 1) + ...``).  For ``C = 10, delta = 1e-5`` this is 13.8 nats; the paper's "about 6"
is the same expression in base-10 logarithms (1 + 5).  The point: ``m`` is tiny next to the
spread of ``log p(x|y)`` over the test set (std of hundreds-thousands of nats), so a pair
``(x, y_wrong)`` cannot be an outlier of the joint density.

CLI::

    python -m flows.experiments.likelihood_gap --run RUN_DIR --out OUT.json \
        [--n-test N] [--data-dir DIR] [--dataset NAME] [--cache-dir DIR]

Figure 3 is drawn from the JSON by ``python -m paper_figures --only fig3``.

JSON keys:

``experiment`` "likelihood_gap"; ``dataset``; ``n_test``; ``num_classes``; ``num_dims``;
``accuracy`` and ``accuracy_ci`` (``{k, n, pct, wilson95_pct}``); ``draws`` (S of
:mod:`flows.scoring`, whose ``S``-draw estimate gives every score here); ``bits_per_dim`` (summary
of test bits/dim); ``thresholds`` (``paper`` and ``quantile``: ``T_bpd``, ``accepted_share_test``,
rule); ``log_px_given_true`` / ``log_px_given_wrong`` / ``log_px``: summaries (nats; mean, std,
min, max, p01..p99); ``gap``: summary of ``g`` in nats plus ``share_negative`` (= error rate) and
``median_over_std_true`` (median gap / std of log p(x|y_true)); ``spread``:
``std_log_px_given_true``, ``iqr_log_px_given_true``, ``p95_minus_p05``; ``confidence_margin``:
list of ``{delta, margin_nats, margin_log10, share_gap_at_least_margin, gap_at_least_margin
(Wilson), margin_over_std}``; ``histogram``: ``bin_edges`` (nats, shared) and ``counts_true``,
``counts_wrong`` (Fig. 3); ``gap_histogram``: ``bin_edges``, ``counts``; ``provenance`` (see
``flows/provenance.py``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from flows.experiments import detection, runner
from flows.scoring import Scores

MODULE = "flows.experiments.likelihood_gap"

DELTAS = (1e-2, 1e-3, 1e-5)


def confidence_margin(num_classes: int, delta: float) -> float:
    """``log C + log((1 - delta) / delta)`` in nats (Sec. 4.2)."""
    return math.log(num_classes) + math.log((1.0 - delta) / delta)


def analyse(scores: Scores, labels: np.ndarray, dataset: str, bins: int = 80) -> dict:
    """All Figure-3 numbers from the model's scores (:mod:`flows.scoring`) on the test set."""
    labels = np.asarray(labels)
    n, c = scores.log_px_given_y.shape
    rows = np.arange(n)
    post_logits = scores.logits.copy()
    post_logits[rows, labels] = -np.inf
    y_wrong = post_logits.argmax(axis=1)
    lp_true = scores.log_px_given_y[rows, labels]
    lp_wrong = scores.log_px_given_y[rows, y_wrong]
    gap = lp_true - lp_wrong
    bpd = scores.bpd
    std_true = float(lp_true.std())
    lo = float(min(lp_true.min(), lp_wrong.min()))
    hi = float(max(lp_true.max(), lp_wrong.max()))
    edges = np.linspace(lo, hi, bins + 1)
    gap_edges = np.linspace(float(gap.min()), float(gap.max()) + 1e-9, bins + 1)
    margins = []
    for d in DELTAS:
        m = confidence_margin(c, d)
        margins.append(
            {
                "delta": d,
                "margin_nats": m,
                "margin_log10": m / math.log(10.0),
                "share_gap_at_least_margin": float(np.mean(gap >= m)),
                "gap_at_least_margin": detection.pct_ci(int(np.sum(gap >= m)), int(n)),
                "margin_over_std": m / std_true if std_true > 0 else None,
            }
        )
    return {
        "experiment": "likelihood_gap",
        "dataset": dataset,
        "n_test": int(n),
        "num_classes": int(c),
        "num_dims": int(scores.num_dims),
        "accuracy": float(np.mean(scores.pred == labels)),
        "accuracy_ci": detection.pct_ci(int(np.sum(scores.pred == labels)), int(n)),
        "draws": scores.draws,
        "bits_per_dim": detection.summary(bpd),
        "thresholds": detection.thresholds(bpd, dataset),
        "log_px_given_true": detection.summary(lp_true),
        "log_px_given_wrong": detection.summary(lp_wrong),
        "log_px": detection.summary(scores.log_px),
        "gap": {
            **detection.summary(gap),
            "share_negative": float(np.mean(gap < 0)),
            "median_over_std_true": float(np.median(gap) / std_true) if std_true > 0 else None,
        },
        "spread": {
            "std_log_px_given_true": std_true,
            "iqr_log_px_given_true": float(np.subtract(*np.percentile(lp_true, [75, 25]))),
            "p95_minus_p05": float(np.subtract(*np.percentile(lp_true, [95, 5]))),
        },
        "confidence_margin": margins,
        "histogram": {
            "bin_edges": edges,
            "counts_true": np.histogram(lp_true, edges)[0],
            "counts_wrong": np.histogram(lp_wrong, edges)[0],
        },
        "gap_histogram": {"bin_edges": gap_edges, "counts": np.histogram(gap, gap_edges)[0]},
    }


def build_parser() -> argparse.ArgumentParser:
    p = runner.experiment_parser(
        "likelihood_gap",
        "Figure 3: histograms of log p(x|y_true) and log p(x|y_wrong) on the test set.",
    )
    return p


@runner.cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prov, run = runner.start_scored_run(args, argv, MODULE)
    result = analyse(run.scores, run.y.numpy(), run.dataset)
    runner.write_with_provenance(args.out, result, prov)
    g = result["gap"]
    print(
        f"{run.dataset}: acc={result['accuracy']:.4f} bpd={result['bits_per_dim']['mean']:.3f} "
        f"median gap={g['p50']:.1f} nats, std log p(x|y)="
        f"{result['spread']['std_log_px_given_true']:.1f} nats -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
