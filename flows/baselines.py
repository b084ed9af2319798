"""Trivial density baselines in exactly the flows' bits/dim convention (Table 1 and Table 3 rows).

``python -m flows.baselines --dataset mnist [--dataset cifar10 ...] --out-dir results/baselines``

Both are fitted on the training split and scored on the test split, on 32x32 images (MNIST and
BG-MNIST zero-padded as for the flows), with ``D = C*32*32`` dimensions, so a model that does not
beat them has learnt less than the pixel statistics:

* ``histogram`` -- independent per-pixel categorical distributions over the 256 values, with
  add-one (Laplace) smoothing: ``P_i(k) = (n_i(k) + 1) / (N + 256)``. As a dequantised density it
  is ``256^D prod_i P_i(k_i)`` on the image's bin, constant there, so its bits/dim is exactly
  ``-sum_i log2 P_i(k_i) / D`` with no noise to average over.
* ``gaussian`` -- one full-covariance Gaussian ``N(mu, Sigma)`` on the dequantised inputs
  ``x = (k + u)/256 - 0.5`` (maximum likelihood, in closed form: ``mu = (E k + 1/2)/256 - 1/2``,
  ``Sigma = (Cov k + I/12)/256^2`` since ``u ~ U[0,1)`` is independent of ``k``), scored like the
  flows (:mod:`flows.scoring`): the single-draw dequantised bound averaged over ``--draws`` draws
  and the log-mean-exp over draws; :func:`flows.pixels.bits_per_dim` converts.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from flows import data as fdata
from flows.pixels import NUM_BINS, bin_point, bits_per_dim
from flows.preprocess import pad_to_32
from flows.priors import LOG_2PI
from flows.provenance import provenance
from flows.scoring import mean_and_se
from foundation import cli, errors, runlock
from foundation.atomic import write_json
from foundation.intervals import logmeanexp
from foundation.provenance import portable_command

PROG = "python -m flows.baselines"


def flat_images(images_uint8: torch.Tensor) -> np.ndarray:
    """``[N, D]`` uint8 pixel values of the 32x32 (padded) images."""
    return pad_to_32(images_uint8).reshape(images_uint8.shape[0], -1).numpy()


def histogram_bits(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per-image bits/dim of the smoothed per-pixel histogram (fitted on ``train``)."""
    n, d = train.shape
    counts = np.zeros((d, NUM_BINS), dtype=np.int64)
    cols = np.arange(d)
    for start in range(0, n, 4096):
        np.add.at(counts, (np.broadcast_to(cols, train[start:start + 4096].shape),
                           train[start:start + 4096]), 1)
    log2p = np.log2(counts + 1.0) - math.log2(n + NUM_BINS)
    bits = -log2p[cols[None, :], test.astype(np.int64)].sum(axis=1)
    return bits / d


def fit_gaussian(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, Cholesky factor of Sigma)`` of the dequantised training inputs (float64)."""
    k = train.astype(np.float64)
    mean_k = k.mean(axis=0)
    cov = np.zeros((k.shape[1], k.shape[1]))
    for start in range(0, k.shape[0], 8192):
        c = k[start:start + 8192] - mean_k
        cov += c.T @ c
    cov /= k.shape[0]
    cov[np.diag_indices_from(cov)] += 1.0 / 12.0
    mu = bin_point(mean_k, 0.5)
    return mu, np.linalg.cholesky(cov / float(NUM_BINS)**2)


def gaussian_log_density(x: np.ndarray, mu: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``log N(x; mu, L L^T)`` per row of ``x`` (nats)."""
    from scipy.linalg import solve_triangular

    w = solve_triangular(chol, (x - mu).T, lower=True)
    logdet = 2.0 * np.log(np.diag(chol)).sum()
    return -0.5 * (w**2).sum(axis=0) - 0.5 * logdet - 0.5 * x.shape[1] * LOG_2PI


def gaussian_bits(train: np.ndarray, test: np.ndarray, draws: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-image bits/dim of the Gaussian: (single-draw bound averaged, log-mean-exp over draws)."""
    mu, chol = fit_gaussian(train)
    rng = np.random.default_rng(seed)
    d = test.shape[1]
    lp = np.zeros((test.shape[0], draws))
    for s in range(draws):
        x = bin_point(test, rng.random(test.shape))
        lp[:, s] = gaussian_log_density(x, mu, chol)
    single = bits_per_dim(lp, d).mean(axis=1)
    pooled = bits_per_dim(logmeanexp(lp, axis=1), d)
    return single, pooled


def baselines(dataset: str, data_dir: str | None, draws: int, seed: int) -> dict:
    """Both baselines on one dataset, as a JSON-ready dict."""
    train, _ = fdata.load_split(dataset, "train", data_dir)
    test, _ = fdata.load_split(dataset, "test", data_dir)
    tr, te = flat_images(train), flat_images(test)
    hist = histogram_bits(tr, te)
    g_single, g_pooled = gaussian_bits(tr, te, draws, seed)
    h_mean, h_se = mean_and_se(hist)
    g_mean, g_se = mean_and_se(g_single)
    p_mean, p_se = mean_and_se(g_pooled)
    return {
        "dataset": dataset,
        "num_dims": int(tr.shape[1]),
        "n_train": int(tr.shape[0]),
        "n_test": int(te.shape[0]),
        "histogram": {"bits_per_dim": h_mean, "bits_per_dim_se": h_se,
                      "smoothing": "add-one (Laplace)"},
        "gaussian": {"bits_per_dim": g_mean, "bits_per_dim_se": g_se,
                     "bits_per_dim_S": p_mean, "bits_per_dim_S_se": p_se, "draws": draws,
                     "seed": seed, "covariance": "full, maximum likelihood, closed form"},
    }


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--dataset", action="append", required=True, choices=fdata.DATASETS,
                   help="repeat for several datasets")
    p.add_argument("--data-dir", type=cli.existing_dir_of("data directory"), default=None,
                   help="default: $ANNULUS_DATA_DIR or ../shared/data")
    p.add_argument("--out-dir", type=cli.output_dir, required=True,
                   help="writes OUT_DIR/<dataset>.json")
    p.add_argument("--draws", type=cli.int_range(1, 1024), default=4,
                   help="dequantisation draws (Gaussian)")
    p.add_argument("--seed", type=cli.seed, default=0)
    return p


@errors.guard(PROG, runtime=(fdata.DataFileError,))
@runlock.releasing
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    outs = [Path(args.out_dir) / f"{dataset}.json" for dataset in args.dataset]
    for out in outs:  # one writer per output file (a second one: exit 1, before any work)
        runlock.acquire(runlock.file_lock_path(out), out)
    for dataset, out in zip(args.dataset, outs, strict=True):
        t0 = time.time()
        try:
            result = baselines(dataset, args.data_dir, args.draws, args.seed)
        except fdata.DataFileError as exc:
            print(f"{PROG}: error: {errors.one_line(exc)}", file=sys.stderr)
            return 1
        result.update(
            command=portable_command("flows.baselines",
                                     sys.argv[1:] if argv is None else list(argv)),
            wall_time_s=time.time() - t0, provenance=provenance(torch.device("cpu")))
        write_json(out, result)
        print(f"{dataset}: histogram {result['histogram']['bits_per_dim']:.4f} bits/dim, "
              f"gaussian {result['gaussian']['bits_per_dim']:.4f} bits/dim "
              f"({result['wall_time_s']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
