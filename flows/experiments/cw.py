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


def cw_l2(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    target: torch.Tensor | None = None,
    threshold_bpd: float = math.inf,
    det_weight: float = 1.0,
    binary_search_steps: int = 5,
    steps: int = 200,
    stepsize: float = 1e-2,
    confidence: float = 0.0,
    initial_const: float = 1e-2,
    abort_early: bool = True,
    bounds: tuple[float, float] = (-0.5, 0.5),
    grid: FixedDraw | None = None,
    det_margin_bpd: float = 0.0,
    progress: bool | str = False,
) -> CWResult:
    """CW-L2 on ``model.logits`` with detection term ``max(0, -log p(x') - T_nll)``.

    ``target`` None: untargeted on ``labels``; else targeted towards ``target``.
    ``threshold_bpd`` = +inf gives plain CW (identical to foolbox's with the same settings).
    ``grid``: rounding inside the loop. Every iterate is rounded to the 8-bit grid and the loss
    and success test are evaluated on that image with the fixed-draw forward ``grid``
    (straight-through gradients); the L2 term is the distance of the rounded image. A success
    then also needs ``bits/dim <= T - det_margin_bpd`` (detection) under that forward.
    """
    model.eval()
    x = x.detach().float()
    n = len(x)
    labels = labels.to(x.device)
    targeted = target is not None
    classes = (target if targeted else labels).to(x.device)
    detect = not math.isinf(threshold_bpd)
    num_dims = int(model.data_dims)
    lp_min = log_px_at_bpd(threshold_bpd - det_margin_bpd, num_dims) if detect else -math.inf
    rows = torch.arange(n, device=x.device)

    x_attack = _to_attack_space(x, bounds)
    x_rec = _to_model_space(x_attack, bounds)

    def loss_fun(delta: torch.Tensor, consts: torch.Tensor):
        xp = _to_model_space(x_attack + delta, bounds)
        if grid is None:
            logits = model.logits(xp).float()
        else:
            logits, xp = grid.logits_ste(xp)
            logits = logits.float()
        if targeted:
            c_min, c_max = _best_other(logits, classes), classes
        else:
            c_min, c_max = classes, _best_other(logits, classes)
        adv_loss = logits[rows, c_min] - logits[rows, c_max]
        adv_loss = torch.clamp(adv_loss + confidence, min=0) * consts
        sq = (xp - (x_rec if grid is None else x)).flatten(1).square().sum(dim=-1)
        loss = adv_loss.sum() + sq.sum()
        log_px = torch.logsumexp(logits, dim=1)
        if detect:
            det = torch.clamp(-log_px - (-lp_min), min=0) * consts * det_weight
            loss = loss + det.sum()
        return loss, xp, logits, log_px

    def fools(logits: torch.Tensor) -> torch.Tensor:
        z = logits
        if confidence != 0:
            z = z.clone()
            z[rows, classes] += -confidence if targeted else confidence
        return z.argmax(-1) == classes if targeted else z.argmax(-1) != classes

    def is_adv(logits: torch.Tensor, log_px: torch.Tensor) -> torch.Tensor:
        ok = fools(logits)
        if detect:
            ok = ok & (log_px >= lp_min)
        return ok

    steps_run = np.zeros(n, dtype=np.int64)
    det_active = np.zeros(n, dtype=np.int64)
    blocked = np.zeros(n, dtype=np.int64)

    consts = initial_const * np.ones((n,))
    lower = np.zeros((n,))
    upper = np.inf * np.ones((n,))
    best = torch.zeros_like(x)
    best_norms = torch.full((n,), math.inf, device=x.device)
    total = binary_search_steps * steps
    bar = tqdm(
        total=total,
        desc=progress if isinstance(progress, str) else "CW-L2",
        disable=not progress,
        leave=False,
    )
    for bs in range(binary_search_steps):
        if bs == binary_search_steps - 1 and binary_search_steps >= 10:
            consts = np.minimum(upper, 1e10)
        delta = torch.zeros_like(x_attack)
        opt = _Adam(delta, stepsize)
        found = np.full((n,), False)
        loss_prev = math.inf
        consts_t = torch.from_numpy(consts.astype(np.float32)).to(x.device)
        done = 0
        for step in range(steps):
            d = delta.clone().requires_grad_(True)
            loss, xp, logits, log_px = loss_fun(d, consts_t)
            (grad,) = torch.autograd.grad(loss, d)
            xp, logits, log_px = xp.detach(), logits.detach(), log_px.detach()
            delta = delta - opt(grad)
            done += 1
            bar.update(1)
            if abort_early and step % (np.ceil(steps / 10)) == 0:
                if not bool(loss.detach() <= 0.9999 * loss_prev):  # as foolbox (fp32 compare)
                    break
                loss_prev = loss.item()
            adv_it = is_adv(logits, log_px)
            steps_run += 1
            if detect:
                rejected = (log_px < lp_min).cpu().numpy()
                det_active += rejected
                blocked += rejected & fools(logits).cpu().numpy()
            found = np.logical_or(found, adv_it.cpu().numpy())
            norms = (xp - x).flatten(1).norm(p=2, dim=-1)
            new_best = (norms < best_norms) & adv_it
            best = torch.where(new_best[:, None, None, None], xp, best)
            best_norms = torch.where(new_best, norms, best_norms)
        bar.update(steps - done)
        upper = np.where(found, consts, upper)
        lower = np.where(found, lower, consts)
        consts = np.where(np.isinf(upper), consts * 10, (lower + upper) / 2)
    bar.close()
    found_any = torch.isfinite(best_norms).cpu().numpy()
    adv = torch.where(torch.from_numpy(found_any)[:, None, None, None].to(x.device), best, x)
    return CWResult(
        adv=adv.detach(),
        adv_k=to_grid(adv),
        found=found_any,
        l2=best_norms.cpu().numpy().astype(np.float64),
        consts=consts,
        steps_run=steps_run,
        det_active_steps=det_active,
        blocked_steps=blocked,
    )
