"""Class-conditional latent priors ``log p(z|y)`` evaluated for every class at once (``[N, K]``).

* :class:`GaussianMixturePrior` -- Section 4.1 / Appendix A.1: ``p(z|y) = N(mu_y, diag(sigma_y^2))``
  with learned means and log standard deviations (zero-initialised: standard normal). With
  ``shared_scale`` one ``sigma`` serves every class, ``p(z|y) = N(mu_y, diag(sigma^2))`` (as the
  unit-variance components of Mackowiak et al. 2021, with a learned scale): the class
  log-likelihood ratios ``log p(z|y) - log p(z|y')`` are then linear in ``z`` (LDA).
* :class:`SplitPrior` -- Appendix A.4: ``z = (z_s, z_n)`` with ``z_s`` the first K latent dims,
  ``p(z_s|y) = N(e_y, sigma_s^2 I)`` (one-hot mean, fixed scale ``sigma_s``) and
  ``p(z_n|z_s, y) = N(mu(z_s, y), diag(exp(2 rho(z_s, y))))`` with ``mu``, ``rho`` affine in
  ``[z_s, onehot(y)]`` (zero-initialised). Then ``log p(z_s|y) = z_s[y]/sigma_s^2 + const(z_s)``,
  i.e. ``z_s`` act as the logits of a discriminative model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def diag_gaussian_logpdf(
    z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
) -> torch.Tensor:
    """Sum over the last axis of ``log N(z; mean, exp(log_std)^2)`` (broadcasting)."""
    return (-0.5 * ((z - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * LOG_2PI).sum(-1)


def diag_gaussian_logpdf_all_classes(
    z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor,
    sample_mean: torch.Tensor | None = None, sample_log_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[N, D], [K, D], [K, D] -> [N, K]``: ``log N(z_n; a_n + m_k, diag(exp(2 (b_n + s_k))))``
    with ``m = mean``, ``s = log_std`` and the optional per-sample terms ``a = sample_mean``,
    ``b = sample_log_std`` (``[N, D]``, zero when absent; Appendix A.4's split prior has them).

    The quadratic form is expanded into matrix products: with ``r = (z - a) e^-b``, ``v = e^-b``
    and ``P = e^-2s``, ``sum_d (z_nd - a_nd - m_kd)^2 e^(-2 (b_nd + s_kd)) =
    r^2 @ P^T - 2 (r v) @ (m P)^T + v^2 @ (m^2 P)^T`` (the last is ``sum_d m_kd^2 P_kd`` when
    ``b = 0``). It is evaluated in float64, then returned in ``z``'s dtype: no ``[N, K, D]``
    tensor (6144 dimensions x 10 classes per image on CIFAR-10), and the cancellation between the
    three terms costs nothing at float64 (with random means and scales at 6144 dimensions: 1e-11
    nats from the float64 broadcast, where the float32 broadcast of :func:`diag_gaussian_logpdf`
    is off by up to 1e-3).
    """
    z64, m, s = z.double(), mean.double(), log_std.double()
    prec = torch.exp(-2.0 * s)  # [K, D]
    r = z64 if sample_mean is None else z64 - sample_mean.double()
    log_det = s.sum(1)[None, :]  # [1, K]
    if sample_log_std is None:
        quad = (r * r) @ prec.T - 2.0 * (r @ (m * prec).T) + (m * m * prec).sum(1)
    else:
        b = sample_log_std.double()
        v = torch.exp(-b)
        r = r * v
        quad = (r * r) @ prec.T - 2.0 * ((r * v) @ (m * prec).T) + (v * v) @ (m * m * prec).T
        log_det = log_det + b.sum(1, keepdim=True)
    lp = -0.5 * quad - log_det - 0.5 * z.shape[1] * LOG_2PI
    return lp.to(z.dtype)


def tie_past(t: torch.Tensor, c: int) -> torch.Tensor:
    """``[K, D] -> [K, D]``: columns ``>= c`` replaced by their mean over the K rows (class
    parameters tied past the first ``c`` dimensions); ``t`` itself when ``c >= D``."""
    if c >= t.shape[1]:
        return t
    return torch.cat([t[:, :c], t[:, c:].mean(0, keepdim=True).expand(t.shape[0], -1)], 1)


def pooled_log_std(log_std: torch.Tensor) -> torch.Tensor:
    """``[K, D] -> [1, D]``: the log of the pooled within-class standard deviation,
    ``0.5 log(mean_k sigma_k^2)`` (the shared scale that LDA fits to equally likely classes)."""
    k = log_std.shape[0]
    return 0.5 * (torch.logsumexp(2.0 * log_std, 0, keepdim=True) - math.log(k))


