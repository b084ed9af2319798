"""Carlini-Wagner L2 attack with an optional likelihood-detection term (paper Sec. 4.3).

Plain CW-L2 (Carlini & Wagner 2017b), written to follow ``foolbox.attacks.L2CarliniWagnerAttack``
(foolbox 3.3.4) step for step: tanh change of variables ``x' = a + b tanh(w)`` onto the input
box, Adam on ``w``, and a binary search over the constant ``c`` of

    L(x') = ||x' - x||_2^2 + c * max(0, Z_y(x') - max_{j != y} Z_j(x') + kappa)      (untargeted)

with ``Z = model.logits`` (= log p(x|y) + log p(y)).  Detection-aware version (Carlini & Wagner
2017a, paper Sec. 4.3) adds

    + c * w_det * l_det(x'),   l_det(x') = max(0, -log p(x') - T_nll)

where ``T_nll = -log p`` at the bits/dim threshold ``T`` (:func:`flows.pixels.log_px_at_bpd`, the
inverse of ``flows.pixels.bits_per_dim``), and only counts an iterate as a success when it is
also accepted (``bits/dim(x') <= T``).  With ``T = +inf`` the extra term is exactly zero and
the success test is the plain one, so the attack *is* plain CW (checked against foolbox in the
tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from flows.experiments.scored_runs import FixedDraw
from flows.pixels import log_px_at_bpd, to_grid


@dataclass
class CWResult:
    """Best (smallest L2) successful iterate per input; ``found`` False -> ``adv`` = original.

    ``adv_k`` is the uint8 image of ``adv`` (in grid mode: exactly the image that succeeded
    in the loop). Detection evidence per input (all 0 without detection): ``det_active_steps``
    = iterates whose detection term was > 0, ``blocked_steps`` = iterates that fooled the
    classifier (with the margin) but were rejected, so they could not count as a success.
    """

    adv: torch.Tensor
    adv_k: torch.Tensor
    found: np.ndarray
    l2: np.ndarray  # inf where not found
    consts: np.ndarray  # final c per input
    steps_run: np.ndarray
    det_active_steps: np.ndarray
    blocked_steps: np.ndarray


def _to_attack_space(x: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    lo, hi = bounds
    a = (lo + hi) / 2
    b = (hi - lo) / 2
    return (((x - a) / b) * 0.999999).arctanh()


def _to_model_space(w: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    lo, hi = bounds
    a = (lo + hi) / 2
    b = (hi - lo) / 2
    return w.tanh() * b + a


def _best_other(logits: torch.Tensor, exclude: torch.Tensor) -> torch.Tensor:
    onehot = torch.zeros_like(logits).scatter_(1, exclude[:, None], math.inf)
    return (logits - onehot).argmax(dim=-1)


class _Adam:
    """foolbox's AdamOptimizer (same update order and constants)."""

    def __init__(self, x: torch.Tensor, stepsize: float) -> None:
        self.stepsize, self.beta1, self.beta2, self.eps = stepsize, 0.9, 0.999, 1e-8
        self.m = torch.zeros_like(x)
        self.v = torch.zeros_like(x)
        self.t = 0

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g**2
        m_hat = self.m / (1 - self.beta1**self.t)
        v_hat = self.v / (1 - self.beta2**self.t)
        return self.stepsize * m_hat / (torch.sqrt(v_hat) + self.eps)


MAX_CONST = 1e10
"""Largest constant ``c`` (foolbox caps the last round of a long search at it): at ``c = 1e10``
the float32 resolution of ``c * hinge`` is already ~1e3, far above the squared L2 distance the
attack minimises; and ``c``, cast to float32, must stay below 3.4e38 (a larger one is inf)."""


@dataclass(frozen=True)
class CWSettings:
    """The optimisation (``cw``, ``cw-det``, ``cw-cont``): ``steps`` Adam steps of size
    ``stepsize`` per round of the binary search over the constant ``c``, ``binary_steps`` rounds
    starting at ``c = initial_const``, and ``w_det = det_weight``, the weight of the detection
    term (which is active only with a finite threshold)."""

    steps: int = 100
    binary_steps: int = 5
    initial_const: float = 1e-2
    stepsize: float = 1e-2
    det_weight: float = 1.0


