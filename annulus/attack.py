"""The attack of Proposition 1 on sampled vectors, Monte Carlo checks and estimates.

**Attack map.** For ``x`` with ``r = ||x||`` the attacker moves radially,

    xbar = x * s(r) / r,     s(r) = (1 + max(r - Delta, 0)) / 2,

the midpoint between the unit sphere and the point ``r - Delta`` (``1/2`` when ``r < Delta``).
For ``1 <= r < 1 + Delta``: ``||xbar|| = s(r) < 1`` (inside the unit ball, where the model
predicts class 1 with confidence ``1 - q(0|x) >= 1 - delta``) and ``||x - xbar|| = r - s(r) =
(r - 1 + Delta)/2 < Delta``. The map is applied to every sampled point; properties 1-5 are then
checked on the actual vectors: ``||x||``, ``||xbar||`` and ``||x - xbar||`` are computed from the
coordinates, and the posteriors, predictions and densities are those of the pieces (radial
intervals) that these norms fall in.

**Exact decisions per piece** come from :class:`annulus.pieces.PieceTable`.

**Property 5** compares ``q(xbar)`` with the lower median of ``q(X)`` over the sample
(``X ~ p``). ``q`` takes finitely many values, so the median is computed from per-piece counts
and nothing of size ``n`` is stored: the whole run is streamed with memory bounded by
``max_bytes``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from annulus.certificate import build_certificate, median_piece
from annulus.construction import Construction, JointModel
from annulus.numeric import (
    enclose,
    fmt,
    json_number,
)
from annulus.pieces import PieceTable
from annulus.proposition import Params
from annulus.sampling import (
    DEFAULT_MAX_BYTES,
    RadialTable,
    chunk_rows,
    row_sq_norms,
    sample,
    scale_rows,
)
from foundation.atomic import atomic_write_bytes
from foundation.intervals import wilson_interval

#: False-alarm probability of the consistency test that decides the exit status.
TEST_ALPHA = 1e-9
#: A region is "rare" for a Monte Carlo estimate when its expected count n*m is below this.
RARE_COUNT = 10.0
PROPS = ("1", "2", "3", "4", "5")


# -- the attack map --------------------------------------------------------------------------
def attack_radius(r: np.ndarray | float, Delta: float) -> np.ndarray:
    """``s(r) = (1 + max(r - Delta, 0)) / 2``: the radius of ``xbar``."""
    return (1.0 + np.maximum(np.asarray(r, dtype=float) - Delta, 0.0)) / 2.0


def attack(x: Any, Delta: float, out: Any = None) -> Any:
    """``xbar = x s(||x||) / ||x||`` row by row (numpy array or torch tensor)."""
    r = np.sqrt(row_sq_norms(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(r > 0, attack_radius(r, Delta) / r, 0.0)
    return scale_rows(x, scale, out=out)


def lower_median_rank(counts: np.ndarray, rank: np.ndarray) -> int:
    """Rank of the lower median of a sample with ``counts[k]`` values at level ``rank[k]``:
    the ``ceil(n/2)``-th smallest value."""
    n = int(counts.sum())
    need = (n + 1) // 2
    acc = 0
    for rk in sorted(set(rank.tolist())):
        acc += int(counts[rank == rk].sum())
        if acc >= need:
            return rk
    return int(rank.max())


def exact_median_rank(con: Construction, table: PieceTable) -> int:
    """Rank of the lower median of ``q(X)``, ``X ~ p``: the level of the piece that
    :func:`annulus.certificate.median_piece` finds from the exact masses."""
    return int(table.level_rank[con.pieces.index(median_piece(con, "p"))])


def check_vectors(x: Any, table: PieceTable, Delta: float, xbar_out: Any = None,
                  diff_out: Any = None) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray,
                                                 np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Attack the rows of ``x`` and check properties 1-4 on the vectors.

    Returns ``(xbar, ||x||, ||xbar||, ||x - xbar||, piece of x, piece of xbar, {"1".."4"})``;
    property 5 needs the median: ``table.level_rank[kb] >= median_rank``."""
    if isinstance(x, np.ndarray):
        xbar = attack(x, Delta, out=xbar_out)
        diff = np.subtract(x, xbar, out=diff_out)
    else:
        xbar = attack(x, Delta)
        diff = x - xbar
    rx = np.sqrt(row_sq_norms(x))
    rb = np.sqrt(row_sq_norms(xbar))
    dist = np.sqrt(row_sq_norms(diff))
    kx, kb = table.index(rx), table.index(rb)
    return xbar, rx, rb, dist, kx, kb, table.properties(kx, kb, dist, Delta)


