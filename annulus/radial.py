"""Radial distributions on R^d: mixtures of uniform densities on balls and annuli.

``U(a, b)`` is the uniform density on ``R^d(a, b) = {x : a <= ||x|| <= b}``; its value there is
``1 / (C_d (b^d - a^d))`` with ``C_d`` the volume of the unit ball (Lemma 1's proof). A mixture
``sum_k w_k U(a_k, b_k)`` is piecewise constant in ``r = ||x||``; every exact quantity below
(masses, KL divergences, posteriors) is a finite sum over the pieces between consecutive
breakpoints, evaluated in log space in any mpmath context.

Densities are carried in units of ``1/C_d`` (``g = C_d * density``) because ``C_d`` cancels from
every ratio; :meth:`AnnulusMixture.log_prob_radius` adds ``-log C_d`` back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import mpmath

from annulus.numeric import (
    Ctx,
    Number,
    log_annulus_volume_ratio,
    log_sum_exp,
    log_unit_ball_volume,
    num,
)


@dataclass(frozen=True)
class Annulus:
    """The closed annulus ``a <= ||x|| <= b`` (a ball when ``a == 0``)."""

    a: Fraction
    b: Fraction

    def __post_init__(self) -> None:
        if not (0 <= self.a < self.b):
            raise ValueError(f"an annulus needs 0 <= a < b, got a={self.a}, b={self.b}")

    def covers(self, lo: Fraction, hi: Fraction) -> bool:
        """Whether the radial interval ``[lo, hi]`` lies inside ``[a, b]``."""
        return self.a <= lo and hi <= self.b


@dataclass(frozen=True)
class Piece:
    """A radial interval ``lo < r < hi`` on which every density considered is constant."""

    lo: Fraction
    hi: Fraction

    def log_volume(self, ctx: Ctx, d: int) -> Number:
        """``log(hi^d - lo^d)``: the piece's volume in units of ``C_d``."""
        return log_annulus_volume_ratio(ctx, self.lo, self.hi, d)


@dataclass(frozen=True)
class AnnulusMixture:
    """The radial density ``sum_k w_k U(a_k, b_k)`` on ``R^d`` (weights sum to 1)."""

    d: int
    components: tuple[tuple[Fraction, Annulus], ...]

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"the dimension must be >= 1, got {self.d}")
        weights = [w for w, _ in self.components]
        if any(w < 0 for w in weights) or sum(weights) != 1:
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {weights}")

    @property
    def breakpoints(self) -> tuple[Fraction, ...]:
        """Sorted radii where the density may jump."""
        return tuple(sorted({r for _, ann in self.components for r in (ann.a, ann.b)}))

    def supports(self, piece: Piece) -> bool:
        """Whether the density is positive on the piece."""
        return any(w > 0 and ann.covers(piece.lo, piece.hi) for w, ann in self.components)

    def log_g(self, ctx: Ctx, piece: Piece) -> Number | None:
        """``log(C_d * density)`` on the piece, ``None`` outside the support."""
        terms = [
            ctx.log(num(ctx, w)) - log_annulus_volume_ratio(ctx, ann.a, ann.b, self.d)
            for w, ann in self.components
            if w > 0 and ann.covers(piece.lo, piece.hi)
        ]
        return log_sum_exp(ctx, terms) if terms else None

    def log_mass(self, ctx: Ctx, piece: Piece) -> Number | None:
        """``log P(lo < ||X|| < hi)`` for a piece between breakpoints (``None`` if zero)."""
        log_g = self.log_g(ctx, piece)
        return None if log_g is None else log_g + piece.log_volume(ctx, self.d)

    def log_prob_radius(self, r: Fraction | float | str, ctx: Ctx = mpmath.mp) -> Number:
        """``log`` of the density at any ``x`` with ``||x|| = r`` (closed annuli, as Eq. 7-10)."""
        r = Fraction(r)
        terms = [
            ctx.log(num(ctx, w)) - log_annulus_volume_ratio(ctx, ann.a, ann.b, self.d)
            for w, ann in self.components
            if w > 0 and ann.a <= r <= ann.b
        ]
        if not terms:
            return ctx.mpf("-inf")
        return log_sum_exp(ctx, terms) - log_unit_ball_volume(ctx, self.d)


def pieces(breaks: Sequence[Fraction]) -> Iterator[Piece]:
    """Consecutive pieces between sorted breakpoints (starting at 0)."""
    radii = sorted(set(breaks) | {Fraction(0)})
    for lo, hi in zip(radii[:-1], radii[1:], strict=True):
        yield Piece(lo, hi)


def common_pieces(*mixtures: AnnulusMixture) -> list[Piece]:
    """The pieces on which all the given mixtures are simultaneously constant."""
    return list(pieces([b for m in mixtures for b in m.breakpoints]))


def kl_divergence(p: AnnulusMixture, q: AnnulusMixture, ctx: Ctx = mpmath.mp) -> Number:
    """Exact ``KL(p || q) = sum_pieces P(piece) * log(p / q)``; ``+inf`` if ``p`` is not << ``q``.

    On each piece both densities are constant, so the integral of ``p log(p/q)`` over the piece
    is its ``p``-mass times the log-ratio of the constants (this is Eqs. 13-17 of the paper
    written for any mixture of annuli).
    """
    if p.d != q.d:
        raise ValueError("both mixtures must live in the same dimension")
    total = ctx.mpf(0)
    for piece in common_pieces(p, q):
        log_gp = p.log_g(ctx, piece)
        if log_gp is None:
            continue
        log_gq = q.log_g(ctx, piece)
        if log_gq is None:
            return ctx.mpf("inf")
        total += ctx.exp(log_gp + piece.log_volume(ctx, p.d)) * (log_gp - log_gq)
    return total
