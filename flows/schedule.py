"""Learning-rate schedule (Appendix B) with linear warm-up.

The paper trains 150 epochs with lr 1e-3 divided by 10 every 60 epochs. For runs of fewer than
150 epochs we keep the *shape* of that schedule: lr is divided by 10 at 40% and at 80% of the
epochs (60/150 and 120/150). For 150 epochs or more it is divided by 10 every 60 epochs. The
schedule is a pure function of the global step, so resuming needs no scheduler state.
"""

from __future__ import annotations

import math


def lr_at(step: int, steps_per_epoch: int, epochs: int, base_lr: float, warmup_steps: int) -> float:
    """Learning rate for optimisation step ``step`` (0-based)."""
    epoch = step / max(steps_per_epoch, 1)
    if epochs >= 150:
        drops = math.floor(epoch / 60)
    else:
        drops = int(epoch >= 0.4 * epochs) + int(epoch >= 0.8 * epochs)
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return base_lr * warm * (0.1**drops)
