"""The 8-bit pixel grid: the one definition of bins, dequantisation, rounding and bits/dim.

Every other module (preprocessing, training, scoring, baselines, experiments) calls these
functions; none re-derives a constant or a formula.

**Grid.** An 8-bit pixel value ``k`` in {0..255} owns the bin

    B(k) = [k/256 - 0.5, (k+1)/256 - 0.5)          (width 1/256, the bins tile [-0.5, 0.5))

* :func:`bin_point`: the point at fraction ``u`` of the bin, ``x = (k + u)/256 - 0.5``.
* :func:`dequantize` (training, scoring): ``x = (k + u)/256 - 0.5`` with ``u ~ U[0, 1)^D``, so
  the model density is a density of continuous inputs on [-0.5, 0.5]^D.
* :func:`bin_centre` / :func:`to_model_input`: ``x = (k + 0.5)/256 - 0.5``, the centre (and the
  mean of the dequantised value): k=0 -> -0.498046875, k=255 -> 0.498046875.
* :func:`to_grid`: rounding back to the grid, ``k = clamp(floor(256 (x + 0.5)), 0, 255)`` (the
  pixel whose bin contains ``x``; outside [-0.5, 0.5) the nearest end pixel). Bin centres are
  fixed points, and so is every dequantised point with ``u <= 1 - 2^-16``. In float32 (the model
  inputs; ``to_grid`` also rounds in float32) the rounding of ``(k + u)/256 - 0.5`` can put a
  draw ``u >= 1 - 2^-17`` (about 8 in a million draws of ``torch.rand``) on the upper edge,
  which belongs to bin ``k + 1``.
* :func:`grid_l2`: L2 distance of two images on the [0, 1] pixel scale, ``||k' - k||_2 / 256``.
* Pixel values ``v`` on the 0..255 scale (blends, interpolants) become an image by rounding to
  the nearest integer, clamped to 0..255 (:func:`quantize`). :func:`intensity` is ``k / 255`` in
  [0, 1]: the scale of image plots and of BG-MNIST's compositing, not a model input.

**Bits/dim.** The map ``v -> v/256 - 0.5`` from the continuous pixel value ``v = k + u`` in
[0, 256) has log|det J| = -D log 256 (:func:`pixel_scale_logdet`). A bin has volume ``256^-D``,
so a density ``p`` of ``x`` gives ``log P(k) ~= log p(x) - D log 256`` (exact when ``p`` is
constant on the bin, a lower bound in expectation over ``u``), and on D dimensions

    bits/dim = -(log p(x) - D log 256) / (D log 2)      (:func:`bits_per_dim`)
    log p(x) = D log 256 - bits/dim * D log 2           (:func:`log_px_at_bpd`, the inverse)

A uniform density on [-0.5, 0.5]^D (``log p = 0``) is exactly 8 bits/dim.

**Fixed noise.** :func:`fixed_uniform` is the one fixed-noise mechanism: ``count`` consecutive
draws ``U[0, 1)^shape`` of a ``torch.Generator`` seeded with ``seed``. The model's eval-mode
padding noise (:class:`flows.model.GlowClassifier`, seed ``EVAL_NOISE_SEED``) is its first draw;
the fixed-draw forward of the experiments (:class:`flows.experiments.scored_runs.FixedDraw`) takes
``(u0, e0)`` = its first two draws for its own seed.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

from flows.preprocess import pad_to_32

NUM_BINS = 256
"""Bins of an 8-bit pixel (values 0..255); the bin width in model space is ``1/NUM_BINS``."""

MAX_VALUE = NUM_BINS - 1
"""The largest 8-bit pixel value, 255."""

LOG_NUM_BINS = math.log(NUM_BINS)

T = TypeVar("T", torch.Tensor, np.ndarray, float)


# -- the grid -------------------------------------------------------------------------------------
def bin_point(k: T, u: T | float) -> T:
    """``(k + u)/256 - 0.5``: the point at fraction ``u`` in [0, 1) of pixel ``k``'s bin.

    Plain arithmetic (tensors, arrays or floats); cast integer tensors to the wanted float type
    first (``k.float()``) where the dtype matters.
    """
    return (k + u) / NUM_BINS - 0.5


def bin_centre(k: torch.Tensor) -> torch.Tensor:
    """uint8 image -> float32 bin centres ``(k + 0.5)/256 - 0.5``."""
    return bin_point(k.float(), 0.5)


def grid_index(x: torch.Tensor) -> torch.Tensor:
    """``clamp(floor(256 (x + 0.5)), 0, 255)`` in the dtype of ``x`` (differentiable input kept)."""
    return torch.floor((x + 0.5) * NUM_BINS).clamp(0, NUM_BINS - 1)


def to_grid(x: torch.Tensor) -> torch.Tensor:
    """Model-space ``x`` (float, [-0.5, 0.5]) -> the uint8 image whose bin contains ``x``.

    Computed in float32 (``x`` is detached and cast first).
    """
    return grid_index(x.detach().float()).to(torch.uint8)


def grid_l2(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """L2 distance of uint8 images on the [0, 1] scale, ``||a - b||_2 / 256``, per image."""
    d = a.double() - b.double()
    return (d.flatten(1).norm(dim=1) / NUM_BINS).cpu().numpy()


def quantize(v: torch.Tensor) -> torch.Tensor:
    """Pixel values on the 0..255 scale -> uint8 image: nearest integer, clamped to 0..255."""
    return v.round().clamp(0, MAX_VALUE).to(torch.uint8)


def intensity(k: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """``k / 255`` in float64 (tensor or array): intensities in [0, 1] for plots and blending."""
    if isinstance(k, torch.Tensor):
        return k.to(torch.float64) / MAX_VALUE
    return np.asarray(k, dtype=np.float64) / MAX_VALUE


# -- model inputs of (padded) images ---------------------------------------------------------------
def to_model_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """Deterministic model input: float32 ``[N, C, 32, 32]``, pixel k -> (k + 0.5)/256 - 0.5.

    The same rule for every dataset; 28x28 inputs are zero-padded to 32x32 first.
    """
    return bin_centre(pad_to_32(images_uint8))


def dequantize(
    images_uint8: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform dequantisation: pixel k -> (k + u)/256 - 0.5 with u ~ U[0, 1), float32, 32x32."""
    padded = pad_to_32(images_uint8).to(torch.float32)
    noise = torch.rand(padded.shape, generator=generator, dtype=torch.float32)
    return bin_point(padded, noise)


