"""Learning-rate schedules with linear warm-up (a pure function of the global step).

* ``paper`` -- Appendix B: lr 1e-3 divided by 10 every 60 epochs (150 epochs in the paper).
* ``step`` -- the paper's shape squeezed into a short run: /10 at 40% and at 80% of the epochs.
  Kept for the superseded small-* results; at a 2-epoch budget it is 0.7-1 bits/dim worse than a
  constant rate (docs/flows.md, "Training recipe").
* ``anneal`` -- the short-budget recipe: constant ``base_lr``, then a cosine decay to 0 over the
  last ``ANNEAL_FRACTION`` of the steps (the paper also keeps 1e-3 for its first 40% of training).
* ``cosine`` -- a cosine decay from ``base_lr`` to 0 over all the steps (the anneal with
  ``ANNEAL_FRACTION = 1``): no constant-rate phase.
* ``constant`` -- ``base_lr`` throughout.

``auto`` resolves to ``paper`` for runs of 150 epochs or more and ``anneal`` otherwise. Resuming
needs no scheduler state.
"""

from __future__ import annotations

import math

SCHEDULES = ("auto", "paper", "step", "anneal", "cosine", "constant")
ANNEAL_FRACTION = 0.2


def resolve_schedule(name: str, epochs: int) -> str:
    """The concrete schedule ``auto`` stands for (``paper`` from 150 epochs, else ``anneal``)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {name!r}; expected one of {', '.join(SCHEDULES)}")
    if name == "auto":
        return "paper" if epochs >= 150 else "anneal"
    return name


def lr_at(step: int, steps_per_epoch: int, epochs: int, base_lr: float, warmup_steps: int,
          schedule: str = "auto") -> float:
    """Learning rate for optimisation step ``step`` (0-based)."""
    schedule = resolve_schedule(schedule, epochs)
    epoch = step / max(steps_per_epoch, 1)
    total = max(steps_per_epoch, 1) * epochs
    if schedule == "paper":
        factor = 0.1 ** math.floor(epoch / 60)
    elif schedule == "step":
        factor = 0.1 ** (int(epoch >= 0.4 * epochs) + int(epoch >= 0.8 * epochs))
    elif schedule in ("anneal", "cosine"):
        start = (1.0 - ANNEAL_FRACTION) * total if schedule == "anneal" else 0.0
        t = min(max((step - start) / (total - start), 0.0), 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        factor = 1.0
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return base_lr * warm * factor


def ce_weight_at(step: int, ramp_steps: int) -> float:
    """Weight of ``-log p(y|x)`` in Eq. (6) at optimisation step ``step`` (0-based): rises
    linearly ``(step + 1) / ramp_steps`` to 1 over the first ``ramp_steps`` steps, then 1 (Eq. (6)
    exactly); ``ramp_steps = 0``: 1 throughout."""
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / ramp_steps)