# -- statistics ------------------------------------------------------------------------------
def chernoff_statistic(k: int, n: int, p: Any) -> mpmath.mpf:
    """``n kl(k/n || p)``: by the Chernoff bound ``P(n kl(K/n || p) >= c) <= 2 e^-c`` for
    ``K ~ Binomial(n, p)`` (each tail is at most ``e^-c``), exactly, for every ``n`` and ``p``."""
    with mpmath.mp.workdps(30):
        mp = mpmath.mp
        a, p = mp.mpf(k) / n, mp.mpf(p)

        def term(x: Any, y: Any) -> Any:  # x log(x/y), 0 when x = 0
            if x == 0:
                return mp.mpf(0)
            return mp.inf if y == 0 else x * (mp.log(x) - mp.log(y))

        return n * (term(a, p) + term(1 - a, 1 - p))


def consistency_threshold(alpha: float = TEST_ALPHA) -> float:
    """``c = log(2/alpha)``: a correct run has ``n kl(k/n || P) >= c`` with probability <=
    ``alpha``."""
    return math.log(2 / alpha)


@dataclass
class KLEstimate:
    """A Monte Carlo estimate of a joint KL beside its exact value."""

    estimate: float
    stderr: float
    exact: Any
    exact_stderr: float
    meaningful: bool
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"estimate": _finite(self.estimate), "stderr": _finite(self.stderr),
                "exact": json_number(self.exact), "exact_stderr": _finite(self.exact_stderr),
                "meaningful": self.meaningful, "note": self.note}


def _log_ratio_table(a: JointModel, b: JointModel) -> tuple[np.ndarray, np.ndarray]:
    """``log a(x,y) - log b(x,y)`` and the ``a``-mass per (y, piece) (float64)."""
    rt = RadialTable.of(a)
    K = len(rt.pieces)
    ratio = np.zeros((2, K))
    mass = np.zeros((2, K))
    mp = mpmath.mp
    with mp.workdps(40):
        for y in (0, 1):
            for k, pc in enumerate(rt.pieces):
                la = a.log_joint_on(mp, pc, y)
                if la is None:
                    continue
                lb = b.log_joint_on(mp, pc, y)
                ratio[y, k] = np.inf if lb is None else float(la - lb)
                lm = a.conditionals[y].log_mass(mp, pc)
                mass[y, k] = float(a.prior[y]) * float(mp.exp(lm))
    return ratio, mass


def _region_name(model: JointModel, k: int, y: int) -> str:
    pc = RadialTable.of(model).pieces[k]
    return f"y={y}, {float(pc.lo):g}<=||x||<{float(pc.hi):g}"


