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
    Complement,
    Ctx,
    Number,
    Sci,
    as_sci,
    bernoulli_kl,
    compare,
    log_num,
    log_rational,
    log_sub_exp,
    log_sum_exp,
    log_unit_ball_volume,
    num,
)
from annulus.radial import Annulus, AnnulusMixture, Piece, common_pieces

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
        """``m(y|x) = 1 / (1 + m(1-y, x) / m(y, x))`` by Bayes' rule for ``||x||`` in the piece
        (exactly 0 or 1 where one class is absent; ``None`` off the support)."""
        top = self.log_joint_on(ctx, piece, y)
        other = self.log_joint_on(ctx, piece, 1 - y)
        if top is None:
            return None if other is None else ctx.mpf(0)
        if other is None:
            return ctx.mpf(1)
        return 1 / (1 + ctx.exp(other - top))

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

    @cached_property
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
        radii, table = self._piece_table
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


Weight = Fraction | Sci


def _pair(lam: Weight) -> tuple[Weight | Complement, Weight | Complement]:
    """The mixture weights ``(lambda, 1 - lambda)``, exact at any size of ``lambda``."""
    if isinstance(lam, Fraction) and lam in (0, 1):
        return lam, 1 - lam
    sci = as_sci(lam)
    return sci, Complement(sci)


