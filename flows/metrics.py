"""Metrics: accuracy (bits/dim is :func:`flows.pixels.bits_per_dim`)."""

from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return (logits.argmax(1) == labels).float().mean().item()