def kl_estimate(con: Construction, which: str, counts: np.ndarray, exact: Any) -> KLEstimate:
    """MC estimate of ``KL(a||b)`` (``which = "p_q"``: a = p; ``"q_p"``: a = q) from ``n``
    draws of ``a`` summarised by ``counts[y, piece]``: the mean of
    ``log a(x,y) - log b(x,y)``, which depends on ``x`` only through its piece (so the counts
    are sufficient and the estimate streams in constant memory). ``meaningful`` is False when
    the regions rarer than ``RARE_COUNT / n`` (typically unsampled) carry more than a tenth of
    the standard error seen on the rest: the estimate would then miss them."""
    a, b = (con.p, con.q) if which == "p_q" else (con.q, con.p)
    ratio, mass = _log_ratio_table(a, b)
    n = int(counts.sum())
    if n == 0:
        return KLEstimate(math.nan, math.nan, exact, math.nan, False, "no samples")
    seen = counts > 0
    if np.isinf(ratio[seen]).any():
        return KLEstimate(math.inf, math.nan, exact, math.inf, False, "infinite: a is not << b")
    r_seen = np.where(seen, ratio, 0.0)
    est = math.fsum((counts * r_seen).ravel()) / n
    if n > 1:
        ss = float((counts * (r_seen - est) ** 2).sum())
        se = math.sqrt(ss / (n - 1) / n)
    else:
        se = math.inf
    pos = mass > 0
    finite = np.where(pos, ratio, 0.0)
    contrib = np.where(pos, mass * finite, 0.0)
    # variances as sums of non-negative terms mass (ratio - mean)^2 (no cancellation)
    exact_se = math.sqrt(float((mass * (finite - float(exact)) ** 2).sum()) / n)
    rare = pos & (n * mass < RARE_COUNT) & (contrib != 0)
    bulk = pos & ~rare
    bulk_mean = float(contrib[bulk].sum() / max(mass[bulk].sum(), 1e-300))
    bulk_se = math.sqrt(float((mass[bulk] * (ratio[bulk] - bulk_mean) ** 2).sum()) / n)
    rare_total = float(np.abs(contrib[rare]).sum())
    notes = []
    if np.isinf(ratio[pos]).any():
        return KLEstimate(est, se, exact, math.inf, False, "infinite where a > 0 = b")
    for yy, kk in zip(*np.nonzero(rare), strict=True):
        notes.append(f"{_region_name(a, int(kk), int(yy))} has mass {mass[yy, kk]:.3g} "
                     f"(expected count {n * mass[yy, kk]:.3g}) and contributes "
                     f"{contrib[yy, kk]:.3g}")
    meaningful = rare_total <= 0.1 * bulk_se
    if notes:
        notes.append("negligible beside the standard error" if meaningful else
                     "NOT negligible: the estimate misses these rare regions")
    return KLEstimate(est, se, exact, exact_se, meaningful, "; ".join(notes))