def fixed_uniform(shape: tuple[int, ...], seed: int, count: int = 1) -> list[torch.Tensor]:
    """``count`` consecutive draws ``U[0, 1)^shape`` (float32, CPU) of a generator seeded ``seed``.

    The one fixed-noise mechanism (module docstring): the same seed gives the same draws.
    """
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(shape, generator=g) for _ in range(count)]


# -- bits/dim -------------------------------------------------------------------------------------
def pixel_scale_logdet(num_dims: int) -> float:
    """log|det| of v -> v/256 - 0.5 on ``num_dims`` dimensions: ``-num_dims * log(256)``."""
    return -num_dims * LOG_NUM_BINS


def bits_per_dim(log_px: T, num_dims: int) -> T:
    """Discrete bits/dim from a continuous log-density (nats) of inputs in [-0.5, 0.5]^D.

    ``-(log p(x) - D log 256) / (D log 2)``; elementwise on tensors, arrays or floats (the
    result has the type and dtype of ``log_px``).
    """
    return -(log_px - num_dims * LOG_NUM_BINS) / (num_dims * math.log(2.0))


def log_px_at_bpd(bpd: float, num_dims: int) -> float:
    """The ``log p`` (nats) whose bits/dim is ``bpd``: ``D log 256 - bpd D log 2``.

    The inverse of :func:`bits_per_dim`; ``bpd = +inf`` gives ``-inf`` and ``-inf`` gives ``+inf``.
    """
    if math.isinf(bpd):
        return -math.inf if bpd > 0 else math.inf
    return num_dims * LOG_NUM_BINS - bpd * num_dims * math.log(2.0)
