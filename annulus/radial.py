"""Radial distributions on R^d: mixtures of uniform densities on balls and annuli.

``U(a, b)`` is the uniform density on ``R^d(a, b) = {x : a <= ||x|| <= b}``; its value there is
``1 / (C_d (b^d - a^d))`` with ``C_d`` the volume of the unit ball (Lemma 1's proof). A mixture
``sum_k w_k U(a_k, b_k)`` is piecewise constant in ``r = ||x||``; every exact quantity below
(masses, posteriors, levels) is a finite sum over the pieces between consecutive breakpoints,
evaluated in log space in any mpmath context. Weights are exact (:class:`annulus.numeric.Sci`
and :class:`~annulus.numeric.Complement` keep ``lambda`` and ``1 - lambda`` exact at any size).

Densities are carried in units of ``1/C_d`` (``g = C_d * density``) because ``C_d`` cancels from
every ratio; :meth:`AnnulusMixture.log_prob_radius` adds ``-log C_d`` back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

import mpmath

from annulus.numeric import (
    Complement,
    Ctx,
    Exact,
    Number,
    log_annulus_volume_ratio,
    log_num,
    log_sum_exp,
    log_unit_ball_volume,
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


def _positive(w: Exact) -> bool:
    return not isinstance(w, Fraction) or w > 0


def _sums_to_one(weights: Sequence[Exact]) -> bool:
    """Exactly: Fractions in [0, 1] summing to 1, or one pair ``(x, Complement(x))``."""
    if all(isinstance(w, Fraction) for w in weights):
        return all(w >= 0 for w in weights) and sum(weights) == 1
    return (len(weights) == 2 and isinstance(weights[1], Complement)
            and weights[1].x == weights[0])


@dataclass(frozen=True)
class AnnulusMixture:
    """The radial density ``sum_k w_k U(a_k, b_k)`` on ``R^d`` (exact weights summing to 1)."""

    d: int
    components: tuple[tuple[Exact, Annulus], ...]

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"the dimension must be >= 1, got {self.d}")
        weights = [w for w, _ in self.components]
        if not _sums_to_one(weights):
            raise ValueError(f"mixture weights must be >= 0 and sum to 1, got {weights}")

    @property
    def breakpoints(self) -> tuple[Fraction, ...]:
        """Sorted radii where the density may jump."""
        return tuple(sorted({r for _, ann in self.components for r in (ann.a, ann.b)}))

    def _log_terms(self, ctx: Ctx, inside: Callable[[Annulus], bool]) -> list[Number]:
        return [log_num(ctx, w) - log_annulus_volume_ratio(ctx, ann.a, ann.b, self.d)
                for w, ann in self.components if _positive(w) and inside(ann)]

    def log_g(self, ctx: Ctx, piece: Piece) -> Number | None:
        """``log(C_d * density)`` on the piece, ``None`` outside the support."""
        terms = self._log_terms(ctx, lambda ann: ann.covers(piece.lo, piece.hi))
        return log_sum_exp(ctx, terms) if terms else None

    def log_mass(self, ctx: Ctx, piece: Piece) -> Number | None:
        """``log P(lo < ||X|| < hi)`` for a piece between breakpoints (``None`` if zero)."""
        log_g = self.log_g(ctx, piece)
        return None if log_g is None else log_g + piece.log_volume(ctx, self.d)

    def log_prob_radius(self, r: Fraction | float | str, ctx: Ctx = mpmath.mp) -> Number:
        """``log`` of the density at any ``x`` with ``||x|| = r`` (closed annuli, as Eq. 7-10)."""
        r = Fraction(r)
        terms = self._log_terms(ctx, lambda ann: ann.a <= r <= ann.b)
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