# -- the run ---------------------------------------------------------------------------------
@dataclass
class SamplingResult:
    """Monte Carlo verification of Prop. 1 on ``n`` sampled vectors (see :func:`run_sampling`)."""

    n: int
    dimension: int
    seed: int
    Delta: Fraction
    lambda1: Fraction
    lambda2: Fraction
    successes: int
    successes_exact_median: int
    exact_probability: Any
    ci99: tuple[float, float]
    per_property: dict[str, int]
    median: dict[str, float]
    kl: dict[str, KLEstimate]
    mismatches: dict[str, int]
    demo: list[dict[str, Any]]
    seconds: float
    backend: str
    chunk_rows: int
    max_bytes: int
    saved: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.successes / self.n if self.n else math.nan

    @property
    def statistic(self) -> mpmath.mpf:
        """``n kl(k/n || P)`` with ``k`` the successes judged with the exact median (a
        Binomial(n, P) count when the code is right)."""
        return chernoff_statistic(self.successes_exact_median, self.n, self.exact_probability)

    @property
    def consistent(self) -> bool:
        """The count is consistent with the exact probability: ``n kl(k/n || P) < log(2/alpha)``
        (a correct run fails with probability below ``alpha = 1e-9``). The 99% Wilson interval
        is reported, not tested: it would fail a correct run 1% of the time."""
        return bool(self.statistic < consistency_threshold())

    def test_text(self) -> str:
        return (f"n kl(k/n || P) = {fmt(self.statistic, 3)} "
                f"{'<' if self.consistent else '>='} log(2/alpha) = {consistency_threshold():.3g}, "
                f"alpha = {TEST_ALPHA:g}")

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "dimension": self.dimension,
            "success_rate": _finite(self.success_rate),
            "ci99": [self.ci99[0], self.ci99[1]],
            "exact_probability": json_number(self.exact_probability),
            "kl_estimates": {"q_p_joint": self.kl["q_p_joint"].to_json(),
                             "p_q_joint": self.kl["p_q_joint"].to_json()},
            "seconds": self.seconds,
            "consistent": self.consistent,
            "test": {"statistic": json_number(self.statistic), "threshold": consistency_threshold(),
                     "alpha": TEST_ALPHA, "successes": self.successes_exact_median,
                     "rule": "Chernoff: P(n kl(k/n || P) >= log(2/alpha)) <= alpha"},
            "seed": self.seed,
            "successes": self.successes,
            "success_rate_exact_median": (self.successes_exact_median / self.n
                                          if self.n else None),
            "per_property_failures": self.per_property,
            "median_log_q": {k: _finite(v) for k, v in self.median.items()},
            "mismatches_vs_exact_radius": self.mismatches,
            "attack": "xbar = x (1 + max(||x|| - Delta, 0)) / (2 ||x||)",
            "demo": [{k: v for k, v in row.items() if k not in ("x", "xbar")}
                     for row in self.demo],
            "backend": self.backend,
            "chunk_rows": self.chunk_rows,
            "max_bytes": self.max_bytes,
            "saved": self.saved,
        }

    def format_text(self) -> str:
        lo, hi = self.ci99
        ok = "inside" if lo <= float(self.exact_probability) <= hi else "outside"
        lines = [
            f"Sampling: n={self.n} draws (x, y) ~ p at d={self.dimension} (seed {self.seed}, "
            f"{self.backend}, {self.chunk_rows} rows/chunk), {self.seconds:.2f} s",
            "  attack: xbar = x s(r)/r, s(r) = (1 + max(r - Delta, 0))/2, r = ||x||",
            f"  attack success (properties 1-5 on the vectors): {self.successes}/{self.n} = "
            f"{self.success_rate:.5f}, 99% Wilson [{lo:.5f}, {hi:.5f}]; exact "
            f"{fmt(self.exact_probability, 8)} ({ok})",
            "  failures per property: " + ", ".join(f"{k}: {v}" for k, v in
                                                    self.per_property.items())
            + f"; with the exact median: {self.successes_exact_median} successes",
            f"  consistency test (exit status): {self.test_text()}: "
            + ("passed" if self.consistent else "FAILED"),
            f"  median log q(X), X~p: empirical {self.median['empirical']:.6g}, exact "
            f"{self.median['exact']:.6g}; vector vs exact-radius mismatches: "
            + ", ".join(f"{k} {v}" for k, v in self.mismatches.items()),
        ]
        for key, label in (("q_p_joint", "KL(q||p)"), ("p_q_joint", "KL(p||q)")):
            e = self.kl[key]
            flag = "" if e.meaningful else "  [not meaningful]"
            lines.append(f"  {label} MC {e.estimate:.6g} +- {e.stderr:.2g} (exact "
                         f"{fmt(e.exact, 8)}, exact s.e. {e.exact_stderr:.2g}){flag}")
            if e.note:
                lines.append(f"    note: {e.note}")
        if self.demo:
            lines.append("  demo attacks (log q(xbar) vs the empirical median "
                         f"{self.median['empirical']:.6g}):")
            lines.append("       i y ||x||      ||xbar||   ||x-xbar||  p(0|x)     q(0|x)     "
                         "q(0|xbar)   log q(xbar)")
            for row in self.demo:
                lines.append(
                    f"  {row['index']:>6d} {row['y']} {row['r']:.8f} {row['rbar']:.8f} "
                    f"{row['dist']:.8f} "
                    f"{row['p0_x']:.8f} {row['q0_x']:.8f} {_sci(row['q0_xbar']):>10}  "
                    f"{row['log_q_xbar']:.6g}")
        if self.saved:
            lines.append(f"  saved {len(self.demo)} attacks (x, xbar, ...) to {self.saved}")
        return "\n".join(lines)


def _sci(v: float | str) -> str:
    return mpmath.nstr(mpmath.mpf(v), 4) if isinstance(v, str) else f"{v:.3e}"


def _finite(v: float) -> float | str | None:
    """JSON-safe float: None for nan, a string for +-inf."""
    if math.isnan(v):
        return None
    return str(v) if math.isinf(v) else v


#: Range of Delta where float64 norms decide the pieces of sampled vectors: below, the shell
#: 1 <= r < 1 + Delta is thinner than the rounding of a norm; above, squared norms overflow.
SAMPLING_DELTA_RANGE = (Fraction(1, 10**9), Fraction(10**100))


def check_sampling_range(Delta: Fraction) -> None:
    """Raise ``ValueError`` (one line) when the vectors cannot be checked in float64."""
    lo, hi = SAMPLING_DELTA_RANGE
    if not lo <= Delta < hi:
        raise ValueError("sampling decides pieces from float64 norms: it needs 1e-9 <= Delta "
                         "< 1e100 (or --samples 0)")


