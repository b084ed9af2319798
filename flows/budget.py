"""Size a training schedule to a CPU budget: ``flows.train --budget-minutes M``.

The throughput of the training step (images/s) is measured on this machine with the run's own
model, objective, batch size, threads and fast path, on a throwaway copy of the model (the run's
weights, optimizer and random streams are untouched). The budget then buys

    total = SAFETY * M * 60 * images_per_s      images,

spent as ``E = ceil(total / N)`` epochs of ``total / E`` images each (a fresh random subset per
epoch, rounded down to whole batches; ``N`` the training set), so the learning-rate schedule
(warm-up, constant rate, cosine anneal over the last 20% of the steps) fits the budget. The
resolved epochs and images per epoch are stored in the run's config with the measured
throughput: ``--epochs E --train-subset S`` reproduces the run bit for bit on any machine.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import torch

from flows.train_step import TrainStep, training_batch

SAFETY = 0.93
"""Share of the budget planned for training steps; the rest covers the per-step statistics, the
per-epoch checkpoints and the start-up, which the measurement does not include."""
WARM_STEPS = 3
MEASURE_STEPS = 12


@dataclass(frozen=True)
class BudgetPlan:
    """What a budget resolved to (stored in ``config.json`` as ``budget``)."""

    minutes: float
    images_per_s: float
    epochs: int
    train_subset: int  # images per epoch; 0: the whole training set

    def to_dict(self) -> dict:
        return asdict(self)


def plan(minutes: float, images_per_s: float, num_images: int, batch_size: int) -> BudgetPlan:
    """Epochs and images per epoch that spend ``SAFETY * minutes`` at ``images_per_s``."""
    total = SAFETY * minutes * 60.0 * images_per_s
    epochs = max(1, math.ceil(total / num_images - 1e-9))  # no extra epoch for float noise
    per_epoch = max(batch_size, int(total / epochs) // batch_size * batch_size)
    subset = 0 if per_epoch >= num_images else per_epoch
    return BudgetPlan(minutes, images_per_s, epochs, subset)


def measure_images_per_s(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                         objective: str, batch_size: int, lr: float, flip: bool,
                         memory_format: torch.memory_format, device: torch.device, *,
                         augment_images: bool = True, max_grad_norm: float = math.inf) -> float:
    """Images/s of full training steps (:class:`flows.train_step.TrainStep` with its guards, on
    :func:`~flows.train_step.training_batch`) on a copy of ``model``, after ``WARM_STEPS``
    untimed steps."""
    net = copy.deepcopy(model).train()
    step = TrainStep(net, torch.optim.Adam(net.parameters(), lr=lr), objective,
                     max_grad_norm=max_grad_norm)
    gen = torch.Generator().manual_seed(0)
    rng_state = torch.get_rng_state()
    try:
        t0 = 0.0
        for i in range(WARM_STEPS + MEASURE_STEPS):
            if i == WARM_STEPS:
                t0 = time.perf_counter()
            idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
            step(*training_batch(images, labels, idx, augment_images=augment_images, flip=flip,
                                 generator=gen, device=device, memory_format=memory_format))
        return MEASURE_STEPS * batch_size / (time.perf_counter() - t0)
    finally:
        torch.set_rng_state(rng_state)
