"""Confidence intervals for proportions, and log-mean-exp / log-sum-exp on numpy arrays.

Torch-free (numpy and the standard library), so the exact model (``annulus``), the generative
classifier (``flows``) and the figures share one implementation.
"""

from __future__ import annotations

import math

import numpy as np

#: Two-sided 99% normal quantile, z = Phi^{-1}(0.995).
Z99 = 2.5758293035489004
#: Two-sided 95% normal quantile, z = Phi^{-1}(0.975).
Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z99) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k/n`` (``z = 2.576``: 99%)."""
    if n == 0:
        return (0.0, 1.0)
    ph = k / n
    z2 = z * z
    centre = (ph + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(ph * (1 - ph) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def logmeanexp(a: np.ndarray, axis: int) -> np.ndarray:
    """``log mean exp`` along ``axis``, computed stably in float64."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = m + np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """``log sum exp`` along ``axis`` (float64)."""
    return logmeanexp(a, axis) + math.log(a.shape[axis])
