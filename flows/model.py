"""GlowClassifier: a multi-scale Glow with a class-conditional prior (Fetaya et al., App. A, B).

Architecture (Appendix B): input ``x`` ``[N, C, 32, 32]`` in [-0.5, 0.5] -> channel doubling with
uniform noise scaled to [0, 2/256] (``pad_noise="gaussian"``, the cpu presets: the same noise
through the normal quantile; :class:`flows.layers.PadChannels`) -> ``levels`` levels, each
``steps_per_level`` Glow steps (actnorm, LU 1x1 conv, affine coupling) followed by the squeeze at
the END of the level (``squeeze_first``: before the steps, as in Glow, so the steps run at half
the resolution); after every level but the last, half of the squeezed channels are factored out
into the latent. The latent ``z`` (all factored-out parts, the final level first) has
``2*C*32*32`` dimensions and gets a class-conditional prior, so

    log p(x|y) = log p(z(x, e)|y) + log|det dz/d(x, e)|      (Appendix A.1, change of variables)

for every class at once, with ``e`` the padding noise (unit density, so this estimates the density
of ``x`` alone). In ``train()`` mode ``e ~ U[0, 1)`` afresh for every call. In ``eval()`` mode ``e``
is ONE fixed draw from U[0, 1)^(C x 32 x 32) (:func:`flows.pixels.fixed_uniform` with
``EVAL_NOISE_SEED``, the one fixed-noise mechanism), the same for every image, so the output is a
deterministic function of ``x`` while the noise is still a typical sample (the constant midpoint 0.5
is not: it inflates the likelihood and hurts accuracy). Averaged over images, ``log p(x|y)`` is then
an unbiased single-sample estimate of ``E_e log q(x, e|y)``, a lower bound on ``log q(x|y)``. That
deterministic function is what the attacks differentiate; every reported likelihood, accuracy and
threshold instead comes from :func:`flows.scoring.score_images`, which averages over several
draws of the dequantisation and the padding noise (log-mean-exp; see that module).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from flows.config import ModelConfig
from flows.layers import FactorOutPrior, FlowStep, LowPrecisionNet, PadChannels, squeeze, unsqueeze
from flows.pixels import fixed_uniform
from flows.priors import GaussianMixturePrior, SplitPrior

EVAL_NOISE_SEED = 0


class GlowClassifier(nn.Module):
    """Generative classifier: ``forward(x)`` is ``log p(x|y)``  (nats), ``[N, num_classes]``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.in_channels = config.in_channels
        self.image_size = config.image_size
        self.data_dims = config.in_channels * config.image_size * config.image_size
        self.pad = PadChannels(noise=config.pad_noise)
        self.levels = nn.ModuleList()
        self.shapes: list[tuple[int, int, int]] = []  # shape of each factored-out / final part
        self.factor_out = nn.ModuleList()  # learned priors at the splits (empty when disabled)
        c, s = 2 * config.in_channels, config.image_size
        if s % (2**config.levels):
            raise ValueError(f"image size {s} is not divisible by 2**levels = {2**config.levels}")
        self.squeeze_first = config.squeeze_first
        for level in range(config.levels):
            if self.squeeze_first:
                c, s = 4 * c, s // 2
            self.levels.append(
                nn.ModuleList([FlowStep(c, config.hidden) for _ in range(config.steps_at(level))])
            )
            if not self.squeeze_first:
                c, s = 4 * c, s // 2
            if level < config.levels - 1:
                self.shapes.append((c // 2, s, s))
                if config.factor_out_prior:
                    self.factor_out.append(FactorOutPrior(c - c // 2, c // 2))
                c = c // 2
        self.shapes.append((c, s, s))
        self.latent_dims = 2 * self.data_dims
        top = self.shapes[-1][0] * self.shapes[-1][1] * self.shapes[-1][2]  # first in z
        if config.prior == "gmm":
            self.prior: nn.Module = GaussianMixturePrior(
                self.latent_dims, self.num_classes, shared_scale=config.gmm_scale == "shared",
                class_dims=top if config.gmm_class_latent == "top" else None)
        elif config.prior == "split":
            self.prior = SplitPrior(
                self.latent_dims, self.num_classes, config.split_sigma,
                class_dims=top if config.split_class_latent == "top" else None)
        else:
            raise ValueError(f"unknown prior {config.prior!r}")
        self.register_buffer("log_py", torch.full((self.num_classes,), -math.log(self.num_classes)))
        shape = (config.in_channels, config.image_size, config.image_size)
        (noise,) = fixed_uniform(shape, EVAL_NOISE_SEED)
        self.register_buffer("eval_noise", noise, persistent=False)

    def set_autocast(self, dtype: torch.dtype | None) -> None:
        """Run the coupling (and split-prior) networks under autocast with ``dtype``.

        ``None``: full precision. The flow's affine maps, log-determinants, the prior and the loss
        always stay float32 (:class:`flows.layers.LowPrecisionNet`).
        """
        for module in self.modules():
            if isinstance(module, LowPrecisionNet):
                module.autocast_dtype = dtype

    # -- flow -------------------------------------------------------------------------------
    def padding_noise(self, x: torch.Tensor) -> torch.Tensor:
        """Fresh ``U[0,1)`` noise in training mode, the fixed draw ``eval_noise`` in eval mode."""
        if self.training:
            return torch.rand_like(x)
        return self.eval_noise.to(x.dtype).expand_as(x)

    def encode(
        self, x: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, e) -> (z [N, 2D], log|det dz/d(x, e)| [N])``, padding term included."""
        if noise is None:
            noise = self.padding_noise(x)
        h, logdet = self.pad(x, noise)
        parts: list[torch.Tensor] = []
        for i, steps in enumerate(self.levels):
            if self.squeeze_first:
                h = squeeze(h)
            for step in steps:
                h, ld = step(h)
                logdet = logdet + ld
            if not self.squeeze_first:
                h = squeeze(h)
            if i < len(self.levels) - 1:
                half = h.shape[1] // 2
                out, h = h[:, :half], h[:, half:]
                if len(self.factor_out):
                    out, ld = self.factor_out[i](out, h)
                    logdet = logdet + ld
                parts.append(out.flatten(1))
        parts.append(h.flatten(1))
        return torch.cat(parts[::-1], 1), logdet

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`encode`: ``z -> (x, e)``; see :meth:`decode_with_logdet`."""
        x, e, _ = self.decode_with_logdet(z)
        return x, e

    def decode_with_logdet(
        self, z: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z -> (x, e, log|det d(x, e)/dz| [N])``, the inverse of :meth:`encode`.

        The log-determinant is the sum of the layers' inverse log-determinants (padding term
        included), so at ``(x, e) = decode(z)`` it equals ``-encode(x, e)[1]`` (inverse function
        theorem). The density of a sample is ``log q(x, e|y) = log p(z|y)`` minus this
        log-determinant.
        """
        sizes = [c * s * s for c, s, _ in self.shapes]
        chunks = list(torch.split(z, sizes[::-1], 1))[::-1]  # back to level order
        c, s, _ = self.shapes[-1]
        h = chunks[-1].reshape(-1, c, s, s)
        logdet = z.new_zeros(z.shape[0])
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                c, s, _ = self.shapes[i]
                out = chunks[i].reshape(-1, c, s, s)
                if len(self.factor_out):
                    out, ld = self.factor_out[i].inverse(out, h)
                    logdet = logdet + ld
                h = torch.cat([out, h], 1)
            if not self.squeeze_first:
                h = unsqueeze(h)
            for step in reversed(self.levels[i]):
                h, ld = step.inverse(h)
                logdet = logdet + ld
            if self.squeeze_first:
                h = unsqueeze(h)
        (x, e), ld = self.pad.inverse(h)
        return x, e, logdet + ld

    # -- classifier interface ------------------------------------------------------------------
    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(x, e|y)`` in nats for every class, ``[N, num_classes]``.

        ``noise`` is the padding noise ``e`` in ``[0, 1)`` (default: :meth:`padding_noise`). For
        evaluation use :func:`flows.scoring.score_images`, which averages over draws.
        """
        z, logdet = self.encode(x, noise)
        return self.prior(z) + logdet[:, None]

    def log_prior(self) -> torch.Tensor:
        """``log p(y)`` (uniform), shape ``[num_classes]``."""
        return self.log_py

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x, y) = log p(x|y) + log p(y)``; softmax gives ``p(y|x)`` (Bayes rule)."""
        return self.forward(x) + self.log_py

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x) = logsumexp_y log p(x, y)``, shape ``[N]``."""
        return torch.logsumexp(self.logits(x), dim=1)

    @torch.no_grad()
    def sample(self, n: int, y: int | torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Draw ``n`` samples of class ``y`` (int or ``[n]`` tensor), clamped to [-0.5, 0.5]."""
        device = self.log_py.device
        if isinstance(y, int):
            y = torch.full((n,), y, dtype=torch.long, device=device)
        z = self.prior.sample(y.to(device), temperature)
        x, _ = self.decode(z)
        return x.clamp(-0.5, 0.5)
