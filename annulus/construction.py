"""The counter-example of Appendix D: the data ``p(x, y)`` and the model ``q(x, y)`` (Eqs. 7-10).

    p(x|0) = lambda1 U(0, 1) + (1 - lambda1) U(1, 1 + Delta)      (7)
    p(x|1) = lambda2 U(0, 1) + (1 - lambda2) U(2, 3)              (8)
    q(x|0) = U(0, 1 + Delta)                                      (9)
    q(x|1) = lambda2 U(0, 1) + (1 - lambda2) U(2, 3)              (10)

with ``p(y) = q(y) = 1/2``. :class:`JointModel` gives a torch.distributions-like interface
(``log_prob``, ``posterior``) for both; every value is exact (mpmath, log space).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import mpmath
import numpy as np

from annulus.numeric import (
    Ctx,
    Number,
    log_sub_exp,
    log_sum_exp,
    log_unit_ball_volume,
    num,
)
from annulus.radial import Annulus, AnnulusMixture, Piece, common_pieces, kl_divergence

HALF = Fraction(1, 2)


@dataclass(frozen=True)
class JointModel:
    """A two-class joint density ``m(x, y) = m(y) m(x|y)`` with radial class conditionals."""

    name: str
    conditionals: tuple[AnnulusMixture, AnnulusMixture]
    prior: tuple[Fraction, Fraction] = (HALF, HALF)

    @property
    def d(self) -> int:
        return self.conditionals[0].d

    @property
    def breakpoints(self) -> tuple[Fraction, ...]:
        return tuple(sorted({b for m in self.conditionals for b in m.breakpoints}))

    def log_joint_on(self, ctx: Ctx, piece: Piece, y: int) -> Number | None:
        """``log(C_d m(x, y))`` for ``||x||`` inside the piece (``None`` where it is zero)."""
        log_g = self.conditionals[y].log_g(ctx, piece)
        return None if log_g is None else log_g + ctx.log(num(ctx, self.prior[y]))

    def log_marginal_on(self, ctx: Ctx, piece: Piece) -> Number | None:
        """``log(C_d m(x))`` on the piece, ``m(x) = sum_y m(y) m(x|y)``."""
        terms = [t for y in (0, 1) if (t := self.log_joint_on(ctx, piece, y)) is not None]
        return log_sum_exp(ctx, terms) if terms else None

    def posterior_on(self, ctx: Ctx, piece: Piece, y: int = 0) -> Number | None:
        """``m(y|x)`` by Bayes' rule for ``||x||`` in the piece (``None`` off the support)."""
        top = self.log_joint_on(ctx, piece, y)
        marg = self.log_marginal_on(ctx, piece)
        if marg is None:
            return None
        return ctx.mpf(0) if top is None else ctx.exp(top - marg)

    def log_mass_on(self, ctx: Ctx, piece: Piece) -> Number | None:
        """``log P_m(lo < ||X|| < hi)`` under the marginal."""
        log_g = self.log_marginal_on(ctx, piece)
        return None if log_g is None else log_g + piece.log_volume(ctx, self.d)

    # -- distribution-like API on points (float64 results, exact radii) -------------------
    def log_prob_radius(self, r: Fraction | str | float, y: int | None = None,
                        ctx: Ctx = mpmath.mp) -> Number:
        """``log m(x, y)`` (or ``log m(x)`` when ``y`` is None) at any ``x`` with ``||x|| = r``."""
        if y is not None:
            return self.conditionals[y].log_prob_radius(r, ctx) + ctx.log(num(ctx, self.prior[y]))
        terms = [self.log_prob_radius(r, yy, ctx) for yy in (0, 1)]
        finite = [t for t in terms if t != ctx.mpf("-inf")]
        return log_sum_exp(ctx, finite) if finite else ctx.mpf("-inf")

    def _piece_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Breakpoints and per-piece ``log m(x, y)`` (float64, ``-inf`` off support)."""
        radii = sorted(set(self.breakpoints) | {Fraction(0)})
        table = np.full((len(radii), 2), -np.inf)  # last row: r > max radius

        log_cd = log_unit_ball_volume(mpmath.mp, self.d)
        for i, piece in enumerate(common_pieces(*self.conditionals)):
            for y in (0, 1):
                t = self.log_joint_on(mpmath.mp, piece, y)
                if t is not None:
                    table[i, y] = float(t - log_cd)
        return np.array([float(r) for r in radii]), table

    def log_prob_norms(self, norms: np.ndarray, y: np.ndarray | int | None = None) -> np.ndarray:
        """Vectorised ``log m(x, y)`` (or ``log m(x)``) from radii ``||x||`` (float64).

        Values on a breakpoint take the piece above it (a null set under every density).
        """
        cached = self.__dict__.get("_table")
        if cached is None:
            cached = self._piece_table()
            object.__setattr__(self, "_table", cached)
        radii, table = cached
        idx = np.searchsorted(radii, np.asarray(norms, dtype=float), side="right") - 1
        rows = table[np.clip(idx, 0, len(radii) - 1)]
        if y is None:
            return np.logaddexp(rows[..., 0], rows[..., 1])
        y_arr = np.broadcast_to(np.asarray(y), rows.shape[:-1])
        return np.take_along_axis(rows, y_arr[..., None].astype(int), axis=-1)[..., 0]

    def log_prob(self, x: np.ndarray, y: np.ndarray | int | None = None) -> np.ndarray:
        """``log m(x, y)`` (or ``log m(x)``) for points ``x`` of shape ``[..., d]`` (float64)."""
        x = np.asarray(x, dtype=float)
        if x.shape[-1] != self.d:
            raise ValueError(f"points must have last dimension d={self.d}, got {x.shape}")
        return self.log_prob_norms(np.linalg.norm(x, axis=-1), y)

    def posterior(self, x: np.ndarray, y: int = 0) -> np.ndarray:
        """``m(y|x)`` for points ``x`` of shape ``[..., d]``."""
        return np.exp(self.log_prob(x, y) - self.log_prob(x))


def kl_joint(p: JointModel, q: JointModel, ctx: Ctx = mpmath.mp) -> Number:
    """``KL(p(x,y) || q(x,y)) = KL(p(y)||q(y)) + sum_y p(y) KL(p(x|y) || q(x|y))`` (chain rule)."""
    total = ctx.mpf(0)
    for y in (0, 1):
        py, qy = num(ctx, p.prior[y]), num(ctx, q.prior[y])
        total += py * (ctx.log(py) - ctx.log(qy))
        total += py * kl_divergence(p.conditionals[y], q.conditionals[y], ctx)
    return total


@dataclass(frozen=True)
class Construction:
    """Eqs. (7)-(10) in dimension ``d`` with parameters ``Delta, lambda1, lambda2`` (exact)."""

    d: int
    Delta: Fraction
    lambda1: Fraction
    lambda2: Fraction

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"the dimension must be >= 1, got {self.d}")
        if self.Delta <= 0:
            raise ValueError(f"Delta must be > 0, got {self.Delta}")
        for name in ("lambda1", "lambda2"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    @classmethod
    def proof_choice(cls, d: int, Delta: Fraction, lambda1: Fraction,
                     delta: Fraction) -> Construction:
        """The proof's choice ``lambda2 = delta / (1 - delta) * lambda1`` (Prop. 1)."""
        return cls(d, Delta, lambda1, delta / (1 - delta) * lambda1)

    # regions of Fig. 2
    @property
    def inner(self) -> Piece:
        """The unit ball ``||x|| < 1``."""
        return Piece(Fraction(0), Fraction(1))

    @property
    def shell(self) -> Piece:
        """The thin annulus ``1 < ||x|| < 1 + Delta`` where the attack starts."""
        return Piece(Fraction(1), 1 + self.Delta)

    @cached_property
    def p(self) -> JointModel:
        """The data distribution, Eqs. (7)-(8)."""
        one = Fraction(1)
        c0 = AnnulusMixture(self.d, ((self.lambda1, Annulus(Fraction(0), one)),
                                     (1 - self.lambda1, Annulus(one, one + self.Delta))))
        return JointModel("p", (c0, self._class1()))

    @cached_property
    def q(self) -> JointModel:
        """The model, Eqs. (9)-(10)."""
        c0 = AnnulusMixture(self.d, ((Fraction(1), Annulus(Fraction(0), 1 + self.Delta)),))
        return JointModel("q", (c0, self._class1()))

    def _class1(self) -> AnnulusMixture:
        return AnnulusMixture(self.d, ((self.lambda2, Annulus(Fraction(0), Fraction(1))),
                                       (1 - self.lambda2, Annulus(Fraction(2), Fraction(3)))))

    @property
    def pieces(self) -> list[Piece]:
        """All pieces where p and q are constant."""
        return common_pieces(*self.p.conditionals, *self.q.conditionals)

    # exact KL divergences
    def kl_q_p_joint(self, ctx: Ctx = mpmath.mp) -> Number:
        return kl_joint(self.q, self.p, ctx)

    def kl_p_q_joint(self, ctx: Ctx = mpmath.mp) -> Number:
        return kl_joint(self.p, self.q, ctx)

    def kl_q_p_class0(self, ctx: Ctx = mpmath.mp) -> Number:
        return kl_divergence(self.q.conditionals[0], self.p.conditionals[0], ctx)

    def kl_p_q_class0(self, ctx: Ctx = mpmath.mp) -> Number:
        return kl_divergence(self.p.conditionals[0], self.q.conditionals[0], ctx)

    # the lemma bounds
    def lemma2_bound(self, ctx: Ctx = mpmath.mp) -> Number:
        """Lemma 2, Eq. (15): ``KL(q(x|0) || p(x|0)) <= log(1 / (1 - lambda1))``."""
        return -ctx.log1p(-num(ctx, self.lambda1))

    def lemma3_bound(self, ctx: Ctx = mpmath.mp) -> Number:
        """Lemma 3, Eq. (17): ``KL(p(x|0) || q(x|0)) <= lambda1 * d * log(1 + Delta)``."""
        return num(ctx, self.lambda1) * self.d * ctx.log1p(num(ctx, self.Delta))

    def _log_v(self, ctx: Ctx) -> Number:
        return self.d * ctx.log1p(num(ctx, self.Delta))

    def lemma2_gap(self, ctx: Ctx = mpmath.mp) -> Number:
        """``log(1/(1-l1)) - KL(q(x|0)||p(x|0))`` in a form without cancellation:
        ``V^-1 [log(l1 V) - log(1-l1)] - (1 - V^-1) log(1 - V^-1)``, ``V = (1+Delta)^d``.

        Every term is >= 0 when ``l1 V >= 1``, so the sign is certified at modest precision
        even when the gap is ~``V^-1`` (e.g. 10^-41000 at d = 10^6). The identity with the
        evaluator's KL is checked symbolically in the tests.
        """
        l1 = num(ctx, self.lambda1)
        t = self._log_v(ctx)
        inv_v = ctx.exp(-t)
        return inv_v * (ctx.log(l1) + t - ctx.log1p(-l1)) - (1 - inv_v) * ctx.log1p(-inv_v)

    def lemma3_gap(self, ctx: Ctx = mpmath.mp) -> Number:
        """``l1 d log(1+Delta) - KL(p(x|0)||q(x|0)) = H(l1) + (1 - l1) log(1 - V^-1)``
        with the binary entropy ``H(l1) = -l1 log l1 - (1-l1) log(1-l1)``."""
        l1 = num(ctx, self.lambda1)
        inv_v = ctx.exp(-self._log_v(ctx))
        entropy = -l1 * ctx.log(l1) - (1 - l1) * ctx.log1p(-l1)
        return entropy + (1 - l1) * ctx.log1p(-inv_v)

    # Lemma 1 closed forms (11)-(12), for comparison with Bayes' rule on the pieces
    def lemma1_p0(self, ctx: Ctx = mpmath.mp) -> Number:
        """Eq. (11): ``p(0|x) = lambda1 / (lambda1 + lambda2)`` for ``||x|| < 1``."""
        l1, l2 = num(ctx, self.lambda1), num(ctx, self.lambda2)
        return l1 / (l1 + l2)

    def lemma1_q0(self, ctx: Ctx = mpmath.mp) -> Number:
        """Eq. (12): ``q(0|x) = 1 / (1 + lambda2 (1 + Delta)^d)`` for ``||x|| < 1``."""
        log_v = self.d * ctx.log1p(num(ctx, self.Delta))
        l2 = num(ctx, self.lambda2)
        if self.lambda2 == 0:
            return ctx.mpf(1)
        return 1 / (1 + ctx.exp(ctx.log(l2) + log_v))

    def log_total_variation(self, ctx: Ctx = mpmath.mp) -> Number:
        """``log TV(p)``, the total variation ``int |grad p(x)| dx`` of the data density.

        ``p`` is radial and piecewise constant, so its distributional gradient lives on the
        spheres ``||x|| = r_k`` where it jumps: ``TV = sum_k |jump_k| * S_{d-1} r_k^{d-1}`` with
        the sphere area ``S_{d-1} = d C_d``. In units of ``1/C_d``:
        ``TV = d * sum_k |g(r_k+) - g(r_k-)| r_k^{d-1}``.
        """
        radii = sorted(set(self.p.breakpoints) | {Fraction(0)})
        pcs = common_pieces(*self.p.conditionals)
        log_g = [self.p.log_marginal_on(ctx, pc) for pc in pcs] + [None]
        with mpmath.mp.workdps(60):  # only to order the two sides of each jump
            order = [self.p.log_marginal_on(mpmath.mp, pc) for pc in pcs] + [None]
        terms = []
        for k in range(1, len(radii)):
            below, above = log_g[k - 1], log_g[k]
            if below is None and above is None:
                continue
            if below is None or above is None:
                log_jump = below if above is None else above
            else:
                if order[k - 1] == order[k]:
                    continue
                hi, lo = (below, above) if order[k - 1] > order[k] else (above, below)
                log_jump = log_sub_exp(ctx, hi, lo)
            terms.append(log_jump + (self.d - 1) * ctx.log(num(ctx, radii[k])))
        return ctx.log(ctx.mpf(self.d)) + log_sum_exp(ctx, terms)

    def log_ball_probability_bound(self, ctx: Ctx = mpmath.mp) -> Number:
        """``log`` of a bound on ``sup_c P_p(||X - c|| < Delta)`` (Property 6).

        ``P(B(c, Delta)) <= max_x p(x) * vol(B(Delta)) = max_k g_k * Delta^d`` (units of C_d).
        """
        gs = [g for pc in common_pieces(*self.p.conditionals)
              if (g := self.p.log_marginal_on(ctx, pc)) is not None]
        top = gs[0]
        for g in gs[1:]:
            if g > top:
                top = g
        return top + self.d * ctx.log(num(ctx, self.Delta))
