"""Metrics: bits/dim (the one conversion used everywhere) and accuracy."""

from __future__ import annotations

import math

import torch

from flows.preprocess import NUM_BINS


def bits_per_dim(log_px: torch.Tensor, num_dims: int) -> torch.Tensor:
    """Discrete bits/dim from a continuous log-density (nats) of inputs in [-0.5, 0.5]^D.

    Each 8-bit pixel owns a bin of width 1/256, so ``log P(k) ~= log p(x) - D log 256`` and

        bits/dim = -(log p(x) - D * log(256)) / (D * log(2)) = -log p(x) / (D log 2) + 8.

    A uniform density on [-0.5, 0.5]^D (``log p(x) = 0``) gives exactly 8 bits/dim.
    """
    return -(log_px - num_dims * math.log(NUM_BINS)) / (num_dims * math.log(2.0))


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return (logits.argmax(1) == labels).float().mean().item()
