"""Exact samplers for the joint densities ``p(x, y)`` and ``q(x, y)`` of the counter-example.

Every class conditional is a mixture of uniform densities on annuli, hence piecewise uniform in
``r = ||x||`` over the common pieces ``[r_k, r_{k+1})`` (breakpoints ``0, 1, 1+Delta, 2, 3``). A
draw ``(x, y)`` is

1. ``y ~ m(y)`` (``u_0 < m(0)``);
2. the piece ``k ~ P_m(r_k <= ||X|| < r_{k+1} | y)`` (exact masses, ``u_1`` against their
   cumulative sums): the inverse CDF of the radial mixture evaluated piece by piece, so the piece
   label (ball / shell / outer annulus) is exact and never decided by a rounded radius;
3. the radius by the exact inverse CDF of the uniform law on the annulus ``a <= r <= b``,
   ``r^d = a^d + u_2 (b^d - a^d)``, computed in log space as

       log r = log b + (1/d) logaddexp(log u_2, log(1 - u_2) + d log(a/b)),

   with ``u_2`` in ``(0, 1]``, then clipped to ``[log a, log b]``: no ``b**d`` is formed, so
   ``d = 10**5`` and beyond neither overflows nor underflows (``(a/b)^d = 0`` is harmless);
4. the direction ``z / ||z||`` with ``z ~ N(0, I_d)`` (uniform on the sphere), ``x = r z/||z||``.

The radial stream (``u_0, u_1, u_2``, three doubles per draw) and the Gaussian stream come from
two children of ``numpy.random.SeedSequence(seed)``; both are consumed in order, so the output is
independent of the chunk size. The vectors are produced in chunks of at most
:func:`chunk_rows` rows so that the buffers stay below ``max_bytes`` (default 1 GiB) at any ``d``
and ``n``. With ``backend="torch"`` the Gaussian block is drawn by ``torch.randn`` (CPU or CUDA,
seeded ``torch.Generator``); the radial part is identical to the numpy backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mpmath
import numpy as np

from annulus.construction import JointModel
from annulus.radial import Piece, pieces

#: Default bound on the bytes held by the sampler's buffers.
DEFAULT_MAX_BYTES = 2**30
#: Preferred number of float64 entries per chunk (cache-friendly; the bound is a ceiling).
TARGET_ELEMENTS = 2**19
#: Bytes per row of per-sample scalars (labels, radii, norms, flags) kept next to the vectors.
ROW_OVERHEAD = 256


def chunk_rows(d: int, max_bytes: int = DEFAULT_MAX_BYTES, buffers: int = 1,
               target_elements: int = TARGET_ELEMENTS) -> int:
    """Rows per chunk: ``min(target, max_bytes // (buffers * 8 d + overhead))``, at least 1.

    ``buffers`` is the number of ``[rows, d]`` float64 arrays alive at once. Raises
    ``ValueError`` when even one row does not fit in ``max_bytes``.
    """
    per_row = buffers * 8 * d + ROW_OVERHEAD
    if per_row > max_bytes:
        raise ValueError(f"max_bytes={max_bytes} cannot hold one row: {buffers} vectors of "
                         f"dimension {d} need {per_row} bytes")
    return max(1, min(max_bytes // per_row, max(1, target_elements // d)))


@dataclass(frozen=True)
class RadialTable:
    """The radial law of ``m(x, y)`` piece by piece (float64, from the exact masses).

    ``pieces[k] = [lo_k, hi_k)``; ``cum[y]`` are the cumulative piece masses under ``m(x|y)``
    (last entry exactly 1); ``log_lo``/``log_hi`` the log radii of the piece ends.
    """

    d: int
    pieces: tuple[Piece, ...]
    prior0: float
    cum: np.ndarray  # [2, K]
    log_lo: np.ndarray  # [K]
    log_hi: np.ndarray  # [K]

    @classmethod
    def of(cls, model: JointModel) -> RadialTable:
        pcs = tuple(pieces(model.breakpoints))
        mp = mpmath.mp
        with mp.workdps(30):
            masses = np.zeros((2, len(pcs)))
            for y in (0, 1):
                for k, pc in enumerate(pcs):
                    lm = model.conditionals[y].log_mass(mp, pc)
                    masses[y, k] = 0.0 if lm is None else float(mp.exp(lm))
        cum = np.cumsum(masses, axis=1)
        cum /= cum[:, -1:]
        cum[:, -1] = 1.0
        log_lo = np.array([math.log(pc.lo) if pc.lo > 0 else -np.inf for pc in pcs])
        log_hi = np.array([math.log(pc.hi) for pc in pcs])
        return cls(model.d, pcs, float(model.prior[0]), cum, log_lo, log_hi)

    @property
    def breaks(self) -> np.ndarray:
        """``[lo_0, lo_1, ..., lo_{K-1}, hi_{K-1}]`` as float64."""
        return np.array([float(pc.lo) for pc in self.pieces] + [float(self.pieces[-1].hi)])

    def draw(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(y, piece, log_r)`` from uniforms ``u`` of shape ``[m, 3]`` in ``[0, 1)``."""
        y = (u[:, 0] >= self.prior0).astype(np.int8)
        k = np.empty(len(u), dtype=np.int8)
        for yy in (0, 1):
            sel = y == yy
            k[sel] = np.searchsorted(self.cum[yy], u[sel, 1], side="right")
        k = np.minimum(k, len(self.pieces) - 1)  # guard u == cum[-1] (not reachable: u < 1)
        log_lo, log_hi = self.log_lo[k], self.log_hi[k]
        u2 = 1.0 - u[:, 2]  # in (0, 1]
        with np.errstate(divide="ignore"):
            log_rho_d = self.d * (log_lo - log_hi)  # d log(a/b), -inf for a ball
            inner = np.logaddexp(np.log(u2), np.log1p(-u2) + log_rho_d)
        log_r = np.clip(log_hi + inner / self.d, log_lo, log_hi)
        return y, k, log_r


@dataclass
class Chunk:
    """``m`` consecutive draws: labels, exact pieces, log radii and (optionally) the vectors."""

    start: int
    y: np.ndarray  # int8 [m]
    piece: np.ndarray  # int8 [m], index into RadialTable.pieces
    log_r: np.ndarray  # float64 [m], log ||x||
    x: Any = None  # [m, d] float64 numpy array or torch tensor (None when vectors=False)

    @property
    def r(self) -> np.ndarray:
        return np.exp(self.log_r)

    def __len__(self) -> int:
        return len(self.y)


def _streams(seed: int | np.random.SeedSequence | None,
             rng: np.random.Generator | None) -> tuple[np.random.Generator, Any]:
    """(radial generator, Gaussian seed source): two children of ``SeedSequence(seed)``, or the
    given generator for both."""
    if rng is not None:
        return rng, rng
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    radial, gauss = ss.spawn(2)
    return np.random.default_rng(radial), gauss


def sample(model: JointModel, n: int, seed: int | np.random.SeedSequence | None = 0,
           rng: np.random.Generator | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
           chunk: int | None = None, vectors: bool = True, backend: str = "numpy",
           device: str | None = None, buffers: int = 1) -> Iterator[Chunk]:
    """Stream ``n`` exact draws ``(x, y) ~ model`` in chunks (see the module docstring).

    ``seed`` seeds two independent streams (radial, Gaussian) so that the draws do not depend
    on ``chunk``; passing ``rng`` uses that one generator for both (reproducible for a fixed
    chunk size only). ``vectors=False`` skips the directions (labels and radii only: exact for
    anything that depends on ``||x||``). ``buffers`` is the number of ``[rows, d]`` arrays the
    caller keeps alive per chunk (it enters the memory bound). Each yielded ``x`` reuses one
    buffer: copy it to keep it past the next iteration.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    table = RadialTable.of(model)
    d = model.d
    per_row = (buffers * 8 * d if vectors else 0) + ROW_OVERHEAD
    if chunk is None:
        rows = (chunk_rows(d, max_bytes, buffers) if vectors
                else max(1, min(max_bytes // ROW_OVERHEAD, 2**20)))
    else:
        rows = chunk
        if chunk < 1 or chunk * per_row > max_bytes:
            raise ValueError(f"chunk={chunk} rows of dimension {d} exceed max_bytes={max_bytes}")
    radial, gauss = _streams(seed, rng)
    draw_z = _gaussian_drawer(backend, gauss, device, d, rows) if vectors else None
    start = 0
    while start < n:
        m = min(rows, n - start)
        u = radial.random((m, 3))
        y, k, log_r = table.draw(u)
        x = None
        if draw_z is not None:
            x = draw_z(m)
            _to_radius(x, np.exp(log_r))
        yield Chunk(start, y, k, log_r, x)
        start += m


def _gaussian_drawer(backend: str, gauss: Any, device: str | None, d: int, rows: int) -> Any:
    """A function ``m -> z`` filling a reused ``[m, d]`` buffer with N(0, 1) draws.

    ``gauss`` is a ``SeedSequence`` (or a ``Generator``, used as is by numpy and as a source of
    a seed by torch)."""
    if backend == "numpy":
        if isinstance(gauss, np.random.SeedSequence):
            gauss = np.random.default_rng(gauss)
        buf = np.empty((rows, d))

        def draw_np(m: int) -> np.ndarray:
            out = buf[:m]
            gauss.standard_normal(out=out)
            return out

        return draw_np
    if backend == "torch":
        import torch

        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        gen = torch.Generator(device=dev)
        if isinstance(gauss, np.random.SeedSequence):
            seed_int = int(gauss.generate_state(1, np.uint64)[0] >> np.uint64(1))
        else:
            seed_int = int(gauss.integers(2**62))
        gen.manual_seed(seed_int)
        tbuf = torch.empty((rows, d), dtype=torch.float64, device=dev)

        def draw_torch(m: int) -> Any:
            out = tbuf[:m]
            torch.randn(out.shape, generator=gen, out=out, dtype=torch.float64, device=dev)
            return out

        return draw_torch
    raise ValueError(f"unknown backend {backend!r} (numpy or torch)")


def row_sq_norms(x: Any) -> np.ndarray:
    """``||x_i||^2`` for each row, as a float64 numpy array (numpy or torch input)."""
    if isinstance(x, np.ndarray):
        return np.einsum("ij,ij->i", x, x)
    return (x * x).sum(dim=-1).cpu().numpy()


def scale_rows(x: Any, s: np.ndarray, out: Any = None) -> Any:
    """``x_i * s_i`` row by row (in place when ``out is x``)."""
    if isinstance(x, np.ndarray):
        return np.multiply(x, s[:, None], out=out)
    import torch

    st = torch.as_tensor(s, dtype=x.dtype, device=x.device)[:, None]
    if out is None:
        return x * st
    return torch.mul(x, st, out=out)


def _to_radius(z: Any, r: np.ndarray) -> None:
    """``z <- r z / ||z||`` in place."""
    scale_rows(z, r / np.sqrt(row_sq_norms(z)), out=z)


def sample_arrays(model: JointModel, n: int, seed: int = 0,
                  **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """All ``n`` draws at once as ``(x [n, d], y [n])`` numpy arrays (small ``n d`` only)."""
    xs, ys = [], []
    for c in sample(model, n, seed=seed, **kwargs):
        xs.append(np.array(c.x if isinstance(c.x, np.ndarray) else c.x.cpu().numpy()))
        ys.append(c.y.copy())
    if not xs:
        return np.empty((0, model.d)), np.empty(0, dtype=np.int8)
    return np.concatenate(xs), np.concatenate(ys)


def sample_radii(model: JointModel, n: int, seed: int = 0,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, piece, log_r)`` for ``n`` draws, without directions (the same radial stream)."""
    ys, ks, lrs = [], [], []
    for c in sample(model, n, seed=seed, vectors=False, max_bytes=max_bytes):
        ys.append(c.y)
        ks.append(c.piece)
        lrs.append(c.log_r)
    if not ys:
        return np.empty(0, np.int8), np.empty(0, np.int8), np.empty(0)
    return np.concatenate(ys), np.concatenate(ks), np.concatenate(lrs)