class GaussianMixturePrior(nn.Module):
    """``log p(z|y) = log N(z; mu_y, diag(exp(2 log_sigma_y)))`` for all K classes.

    ``log_std`` is ``[K, D]``, or ``[1, D]`` with ``shared_scale`` (one scale for every class).
    With ``class_dims = c < D`` only the first ``c`` latent dimensions (the model puts its top
    level there) have class-specific parameters: on the others every class uses the class mean
    of ``mean`` and ``log_std``, so they add the same ``log N`` to every class and leave
    ``p(y|z)`` to the first ``c`` (as Glow's class-conditional top prior). The ``K`` stored rows
    past ``c`` enter only through that mean (and all receive the same gradient).
    """

    def __init__(self, dim: int, num_classes: int, shared_scale: bool = False,
                 class_dims: int | None = None) -> None:
        super().__init__()
        if class_dims is not None and not 0 < class_dims <= dim:
            raise ValueError(f"class_dims must be in [1, {dim}], got {class_dims}")
        self.shared_scale = shared_scale
        self.class_dims = dim if class_dims is None else class_dims
        self.mean = nn.Parameter(torch.zeros(num_classes, dim))
        self.log_std = nn.Parameter(torch.zeros(1 if shared_scale else num_classes, dim))

    def effective_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)``, both ``[K, D]``: per-class scales or the shared one, and past
        ``class_dims`` the class means of both."""
        return (tie_past(self.mean, self.class_dims),
                tie_past(self.log_std.expand_as(self.mean), self.class_dims))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, D] -> [N, K]`` class-conditional log densities."""
        return diag_gaussian_logpdf_all_classes(z, *self.effective_params())

    def sample(self, y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        mean, log_std = (t[y] for t in self.effective_params())
        return mean + temperature * torch.exp(log_std) * torch.randn_like(mean)

    def state_from(self, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
        """Map the ``mean`` / ``log_std`` of another mixture prior onto this one's shapes.

        Returns ``(state, how)``: ``"loaded"`` when the shapes agree; ``"pooled"`` for per-class
        scales into a shared one (:func:`pooled_log_std`); ``"broadcast"`` for a shared scale
        into per-class ones (every class starts from it). The means are always copied.
        """
        log_std = state["log_std"]
        if log_std.shape == self.log_std.shape:
            return dict(state), "loaded"
        if self.shared_scale:
            return {**state, "log_std": pooled_log_std(log_std)}, "pooled"
        return {**state, "log_std": log_std.expand_as(self.mean).clone()}, "broadcast"


class SplitPrior(nn.Module):
    """Conditional split prior of Appendix A.4: ``p(z|y) = p(z_s|y) p(z_n|z_s, y)``."""

    def __init__(self, dim: int, num_classes: int, sigma_s: float = 1.0,
                 class_dims: int | None = None) -> None:
        super().__init__()
        if dim <= num_classes:
            raise ValueError("latent dimension must exceed the number of classes")
        if class_dims is not None and not num_classes < class_dims <= dim:
            raise ValueError(f"class_dims must be in [{num_classes + 1}, {dim}], got {class_dims}")
        self.k = num_classes
        self.sigma_s = sigma_s
        # z_n dims with class-specific mean_y / logstd_y; past them every class uses the class
        # mean of both, so those dims leave p(y|z) alone (as GaussianMixturePrior's class_dims)
        self.class_dims_n = (dim if class_dims is None else class_dims) - num_classes
        dn = dim - num_classes
        # mu / rho = z_s @ W_s + W_y[y] + b  (W_y absorbs the bias per class)
        self.mean_zs = nn.Parameter(torch.zeros(num_classes, dn))
        self.mean_y = nn.Parameter(torch.zeros(num_classes, dn))
        self.logstd_zs = nn.Parameter(torch.zeros(num_classes, dn))
        self.logstd_y = nn.Parameter(torch.zeros(num_classes, dn))

    def _class_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean_y``, ``logstd_y`` ``[K, D_n]``, tied to their class mean past ``class_dims``."""
        return tie_past(self.mean_y, self.class_dims_n), tie_past(self.logstd_y, self.class_dims_n)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        zs, zn = z[:, : self.k], z[:, self.k :]
        eye = torch.eye(self.k, device=z.device, dtype=z.dtype)
        log_std_s = z.new_full((), math.log(self.sigma_s))
        lp_s = diag_gaussian_logpdf(zs[:, None, :], eye[None], log_std_s)
        mean_y, logstd_y = self._class_terms()
        zs64 = zs.double()  # the affine terms in float64 too: each sums K products per dimension
        lp_n = diag_gaussian_logpdf_all_classes(zn, mean_y, logstd_y, zs64 @ self.mean_zs.double(),
                                                zs64 @ self.logstd_zs.double())
        return lp_s + lp_n

    def sample(self, y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        eye = torch.eye(self.k, device=y.device)
        zs = eye[y] + temperature * self.sigma_s * torch.randn(y.shape[0], self.k, device=y.device)
        mean_y, logstd_y = self._class_terms()
        mean, log_std = zs @ self.mean_zs + mean_y[y], zs @ self.logstd_zs + logstd_y[y]
        zn = mean + temperature * torch.exp(log_std) * torch.randn_like(mean)
        return torch.cat([zs, zn], 1)