def run_sampling(params: Params, construction: Construction, exact_probability: Any, n: int,
                 seed: int, dimension: int | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 save: str | None = None, progress: bool = False, backend: str = "numpy",
                 device: str | None = None, demo: int = 5) -> SamplingResult:
    """Sample ``n`` points ``(x, y) ~ p``, attack each, check properties 1-5 on the vectors.

    ``dimension`` (default ``construction.d``) rebuilds the construction with the same
    ``lambda1, lambda2`` and recomputes the exact probability with the certificate. The
    success count gets a 99% Wilson interval; KL(p||q) is estimated on the same draws,
    KL(q||p) on ``n`` radial draws of ``q`` (the log-ratio depends on ``||x||`` only).
    ``save`` writes ``demo`` concrete attacks (vectors included) to an ``.npz`` file.
    """
    start = time.perf_counter()
    check_sampling_range(construction.Delta)
    con = construction
    if dimension is not None and dimension != con.d:
        con = Construction(dimension, con.Delta, con.lambda1, con.lambda2)
        exact_probability = build_certificate(params, dim=dimension,
                                              lambda1=con.lambda1).attack_probability
    d = con.d
    Delta = float(con.Delta)
    table = PieceTable.of(con, Fraction(params.delta))
    K = len(table.breaks)
    rows = chunk_rows(d, max_bytes, buffers=3)
    ss = np.random.SeedSequence(seed)
    ss_p, ss_q = ss.spawn(2)

    counts_x = np.zeros(K, dtype=np.int64)  # pieces of x (median of q(X))
    pass14_kb = np.zeros(K, dtype=np.int64)  # pieces of xbar where properties 1-4 hold
    all_kb = np.zeros(K, dtype=np.int64)
    fails = dict.fromkeys(PROPS[:4], 0)
    mism = {"piece_of_x": 0, "properties_1_4": 0}
    counts_p = np.zeros((2, len(RadialTable.of(con.p).pieces)), dtype=np.int64)
    # the sampler's piece k (of p's breakpoints) as an index of the table
    sampler_to_table = table.index(np.array([float(pc.lo) for pc in RadialTable.of(con.p).pieces]))
    demo_rows: list[dict[str, Any]] = []
    xbar_buf = np.empty((rows, d))
    diff_buf = np.empty((rows, d))
    for ch in sample(con.p, n, seed=ss_p, max_bytes=max_bytes, chunk=rows, buffers=3,
                     backend=backend, device=device):
        m = len(ch)
        x = ch.x
        xbar, rx, rb, dist, kx, kb, props = check_vectors(
            x, table, Delta, xbar_buf[:m], diff_buf[:m])
        p14 = props["1"] & props["2"] & props["3"] & props["4"]
        for key in fails:
            fails[key] += int(m - props[key].sum())
        counts_x += np.bincount(kx, minlength=K)
        all_kb += np.bincount(kb, minlength=K)
        pass14_kb += np.bincount(kb[p14], minlength=K)
        # the same decisions from the exact radius (sampler's piece label, s(r) by algebra)
        r_ex = ch.r
        s_ex = attack_radius(r_ex, Delta)
        kx_ex = sampler_to_table[ch.piece]
        kb_ex = table.index(s_ex)
        pr_ex = table.properties(kx_ex, kb_ex, np.abs(r_ex - s_ex), Delta)
        p14_ex = pr_ex["1"] & pr_ex["2"] & pr_ex["3"] & pr_ex["4"]
        mism["piece_of_x"] += int((kx != kx_ex).sum())
        mism["properties_1_4"] += int((p14 != p14_ex).sum())
        counts_p += _pair_counts(ch.y, ch.piece, counts_p.shape[1])
        if len(demo_rows) < demo:
            for i in np.nonzero(p14)[0][: demo - len(demo_rows)]:
                xi = x[i] if isinstance(x, np.ndarray) else x[i].cpu().numpy()
                xb = xbar[i] if isinstance(xbar, np.ndarray) else xbar[i].cpu().numpy()
                demo_rows.append({
                    "index": int(ch.start + i), "y": int(ch.y[i]), "r": float(rx[i]),
                    "rbar": float(rb[i]), "dist": float(dist[i]),
                    "p0_x": float(table.p0[kx[i]]), "q0_x": float(table.q0[kx[i]]),
                    "q0_xbar": json_number(table.q0_mp[kb[i]]),
                    "log_q_x": float(table.log_q[kx[i]]),
                    "log_q_xbar": float(table.log_q[kb[i]]),
                    "x": np.array(xi), "xbar": np.array(xb)})
        if progress:
            print(f"\r  sampled {ch.start + m}/{n}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)

    med_rank = lower_median_rank(counts_x, table.level_rank) if n else 0
    exact_rank = exact_median_rank(con, table)
    ok5 = table.level_rank >= med_rank
    ok5_exact = table.level_rank >= exact_rank
    successes = int(pass14_kb[ok5].sum())
    successes_exact = int(pass14_kb[ok5_exact].sum())
    fails["5"] = int(all_kb[~ok5].sum())
    log_med = float(table.log_q[table.level_rank == med_rank][0])
    log_med_exact = float(table.log_q[table.level_rank == exact_rank][0])
    demo_rows = [r for r in demo_rows if r["log_q_xbar"] >= log_med]

    kls = {"p_q_joint": kl_estimate(con, "p_q", counts_p, enclose(con.kl_p_q_joint))}
    counts_q = np.zeros((2, len(RadialTable.of(con.q).pieces)), dtype=np.int64)
    for ch in sample(con.q, n, seed=ss_q, vectors=False, max_bytes=max_bytes):
        counts_q += _pair_counts(ch.y, ch.piece, counts_q.shape[1])
    kls["q_p_joint"] = kl_estimate(con, "q_p", counts_q, enclose(con.kl_q_p_joint))

    res = SamplingResult(
        n=n, dimension=d, seed=seed, Delta=con.Delta, lambda1=con.lambda1,
        lambda2=con.lambda2, successes=successes, successes_exact_median=successes_exact,
        exact_probability=exact_probability, ci99=wilson_interval(successes, n),
        per_property=fails, median={"empirical": log_med, "exact": log_med_exact},
        kl=kls, mismatches=mism, demo=demo_rows, seconds=0.0, backend=backend,
        chunk_rows=rows, max_bytes=max_bytes)
    if save:
        res.saved = save_demo(res, params, save)
    res.seconds = time.perf_counter() - start
    return res


def _pair_counts(y: np.ndarray, k: np.ndarray, K: int) -> np.ndarray:
    """``counts[y, k]`` of label/piece pairs, shape ``[2, K]``."""
    flat = y.astype(np.intp) * K + k.astype(np.intp)
    return np.bincount(flat, minlength=2 * K).reshape(2, K)


def save_demo(res: SamplingResult, params: Params, path: str) -> str:
    """Write the demo attacks to ``path`` (``.npz``): the vectors ``x, xbar`` and, per attack,
    ``y, r, rbar, dist, p0_x, q0_x, q0_xbar, log_q_xbar`` plus the parameters (as exact
    strings) and the empirical/exact median of ``log q(X)``."""
    rows = res.demo
    d = res.dimension
    arrays: dict[str, Any] = {
        "x": np.array([r["x"] for r in rows]).reshape(len(rows), d),
        "xbar": np.array([r["xbar"] for r in rows]).reshape(len(rows), d),
    }
    for key in ("index", "y", "r", "rbar", "dist", "p0_x", "q0_x", "q0_xbar", "log_q_x",
                "log_q_xbar"):
        arrays[key] = np.array([r[key] for r in rows])
    arrays.update(
        eps=str(params.eps), delta=str(params.delta), Delta=str(res.Delta),
        lambda1=str(res.lambda1), lambda2=str(res.lambda2), dimension=d, seed=res.seed,
        log_q_median_empirical=res.median["empirical"], log_q_median_exact=res.median["exact"],
        attack="xbar = x * (1 + max(||x|| - Delta, 0)) / (2 ||x||)")
    atomic_write_bytes(path, lambda fh: np.savez(fh, **arrays))
    return path
