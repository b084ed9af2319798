"""Benchmark (not a test): sampler throughput against raw ``Generator.standard_normal``.

For each d, draws ``n`` points ``(x, y) ~ p`` with :func:`annulus.sampling.sample` (vectors in
float64) and, for the same total shape ``(n, d)`` and the same chunk rows, fills a buffer with
``Generator.standard_normal``; prints coordinates per second for both and their ratio (best
of ``--repeat`` interleaved runs), and the peak traced memory (tracemalloc; numpy reports its
buffers to it) of one sampler run and of one full :func:`annulus.attack.run_sampling`
(attack + checks) at ``--max-bytes``.

    python -m benchmarks.bench_sampling            # d in {201, 10^4, 10^5}
    python benchmarks/bench_sampling.py --coords 2e7 --repeat 5
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tracemalloc
from fractions import Fraction

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from annulus.attack import run_sampling  # noqa: E402
from annulus.certificate import build_certificate  # noqa: E402
from annulus.numeric import fmt  # noqa: E402
from annulus.proposition import Params  # noqa: E402
from annulus.sampling import chunk_rows, sample  # noqa: E402


def _sampler(con, n: int, max_bytes: int) -> float:
    t = time.perf_counter()
    for _ in sample(con.p, n, seed=1, max_bytes=max_bytes):
        pass
    return time.perf_counter() - t


def _raw(d: int, n: int, rows: int) -> float:
    rng = np.random.default_rng(1)
    buf = np.empty((rows, d))
    t = time.perf_counter()
    done = 0
    while done < n:
        m = min(rows, n - done)
        rng.standard_normal(out=buf[:m])
        done += m
    return time.perf_counter() - t


def _peak(fn) -> int:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=str, default="201,10000,100000")
    ap.add_argument("--coords", type=float, default=2e7, help="n * d per measurement")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--max-bytes", type=int, default=2**30)
    args = ap.parse_args(argv)
    params = Params(Fraction("0.1"), Fraction("0.001"), Fraction("0.1"))
    cert = build_certificate(params)
    print(f"eps=0.1 delta=1e-3 Delta=0.1, lambda1 = {fmt(cert.lambda1, 6)} (canonical at "
          f"d={cert.dimension}); numpy {np.__version__}, float64, best of {args.repeat}")
    print(f"{'d':>7} {'n':>7} {'rows':>5} {'sampler coord/s':>16} {'raw coord/s':>12} "
          f"{'ratio':>6} {'peak sampler':>13} {'peak run_sampling':>18} {'run_sampling s':>15}")
    for d in (int(float(v)) for v in args.dims.split(",")):
        n = max(1, int(args.coords) // d)
        con = params.construction(d, cert.lambda1)
        rows = chunk_rows(d, args.max_bytes)
        _sampler(con, min(n, 10 * rows), args.max_bytes)  # warm-up
        ts, tr = math.inf, math.inf
        for _ in range(args.repeat):  # interleaved, best of: robust to other load
            ts = min(ts, _sampler(con, n, args.max_bytes))
            tr = min(tr, _raw(d, n, rows))
        peak_s = _peak(lambda con=con, n=n: _sampler(con, n, args.max_bytes))
        exact = cert.attack_probability
        t0 = time.perf_counter()
        peak_r = _peak(lambda con=con, n=n, exact=exact: run_sampling(
            params, con, exact, n, 0, max_bytes=args.max_bytes))
        tr_run = time.perf_counter() - t0
        print(f"{d:>7} {n:>7} {rows:>5} {n * d / ts:>16.3e} {n * d / tr:>12.3e} "
              f"{tr / ts:>6.2f} {peak_s / 2**20:>10.1f} MiB {peak_r / 2**20:>15.1f} MiB "
              f"{tr_run:>15.2f}")


if __name__ == "__main__":
    main()
