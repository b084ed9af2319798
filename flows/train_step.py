"""One optimisation step of :mod:`flows.train`, the one implementation that training, the budget
probe (:mod:`flows.budget`) and the benchmarks (``benchmarks/``) all run.

A step: the training batch (:func:`training_batch`: augmentation, dequantisation), the forward
pass ``log p(x|y)`` for every class, the objective's loss (:mod:`flows.objectives`, e.g. Eq. (6)),
backward, gradient-norm clipping and Adam. With ``guard=True`` (training) it also checks that the
loss, the gradient norm and the updated parameters are finite on every rank; a non-finite value
raises :class:`NonFiniteStep` with the model and optimizer holding the last good state (an update
that made a parameter non-finite is undone from a pre-update copy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist

from flows.objectives import objective_loss
from flows.pixels import dequantize
from flows.preprocess import augment


class NonFiniteStep(Exception):
    """A step met a non-finite value: ``what`` is ``loss``, ``gradient`` or ``parameters after
    the update``; the model and optimizer hold the state from before the step's update."""

    def __init__(self, what: str) -> None:
        super().__init__(f"non-finite {what}")
        self.what = what


@dataclass(frozen=True)
class StepResult:
    """What a step leaves for the epoch's statistics (all detached)."""

    log_px_given_y: torch.Tensor  # [N, K] nats
    loss: torch.Tensor  # scalar
    grad_norm: torch.Tensor  # scalar, before clipping


class PreUpdateCopy:
    """The parameters and optimizer state tensors as they were before the latest update, kept in
    preallocated buffers (one ``_foreach_copy_`` per step instead of a deep copy of the state;
    28 ms -> a few ms per step for cpu-cifar). ``restore()`` puts them back exactly."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self.src: list[torch.Tensor] = []
        self.buf: list[torch.Tensor] = []
        self.had_state = False

    def _tensors(self) -> list[torch.Tensor]:
        state = [v for st in self.optimizer.state.values() for v in st.values()
                 if torch.is_tensor(v)]
        return [p.detach() for p in self.model.parameters()] + state

    @torch.no_grad()
    def capture(self) -> None:
        src = self._tensors()
        if len(src) != len(self.buf):  # first step, or the optimizer state was just created
            self.buf = [t.clone() for t in src]
        else:
            torch._foreach_copy_(self.buf, src)
        self.src = src
        self.had_state = bool(self.optimizer.state)

    @torch.no_grad()
    def restore(self) -> None:
        torch._foreach_copy_(self.src, self.buf)
        if not self.had_state:  # the failing update was the first: it created the moments
            self.optimizer.state.clear()


def all_finite(tensors: list[torch.Tensor]) -> torch.Tensor:
    """A boolean scalar tensor: every element of every tensor is finite.

    Each tensor's 2-norm (one ``_foreach_norm`` pass, as ``clip_grad_norm_`` takes them) is finite
    when its elements are, unless it overflows; only when some norm is not finite (an inf or NaN
    element, or an overflow) are the elements tested one tensor at a time. (Max-norms cannot
    overflow, but their foreach pass is as slow on the CPU as the per-tensor test.)"""
    tensors = [t.detach() for t in tensors]
    ok = torch.isfinite(torch.stack(torch._foreach_norm(tensors))).all()
    if not ok:
        ok = torch.stack([torch.isfinite(t).all() for t in tensors]).all()
    return ok


def all_ranks_finite(tensors: list[torch.Tensor], world: int) -> bool:
    """True iff every tensor is finite on *every* rank (one ``all_reduce(MIN)`` under DDP)."""
    ok = all_finite(tensors)
    if world > 1:
        flag = ok.to(torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = flag > 0
    return bool(ok)


def training_batch(images: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor, *,
                   augment_images: bool, flip: bool, generator: torch.Generator,
                   device: torch.device, memory_format: torch.memory_format
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs and labels of the training images ``idx``: augmented (random crop, and a
    horizontal flip where ``flip``), then dequantised (``x = (k + u)/256 - 1/2``, Appendix B)."""
    batch = images[idx]
    if augment_images:
        batch = augment(batch, flip=flip, generator=generator)
    x = dequantize(batch, generator=generator).to(device, memory_format=memory_format)
    return x, labels[idx].to(device)


class TrainStep:
    """``step(x, y) -> StepResult``: forward, the objective's loss, backward, clipping, Adam.

    ``net`` is what runs the forward pass (the model itself, or its compiled / DDP wrapper);
    ``model`` owns the parameters and the prior. The learning rate is the optimizer's own (the
    caller sets it per step from :mod:`flows.schedule`).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, objective: str,
                 *, beta: float = 1.0, max_grad_norm: float = math.inf, world: int = 1,
                 net: torch.nn.Module | None = None, guard: bool = True) -> None:
        self.model, self.optimizer, self.objective = model, optimizer, objective
        self.beta, self.max_grad_norm, self.world = beta, max_grad_norm, world
        self.net = model if net is None else net
        self.ce_weight = 1.0  # of -log p(y|x) in Eq. (6); set per step during a ramp
        self.pre_update = PreUpdateCopy(model, optimizer) if guard else None  # None: no guards

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        lp = self.net(x)
        loss = objective_loss(lp, y, self.model.log_prior(), self.objective,
                              self.model.data_dims, self.beta, self.ce_weight)
        if self.pre_update is not None and not all_ranks_finite([loss], self.world):
            raise NonFiniteStep("loss")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        if self.pre_update is not None:
            if not all_ranks_finite([gnorm], self.world):
                raise NonFiniteStep("gradient")
            self.pre_update.capture()  # parameters and Adam moments before this update
        self.optimizer.step()
        if self.pre_update is not None and not all_ranks_finite(
                list(self.model.parameters()), self.world):
            self.pre_update.restore()
            raise NonFiniteStep("parameters after the update")
        return StepResult(lp.detach(), loss.detach(), gnorm.detach())
