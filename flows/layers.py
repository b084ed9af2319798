"""Invertible layers of Glow (Kingma & Dhariwal, 2018) as used in Appendix B of Fetaya et al.

Every layer returns ``(output, logdet)`` in both directions, as nflows and FrEIA do:
``forward(x) -> (y, logdet)`` with ``logdet = log|det dy/dx|`` per sample (shape ``[N]``), and the
exact ``inverse(y) -> (x, logdet_inv)`` with ``logdet_inv = log|det dx/dy| = -logdet(x)`` (inverse
function theorem: ``dx/dy = (dy/dx)^-1`` at ``x = inverse(y)``). Conditional layers take their
context in both directions (``forward(z, h)``, ``inverse(u, h)``). Change of variables (Fetaya et
al., Appendix A.1): ``log p(x) = log p(z) + sum_i log|det J_i|``. :func:`squeeze` and
:func:`unsqueeze` are permutations (``logdet = 0``) and return the tensor alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from flows.config import PAD_NOISES
from flows.priors import LOG_2PI


class ActNorm(nn.Module):
    """Per-channel affine ``y = x * exp(s) + b``; ``logdet = H*W*sum(s)``.

    Inverse ``x = (y - b) * exp(-s)`` with ``logdet_inv = -H*W*sum(s)``.

    The bias is applied after the scale (Glow applies it before): then both parameters act in
    normalised units, which keeps Adam steps well conditioned on the padded channels whose raw
    range is only 2/256.

    Data-dependent initialisation: on the first forward pass in training mode, ``b`` and ``s`` are
    set so the batch has zero mean and unit variance per channel.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        # A Python mirror of the buffer, so the training step reads no tensor to decide (no
        # graph break under torch.compile); kept in sync when a state dict is loaded.
        self.ready = False
        self.register_load_state_dict_post_hook(_sync_ready)

    @torch.no_grad()
    def _init(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        logs = -torch.log(std + 1e-6)
        self.logs.copy_(logs)
        self.bias.copy_(-mean * torch.exp(logs))
        self.initialized.fill_(True)
        self.ready = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not self.ready:
            self._init(x)
        h, w = x.shape[2:]
        y = x * torch.exp(self.logs) + self.bias
        logdet = (h * w) * self.logs.sum() * x.new_ones(x.shape[0])
        return y, logdet

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = y.shape[2:]
        x = (y - self.bias) * torch.exp(-self.logs)
        logdet = -(h * w) * self.logs.sum() * y.new_ones(y.shape[0])
        return x, logdet


def _sync_ready(module: nn.Module, incompatible_keys: object) -> None:
    del incompatible_keys
    module.ready = bool(module.initialized)


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution, LU-decomposed: ``W = P L (U + diag(sign * exp(log_s)))``.

    ``logdet = H*W*sum(log_s)``; ``P`` (permutation) and ``sign`` are fixed, ``L`` is unit lower
    triangular, ``U`` strictly upper triangular. Initialised from a random rotation. The inverse
    convolves with ``W^-1`` (computed in float64): ``logdet_inv = -H*W*sum(log_s)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        w0 = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        p, lower, upper = torch.linalg.lu(w0)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[2:]
        weight = self.weight().to(x.dtype)
        y = F.conv2d(x, weight[:, :, None, None])
        logdet = (h * w) * self.log_s.sum() * x.new_ones(x.shape[0])
        return y, logdet

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = y.shape[2:]
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        logdet = -(h * w) * self.log_s.sum() * y.new_ones(y.shape[0])
        return F.conv2d(y, w_inv[:, :, None, None]), logdet


class ZeroConv2d(nn.Module):
    """3x3 convolution initialised to zero with a learned output scale ``exp(3 * logscale)``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logscale = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * torch.exp(3.0 * self.logscale)


class LowPrecisionNet(nn.Module):
    """Base of layers whose *network* (not the flow) may run under autocast.

    ``autocast_dtype = torch.bfloat16`` runs ``self.net`` in bf16 and returns float32; the affine
    map, its log-determinant and everything downstream stay float32.
    """

    autocast_dtype: torch.dtype | None = None

    def run_net(self, h: torch.Tensor) -> torch.Tensor:
        if self.autocast_dtype is None:
            return self.net(h)
        with torch.autocast(device_type=h.device.type, dtype=self.autocast_dtype):
            out = self.net(h)
        return out.float()


class AffineCoupling(LowPrecisionNet):
    """Affine coupling (Fetaya et al., Eq. 5): ``y_a = x_a``, ``y_b = (x_b + t(x_a)) * s(x_a)``.

    ``s = sigmoid(h + 2)`` (Glow), so ``logdet = sum log s``. ``x_a`` is the first ``C//2``
    channels. Inverse: ``x_a = y_a``, ``x_b = y_b / s(y_a) - t(y_a)``, ``logdet_inv = -sum log s``
    (``s``, ``t`` depend only on ``x_a = y_a``, so this is minus the forward logdet at ``x``).
    The network is conv3x3 -> ReLU -> conv1x1 -> ReLU -> zero-initialised conv3x3, so the layer
    starts close to the identity.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.ca = channels // 2
        self.cb = channels - self.ca
        self.net = nn.Sequential(
            nn.Conv2d(self.ca, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            ZeroConv2d(hidden, 2 * self.cb),
        )

    def _shift_scale(self, xa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.run_net(xa)
        shift, raw = h[:, 0::2], h[:, 1::2]
        return shift, raw + 2.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, : self.ca], x[:, self.ca :]
        shift, raw = self._shift_scale(xa)
        yb = (xb + shift) * torch.sigmoid(raw)
        logdet = F.logsigmoid(raw).flatten(1).sum(1)
        return torch.cat([xa, yb], 1), logdet

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ya, yb = y[:, : self.ca], y[:, self.ca :]
        shift, raw = self._shift_scale(ya)
        logdet = -F.logsigmoid(raw).flatten(1).sum(1)
        return torch.cat([ya, yb / torch.sigmoid(raw) - shift], 1), logdet


class FlowStep(nn.Module):
    """One Glow step: ActNorm -> invertible 1x1 convolution -> affine coupling.

    Both directions sum the log-determinants of the three layers (the inverse runs them in
    reverse order), so ``inverse(y)[1] = -forward(x)[0]`` at ``x = inverse(y)[0]``.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [ActNorm(channels), InvConv1x1(channels), AffineCoupling(channels, hidden)]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = y.new_zeros(y.shape[0])
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y)
            logdet = logdet + ld
        return y, logdet

    @torch.no_grad()
    def set_identity(self) -> None:
        """Make the step the identity map (``y = x``, log-determinant 0), trainable as usual.

        The coupling's zero-initialised output gives ``t = 0`` and ``s = sigmoid(2)`` on the
        second half of the channels; actnorm divides that half by ``sigmoid(2)`` first
        (``logs = log(1 + e^-2)``, bias 0), and the 1x1 convolution is the identity
        (``P = L = I``, ``U = 0``, ``log_s = 0``). Used to deepen a trained model without
        changing its density (``flows.runs.init_from_run(..., grow=True)``).
        """
        actnorm, invconv, coupling = self.layers
        actnorm.bias.zero_()
        actnorm.logs.zero_()
        actnorm.logs[:, coupling.ca:] = math.log1p(math.exp(-2.0))
        actnorm.initialized.fill_(True)
        actnorm.ready = True
        invconv.perm.copy_(invconv.eye)
        invconv.sign_s.fill_(1.0)
        invconv.lower.zero_()
        invconv.upper.zero_()
        invconv.log_s.zero_()
        last = coupling.net[-1]
        last.conv.weight.zero_()
        last.conv.bias.zero_()
        last.logscale.zero_()


class FactorOutPrior(LowPrecisionNet):
    """Glow's learned prior for the half factored out at a split, written as a flow layer.

    At a split the factored-out half ``z`` gets ``N(mu(h), diag(exp(2 s(h))))`` given the kept
    half ``h`` (Kingma & Dhariwal 2018, Sec. 3.4). As a bijection of ``z`` given ``h``:

        u = (z - mu(h)) * exp(-s(h)),    logdet = -sum s(h),

    so ``log N(z; mu, sigma) = log N(u; 0, 1) + logdet`` and the class-conditional prior of
    :mod:`flows.priors` applies to ``u`` unchanged. Inverse given the same ``h``:
    ``z = u * exp(s(h)) + mu(h)``, ``logdet_inv = +sum s(h)``. ``mu, s`` come from a
    zero-initialised 3x3 convolution of ``h`` (the layer starts as the identity).
    """

    def __init__(self, keep_channels: int, out_channels: int) -> None:
        super().__init__()
        self.net = ZeroConv2d(keep_channels, 2 * out_channels)

    def forward(self, z: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.run_net(h)
        mean, logs = out[:, 0::2], out[:, 1::2]
        return (z - mean) * torch.exp(-logs), -logs.flatten(1).sum(1)

    def inverse(self, u: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.run_net(h)
        mean, logs = out[:, 0::2], out[:, 1::2]
        return u * torch.exp(logs) + mean, logs.flatten(1).sum(1)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """Space-to-depth ``[N, C, H, W] -> [N, 4C, H/2, W/2]`` (a permutation: logdet 0)."""
    n, c, h, w = x.shape
    x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`squeeze`."""
    n, c, h, w = x.shape
    x = x.view(n, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c // 4, h * 2, w * 2)


class PadChannels(nn.Module):
    """Channel doubling of Appendix B: ``(x, e) -> cat(x, t(e))`` with ``e ~ U[0, 1)^D``.

    ``noise="uniform"`` (Appendix B): ``t(e) = scale * e`` with ``scale = 2/256``, so the padded
    channels lie in ``[0, 2/256]``; ``logdet = D log(scale)``.

    ``noise="gaussian"``: ``t(e) = sigma * Phi^-1(d + (1 - 2d) e)`` with ``Phi^-1`` the standard
    normal quantile, ``sigma = scale / sqrt(12)`` (the standard deviation of the uniform padding)
    and ``d = 2^-25`` (keeps the argument inside ``(0, 1)`` for ``e = 0``), so the padded channels
    are ``N(0, sigma^2)`` (truncated beyond 5.4 sigma, mass 2d) and a flow can model them exactly
    by leaving them alone, where uniform padding must be bent into the prior's Gaussian shape;
    ``logdet = sum_i [log((1 - 2d) sigma) + log(2 pi)/2 + Phi^-1(.)_i^2 / 2]``, computed in
    float64.

    Either way ``e`` has unit density on ``[0, 1)^D``, so the flow's density of ``(x, t(e))``
    times ``|det dt/de|`` is a density of ``(x, e)``: a (stochastic, lower-bound-in-expectation)
    estimate of ``log p(x)`` (Appendix A.3), and the noise never enters a reported number in any
    other way. The layer has two inputs, so its output in the inverse direction is the pair
    (FrEIA's convention): ``inverse(y) -> ((x, e), logdet_inv)``.
    """

    EDGE = 2.0**-25

    def __init__(self, scale: float = 2.0 / 256.0, noise: str = "uniform") -> None:
        super().__init__()
        if noise not in PAD_NOISES:
            raise ValueError(f"unknown padding noise {noise!r}; expected one of {PAD_NOISES}")
        self.scale = scale
        self.noise = noise
        self.sigma = scale / math.sqrt(12.0)  # gaussian: the uniform padding's std

    def _gauss_logdet(self, g0: torch.Tensor) -> torch.Tensor:
        """``log|dt/de|`` summed per sample, from ``g0 = Phi^-1(d + (1 - 2d) e)`` (float64)."""
        const = math.log((1.0 - 2.0 * self.EDGE) * self.sigma) + 0.5 * LOG_2PI
        return (const + 0.5 * g0 * g0).flatten(1).sum(1)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.noise == "uniform":
            d = noise[0].numel()
            logdet = x.new_full((x.shape[0],), d * math.log(self.scale))
            return torch.cat([x, noise * self.scale], 1), logdet
        g0 = torch.special.ndtri(self.EDGE + (1.0 - 2.0 * self.EDGE) * noise.double())
        padded = (self.sigma * g0).to(x.dtype)
        return torch.cat([x, padded], 1), self._gauss_logdet(g0).to(x.dtype)

    def inverse(self, y: torch.Tensor) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        c = y.shape[1] // 2
        if self.noise == "uniform":
            noise = y[:, c:]
            logdet = y.new_full((y.shape[0],), -noise[0].numel() * math.log(self.scale))
            return (y[:, :c], noise / self.scale), logdet
        g0 = y[:, c:].double() / self.sigma
        e = (torch.special.ndtr(g0) - self.EDGE) / (1.0 - 2.0 * self.EDGE)
        return (y[:, :c], e.to(y.dtype)), -self._gauss_logdet(g0).to(y.dtype)
