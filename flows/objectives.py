"""Training objectives, all computed from the ``[N, K]`` matrix ``log p(x|y)`` of one forward pass.

With ``D`` the data dimension (1x32x32 or 3x32x32), ``log p(x, y) = log p(x|y) + log p(y)``,
``log p(x) = logsumexp_y log p(x, y)`` and ``log p(y|x) = log p(x, y) - log p(x)`` (Bayes rule):

* ``base``       -- maximum likelihood of ``p(x, y)`` with the class-conditional Gaussian mixture
  prior (Section 4.1 "Base", Appendix A.1): ``-log p(x, y) / D``.
* ``reweighted`` -- Appendix B, Eq. (6): ``-log p(x|y) / D - log p(y|x)`` (A.2: the discriminative
  part of Eq. (4) up-weighted).
* ``split``      -- the same Eq. (6) loss, with the model built on the conditional split prior of
  Appendix A.4 (``z_s`` are the logits; :class:`flows.priors.SplitPrior`).
* ``ib``         -- Information Bottleneck of Mackowiak et al. (2021), Eqs. (5)-(7):
  ``L_X + beta * L_Y`` with ``L_X = -log p(x) / D`` (the GMM marginal, i.e. Eq. (6) with the
  signs of the log-density written out: ``-log|det J| - logsumexp_y(-|f(x)-mu_y|^2/2 + log p(y))``
  up to constants) and ``L_Y = -log p(y|x)`` (Eq. (7), the cross-entropy with logits
  ``log p(x, y)``). We divide ``L_X`` by ``D`` as in Eq. (6) of Fetaya et al., so ``beta = 1``
  weights both terms like ``reweighted``; Mackowiak et al.'s unnormalised ``beta`` equals ours
  times ``D``.

Every loss is averaged over the batch. ``ce_weight`` scales ``-log p(y|x)`` in ``reweighted`` and
``split``: 1 is Eq. (6) exactly; below 1 only during a ramp at the start of training
(``flows.schedule.ce_weight_at``), so the last phase is always Eq. (6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from flows.config import OBJECTIVES


def objective_loss(
    log_px_given_y: torch.Tensor,
    labels: torch.Tensor,
    log_py: torch.Tensor,
    objective: str,
    num_dims: int,
    beta: float = 1.0,
    ce_weight: float = 1.0,
) -> torch.Tensor:
    """Scalar loss for ``objective`` (see the module docstring for the equations)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    lp = log_px_given_y.float()
    joint = lp + log_py.float()
    nll_joint = -joint.gather(1, labels[:, None]).squeeze(1) / num_dims
    if objective == "base":
        return nll_joint.mean()
    ce = F.cross_entropy(joint, labels)
    if objective in ("reweighted", "split"):
        nll_cond = -lp.gather(1, labels[:, None]).squeeze(1) / num_dims
        return nll_cond.mean() + ce if ce_weight == 1.0 else nll_cond.mean() + ce_weight * ce
    log_px = torch.logsumexp(joint, 1)
    return (-log_px / num_dims).mean() + beta * ce