@dataclass(frozen=True)
class CWCriterion:
    """When an iterate ``x'`` is a success: it fools the classifier with logit margin
    ``kappa = confidence`` and, for a finite ``threshold_bpd`` ``T``, it is accepted,
    ``bits/dim(x') <= T - det_margin_bpd``, i.e. ``log p(x') >= lp_min``. ``T = +inf``: plain CW."""

    confidence: float = 0.0
    threshold_bpd: float = math.inf
    det_margin_bpd: float = 0.0

    @property
    def detect(self) -> bool:
        return not math.isinf(self.threshold_bpd)

    def lp_min(self, num_dims: int) -> float:
        """``log p`` at ``bits/dim = T - det_margin_bpd`` (``-inf`` without detection)."""
        if not self.detect:
            return -math.inf
        return log_px_at_bpd(self.threshold_bpd - self.det_margin_bpd, num_dims)


@dataclass(frozen=True, eq=False)
class _Objective:
    """The per-call CW problem: the loss of an offset ``delta`` in tanh space and the success
    test of an iterate. ``classes`` = the labels (untargeted) or the targets (targeted)."""

    model: nn.Module
    grid: FixedDraw | None
    criterion: CWCriterion
    det_weight: float
    bounds: tuple[float, float]
    x: torch.Tensor
    x_attack: torch.Tensor  # atanh-space image of x
    x_rec: torch.Tensor  # x mapped there and back (the L2 reference without rounding)
    classes: torch.Tensor
    targeted: bool
    lp_min: float

    @classmethod
    def build(
        cls,
        model: nn.Module,
        x: torch.Tensor,
        classes: torch.Tensor,
        targeted: bool,
        criterion: CWCriterion,
        det_weight: float,
        grid: FixedDraw | None,
        bounds: tuple[float, float],
    ) -> _Objective:
        x_attack = _to_attack_space(x, bounds)
        return cls(
            model=model,
            grid=grid,
            criterion=criterion,
            det_weight=det_weight,
            bounds=bounds,
            x=x,
            x_attack=x_attack,
            x_rec=_to_model_space(x_attack, bounds),
            classes=classes,
            targeted=targeted,
            lp_min=criterion.lp_min(int(model.data_dims)),
        )

    @property
    def rows(self) -> torch.Tensor:
        return torch.arange(len(self.x), device=self.x.device)

    def hinge(self, logits: torch.Tensor) -> torch.Tensor:
        """``max(0, Z_y - max_{j != y} Z_j + kappa)`` (targeted on ``t``:
        ``max(0, max_{j != t} Z_j - Z_t + kappa)``), per input."""
        rows = self.rows
        if self.targeted:
            c_min, c_max = _best_other(logits, self.classes), self.classes
        else:
            c_min, c_max = self.classes, _best_other(logits, self.classes)
        adv_loss = logits[rows, c_min] - logits[rows, c_max]
        return torch.clamp(adv_loss + self.criterion.confidence, min=0)

    def det_excess(self, log_px: torch.Tensor) -> torch.Tensor:
        """``l_det = max(0, -log p(x') - T_nll)`` with ``T_nll = -lp_min``, per input."""
        return torch.clamp(-log_px - (-self.lp_min), min=0)

    def loss(
        self, delta: torch.Tensor, consts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``sum_i c_i hinge_i + ||x'_i - x_i||^2 [+ c_i w_det l_det,i]`` at
        ``x' = a + b tanh(x_attack + delta)`` (rounded, straight-through, with ``grid``);
        returns ``(loss, x', Z(x'), log p(x'))``."""
        xp = _to_model_space(self.x_attack + delta, self.bounds)
        if self.grid is None:
            logits = self.model.logits(xp).float()
        else:
            logits, xp = self.grid.logits_ste(xp)
            logits = logits.float()
        adv_loss = self.hinge(logits) * consts
        sq = (xp - (self.x_rec if self.grid is None else self.x)).flatten(1).square().sum(dim=-1)
        loss = adv_loss.sum() + sq.sum()
        log_px = torch.logsumexp(logits, dim=1)
        if self.criterion.detect:
            loss = loss + (self.det_excess(log_px) * consts * self.det_weight).sum()
        return loss, xp, logits, log_px

    def fools(self, logits: torch.Tensor) -> torch.Tensor:
        """``argmax(Z + kappa e_y) != y`` (targeted: ``argmax(Z - kappa e_t) == t``)."""
        z, confidence, rows = logits, self.criterion.confidence, self.rows
        if confidence != 0:
            z = z.clone()
            z[rows, self.classes] += -confidence if self.targeted else confidence
        if self.targeted:
            return z.argmax(-1) == self.classes
        return z.argmax(-1) != self.classes

    def rejected(self, log_px: torch.Tensor) -> torch.Tensor:
        """``log p(x') < lp_min`` (never without detection)."""
        return log_px < self.lp_min

    def is_adv(self, logits: torch.Tensor, log_px: torch.Tensor) -> torch.Tensor:
        """Fools and, with detection, is accepted (``log p(x') >= lp_min``)."""
        ok = self.fools(logits)
        if self.criterion.detect:
            ok = ok & (log_px >= self.lp_min)
        return ok


@dataclass
class _BestSoFar:
    """The smallest-L2 successful iterate per input over all rounds, and the detection
    evidence counters of :class:`CWResult`."""

    best: torch.Tensor
    best_norms: torch.Tensor
    steps_run: np.ndarray
    det_active: np.ndarray
    blocked: np.ndarray

    @classmethod
    def empty(cls, x: torch.Tensor) -> _BestSoFar:
        n = len(x)
        return cls(
            torch.zeros_like(x),
            torch.full((n,), math.inf, device=x.device),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64),
        )

    def add(
        self, obj: _Objective, xp: torch.Tensor, logits: torch.Tensor, log_px: torch.Tensor
    ) -> np.ndarray:
        """Record the iterate ``x'``; returns which inputs it is a success for."""
        adv_it = obj.is_adv(logits, log_px)
        self.steps_run += 1
        if obj.criterion.detect:
            rejected = obj.rejected(log_px).cpu().numpy()
            self.det_active += rejected
            self.blocked += rejected & obj.fools(logits).cpu().numpy()
        norms = (xp - obj.x).flatten(1).norm(p=2, dim=-1)
        new_best = (norms < self.best_norms) & adv_it
        self.best = torch.where(new_best[:, None, None, None], xp, self.best)
        self.best_norms = torch.where(new_best, norms, self.best_norms)
        return adv_it.cpu().numpy()

    def result(self, x: torch.Tensor, consts: np.ndarray) -> CWResult:
        found_any = torch.isfinite(self.best_norms).cpu().numpy()
        mask = torch.from_numpy(found_any)[:, None, None, None].to(x.device)
        adv = torch.where(mask, self.best, x)
        return CWResult(
            adv=adv.detach(),
            adv_k=to_grid(adv),
            found=found_any,
            l2=self.best_norms.cpu().numpy().astype(np.float64),
            consts=consts,
            steps_run=self.steps_run,
            det_active_steps=self.det_active,
            blocked_steps=self.blocked,
        )


@dataclass
class _ConstSearch:
    """foolbox's per-input binary search over ``c`` in the bracket ``[lower, upper]``
    (``upper = inf`` until a round succeeds)."""

    consts: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @classmethod
    def start(cls, n: int, initial_const: float) -> _ConstSearch:
        return cls(initial_const * np.ones((n,)), np.zeros((n,)), np.inf * np.ones((n,)))

    def consts_for_round(self, bs: int, rounds: int) -> np.ndarray:
        """``c`` of round ``bs``; with >= 10 rounds the last one uses ``min(upper, MAX_CONST)``."""
        if bs == rounds - 1 and rounds >= 10:
            self.consts = np.minimum(self.upper, MAX_CONST)
        return self.consts

    def update(self, found: np.ndarray) -> None:
        """Success: ``upper = c``, else ``lower = c``; then ``c = (lower + upper) / 2``, or
        ``10 c`` while ``upper = inf``, at most :data:`MAX_CONST` (foolbox grows ``c`` without
        bound, to inf in float32 after enough failed rounds)."""
        self.upper = np.where(found, self.consts, self.upper)
        self.lower = np.where(found, self.lower, self.consts)
        self.consts = np.where(
            np.isinf(self.upper), np.minimum(self.consts * 10, MAX_CONST),
            (self.lower + self.upper) / 2
        )


def _search_round(
    obj: _Objective,
    consts: np.ndarray,
    settings: CWSettings,
    abort_early: bool,
    record: _BestSoFar,
    bar: tqdm,
) -> np.ndarray:
    """One round of the binary search: ``settings.steps`` Adam steps on ``delta`` from 0 with
    fixed ``c``; foolbox's early abort (every ``ceil(steps/10)`` steps, stop unless the loss fell
    below 0.9999 of its last check). Returns which inputs had a successful iterate."""
    steps = settings.steps
    delta = torch.zeros_like(obj.x_attack)
    opt = _Adam(delta, settings.stepsize)
    found = np.full((len(obj.x),), False)
    loss_prev = math.inf
    consts_t = torch.from_numpy(consts.astype(np.float32)).to(obj.x.device)
    done = 0
    for step in range(steps):
        d = delta.clone().requires_grad_(True)
        loss, xp, logits, log_px = obj.loss(d, consts_t)
        (grad,) = torch.autograd.grad(loss, d)
        xp, logits, log_px = xp.detach(), logits.detach(), log_px.detach()
        delta = delta - opt(grad)
        done += 1
        bar.update(1)
        if abort_early and step % (np.ceil(steps / 10)) == 0:
            if not bool(loss.detach() <= 0.9999 * loss_prev):  # as foolbox (fp32 compare)
                break
            loss_prev = loss.item()
        found = np.logical_or(found, record.add(obj, xp, logits, log_px))
    bar.update(steps - done)
    return found


def cw_l2(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    settings: CWSettings = CWSettings(),
    criterion: CWCriterion = CWCriterion(),
    *,
    target: torch.Tensor | None = None,
    grid: FixedDraw | None = None,
    abort_early: bool = True,
    bounds: tuple[float, float] = (-0.5, 0.5),
    progress: bool | str = False,
) -> CWResult:
    """CW-L2 on ``model.logits`` with detection term ``max(0, -log p(x') - T_nll)``.

    ``target`` None: untargeted on ``labels``; else targeted towards ``target``.
    ``criterion.threshold_bpd`` = +inf gives plain CW (identical to foolbox's with the same
    settings). ``grid``: rounding inside the loop. Every iterate is rounded to the 8-bit grid and
    the loss and success test are evaluated on that image with the fixed-draw forward ``grid``
    (straight-through gradients); the L2 term is the distance of the rounded image. A success
    then also needs ``bits/dim <= T - det_margin_bpd`` (detection) under that forward.
    """
    model.eval()
    x = x.detach().float()
    labels = labels.to(x.device)
    targeted = target is not None
    classes = (target if targeted else labels).to(x.device)
    obj = _Objective.build(
        model, x, classes, targeted, criterion, settings.det_weight, grid, bounds
    )
    record = _BestSoFar.empty(x)
    search = _ConstSearch.start(len(x), settings.initial_const)
    rounds = settings.binary_steps
    bar = tqdm(
        total=rounds * settings.steps,
        desc=progress if isinstance(progress, str) else "CW-L2",
        disable=not progress,
        leave=False,
    )
    for bs in range(rounds):
        consts = search.consts_for_round(bs, rounds)
        search.update(_search_round(obj, consts, settings, abort_early, record, bar))
    bar.close()
    return record.result(x, search.consts)