@dataclass(frozen=True)
class Construction:
    """Eqs. (7)-(10) in dimension ``d`` with parameters ``Delta, lambda1, lambda2`` (exact)."""

    d: int
    Delta: Fraction
    lambda1: Weight
    lambda2: Weight

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"the dimension must be >= 1, got {self.d}")
        if self.Delta <= 0:
            raise ValueError(f"Delta must be > 0, got {self.Delta}")
        for name in ("lambda1", "lambda2"):
            if compare(getattr(self, name), Fraction(1)) > 0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
            if isinstance(getattr(self, name), Fraction) and getattr(self, name) < 0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    @property
    def inner(self) -> Piece:
        """The unit ball ``||x|| < 1`` (Fig. 2)."""
        return Piece(Fraction(0), Fraction(1))

    @cached_property
    def p(self) -> JointModel:
        """The data distribution, Eqs. (7)-(8)."""
        one = Fraction(1)
        w_in, w_shell = _pair(self.lambda1)
        c0 = AnnulusMixture(self.d, ((w_in, Annulus(Fraction(0), one)),
                                     (w_shell, Annulus(one, one + self.Delta))))
        return JointModel("p", (c0, self._class1()))

    @cached_property
    def q(self) -> JointModel:
        """The model, Eqs. (9)-(10)."""
        c0 = AnnulusMixture(self.d, ((Fraction(1), Annulus(Fraction(0), 1 + self.Delta)),))
        return JointModel("q", (c0, self._class1()))

    def _class1(self) -> AnnulusMixture:
        w_in, w_out = _pair(self.lambda2)
        return AnnulusMixture(self.d, ((w_in, Annulus(Fraction(0), Fraction(1))),
                                       (w_out, Annulus(Fraction(2), Fraction(3)))))

    @property
    def pieces(self) -> list[Piece]:
        """All pieces where p and q are constant."""
        return common_pieces(*self.p.conditionals, *self.q.conditionals)

    # exact KL divergences: q(x|0) and p(x|0) are uniform on the ball and on the shell, with
    # masses (b, 1-b) and (lambda1, 1-lambda1), b = (1+Delta)^-d; class 1 is the same under p
    # and q and p(y) = q(y), so each joint KL is half a Bernoulli KL (Eqs. 13-14, 16-17).
    def _log_b(self, ctx: Ctx) -> Number:
        """``log b = -d log(1 + Delta)``."""
        return -self._log_v(ctx)

    def kl_q_p_class0(self, ctx: Ctx = mpmath.mp) -> Number:
        """``KL(q(x|0) || p(x|0)) = kl(b || lambda1)`` (Eqs. 13-14); ``+inf`` if lambda1 is 0
        or 1 (then p(x|0) vanishes where q(x|0) does not)."""
        lam = self.lambda1
        if isinstance(lam, Fraction) and lam in (0, 1):
            return ctx.mpf("inf")
        log_b = self._log_b(ctx)
        b = ctx.exp(log_b)
        return bernoulli_kl(ctx, b, lam, log_b, log_num(ctx, lam), ctx.log1p(-b),
                            log_num(ctx, Complement(lam)))

    def kl_p_q_class0(self, ctx: Ctx = mpmath.mp) -> Number:
        """``KL(p(x|0) || q(x|0)) = kl(lambda1 || b)`` (Eqs. 16-17)."""
        lam = self.lambda1
        log_b = self._log_b(ctx)
        b = ctx.exp(log_b)
        if isinstance(lam, Fraction) and lam == 0:
            return -ctx.log1p(-b)
        if isinstance(lam, Fraction) and lam == 1:
            return -log_b
        return bernoulli_kl(ctx, lam, b, log_num(ctx, lam), log_b,
                            log_num(ctx, Complement(lam)), ctx.log1p(-b))

    def kl_q_p_joint(self, ctx: Ctx = mpmath.mp) -> Number:
        """``KL(q(x,y) || p(x,y)) = 1/2 KL(q(x|0) || p(x|0))`` (chain rule)."""
        return self.kl_q_p_class0(ctx) / 2

    def kl_p_q_joint(self, ctx: Ctx = mpmath.mp) -> Number:
        """``KL(p(x,y) || q(x,y)) = 1/2 KL(p(x|0) || q(x|0))`` (chain rule)."""
        return self.kl_p_q_class0(ctx) / 2

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
        return inv_v * (log_num(ctx, self.lambda1) + t - ctx.log1p(-l1)) \
            - (1 - inv_v) * ctx.log1p(-inv_v)

    def lemma3_gap(self, ctx: Ctx = mpmath.mp) -> Number:
        """``l1 d log(1+Delta) - KL(p(x|0)||q(x|0)) = H(l1) + (1 - l1) log(1 - V^-1)``
        with the binary entropy ``H(l1) = -l1 log l1 - (1-l1) log(1-l1)``."""
        l1 = num(ctx, self.lambda1)
        inv_v = ctx.exp(-self._log_v(ctx))
        entropy = -l1 * log_num(ctx, self.lambda1) - (1 - l1) * ctx.log1p(-l1)
        return entropy + (1 - l1) * ctx.log1p(-inv_v)

    # Lemma 1 closed forms (11)-(12), for comparison with Bayes' rule on the pieces
    def lemma1_p0(self, ctx: Ctx = mpmath.mp) -> Number:
        """Eq. (11): ``p(0|x) = lambda1 / (lambda1 + lambda2)`` for ``||x|| < 1``."""
        l1, l2 = num(ctx, self.lambda1), num(ctx, self.lambda2)
        return l1 / (l1 + l2)

    def lemma1_q0(self, ctx: Ctx = mpmath.mp) -> Number:
        """Eq. (12): ``q(0|x) = 1 / (1 + lambda2 (1 + Delta)^d)`` for ``||x|| < 1``."""
        if isinstance(self.lambda2, Fraction) and self.lambda2 == 0:
            return ctx.mpf(1)
        return 1 / (1 + ctx.exp(log_num(ctx, self.lambda2) + self._log_v(ctx)))

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
            terms.append(log_jump + (self.d - 1) * log_rational(ctx, radii[k]))
        return ctx.log(ctx.mpf(self.d)) + log_sum_exp(ctx, terms)

    def log_classifier_variation(self, ctx: Ctx = mpmath.mp) -> Number:
        """``log int |grad q(0|x)| dx``: the total variation of the model's classifier.

        ``q(0|.)`` is constant on each piece (taken as 0 where ``q(x) = 0``: no class-0 mass), so
        its gradient lives on the spheres where it jumps: ``sum_k |jump_k| d C_d r_k^(d-1)``
        (property 7, second reading). It vanishes as ``d`` grows (``C_d -> 0`` faster than any
        exponential)."""
        pcs = self.pieces
        zero = ctx.mpf(0)
        post = [self.q.posterior_on(ctx, pc, 0) for pc in pcs] + [None]
        post = [zero if v is None else v for v in post]
        terms = []
        for k in range(1, len(post)):
            below, above = post[k - 1], post[k]
            if below is above or (below == above and (below == 0 or below == 1)):
                continue
            radius = pcs[k].lo if k < len(pcs) else pcs[-1].hi
            terms.append(ctx.log(abs(above - below)) + (self.d - 1) * log_rational(ctx, radius))
        if not terms:
            return ctx.mpf("-inf")
        return (ctx.log(ctx.mpf(self.d)) + log_unit_ball_volume(ctx, self.d)
                + log_sum_exp(ctx, terms))

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
