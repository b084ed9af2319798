"""Invertibility and exact log-determinants (float64 autograd Jacobians) of every layer.

Both directions return ``(output, logdet)``: for every layer the inverse's logdet is checked to be
minus the forward's at the matching point and log|det| of the inverse map's autograd Jacobian.
"""

from __future__ import annotations

import math

import pytest
import torch

from flows.config import ModelConfig
from flows.layers import (
    ActNorm,
    AffineCoupling,
    FactorOutPrior,
    FlowStep,
    InvConv1x1,
    PadChannels,
    squeeze,
    unsqueeze,
)
from flows.model import GlowClassifier
from flows.pixels import pixel_scale_logdet


def _perturb(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _jacobian_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det d fn(x)/dx| per sample, via a dense float64 autograd Jacobian."""
    out = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v: fn(v).flatten(), xi)
        out.append(torch.linalg.slogdet(jac.reshape(jac.shape[0], -1))[1])
    return torch.stack(out)


LAYERS = {
    "actnorm": lambda c: ActNorm(c),
    "invconv": lambda c: InvConv1x1(c),
    "coupling": lambda c: AffineCoupling(c, 8),
    "coupling-odd": lambda c: AffineCoupling(c + 1, 8),
    "step": lambda c: FlowStep(c, 8),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_inverse_and_logdet(name: str) -> None:
    torch.manual_seed(0)
    layer = LAYERS[name](4).double()
    c = 5 if name == "coupling-odd" else 4
    x = torch.randn(3, c, 4, 4, dtype=torch.float64)
    layer.train()
    layer(x)  # actnorm data-dependent initialisation
    _perturb(layer)
    layer.eval()
    y, logdet = layer(x)
    assert y.shape == x.shape and logdet.shape == (3,)
    xr, logdet_inv = layer.inverse(y)
    assert logdet_inv.shape == (3,)
    torch.testing.assert_close(xr, x, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(logdet, _jacobian_logdet(lambda v: layer(v)[0], x),
                               atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(logdet_inv, _jacobian_logdet(lambda v: layer.inverse(v)[0], y),
                               atol=1e-8, rtol=1e-8)


def test_actnorm_data_dependent_init() -> None:
    layer = ActNorm(3)
    x = torch.randn(64, 3, 8, 8) * torch.tensor([1.0, 5.0, 0.1])[:, None, None] + 2.0
    layer.train()
    y, _ = layer(x)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3,
                               rtol=0)
    assert bool(layer.initialized)
    bias = layer.bias.clone()
    layer(x + 10)  # no re-initialisation
    torch.testing.assert_close(layer.bias, bias)


def test_invconv_weight_matches_lu_logdet() -> None:
    layer = InvConv1x1(6).double()
    _perturb(layer)
    torch.testing.assert_close(torch.linalg.slogdet(layer.weight())[1], layer.log_s.sum())


def test_squeeze_roundtrip_is_permutation() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float64).view(2, 3, 4, 4)
    z = squeeze(x)
    assert z.shape == (2, 12, 2, 2)
    torch.testing.assert_close(unsqueeze(z), x)
    assert sorted(z.flatten().tolist()) == sorted(x.flatten().tolist())


@pytest.mark.parametrize("noise", ["uniform", "gaussian"])
def test_pad_channels_logdet_matches_jacobian(noise: str) -> None:
    pad = PadChannels(noise=noise)
    x = torch.rand(2, 1, 3, 3, dtype=torch.float64) - 0.5
    e = torch.rand(2, 1, 3, 3, dtype=torch.float64)
    y, logdet = pad(x, e)
    assert y.shape == (2, 2, 3, 3)
    xe = torch.cat([x, e], 1)
    expected = _jacobian_logdet(lambda v: pad(v[:, :1], v[:, 1:])[0], xe)
    torch.testing.assert_close(logdet, expected)
    if noise == "uniform":
        assert float(y[:, 1:].max()) <= 2 / 256
        torch.testing.assert_close(logdet,
                                   torch.full((2,), 9 * math.log(2 / 256), dtype=torch.float64))
    (xr, er), logdet_inv = pad.inverse(y)
    torch.testing.assert_close(xr, x)
    torch.testing.assert_close(er, e)
    torch.testing.assert_close(logdet_inv, -logdet)
    expected_inv = _jacobian_logdet(lambda v: torch.cat(pad.inverse(v)[0], 1), y)
    torch.testing.assert_close(logdet_inv, expected_inv)


def test_gaussian_padding_is_the_normal_quantile_of_the_uniform_noise() -> None:
    """``t(e) = sigma Phi^-1(d + (1 - 2d) e)``: the median maps to 0, ``Phi(1)`` to about one
    ``sigma = (2/256)/sqrt(12)``; ``e = 0`` and the largest float32 below 1 stay finite (the
    float32 noise of training hits 0 about once per 2^24 draws), and the inverse returns them."""
    pad = PadChannels(noise="gaussian")
    sigma = (2 / 256) / math.sqrt(12)
    below_one = 1.0 - 2.0**-24
    e = torch.tensor([0.5, 0.8413447460685429, 0.0, below_one]).view(1, 1, 2, 2)
    y, logdet = pad(torch.zeros_like(e), e)
    g = y[0, 1].flatten().double() / sigma
    assert g[0] == 0.0 and abs(float(g[1]) - 1.0) < 1e-6
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(logdet).all())
    assert -5.6 < float(g[2]) < -5.2 and 5.0 < float(g[3]) < 5.6
    (_, er), logdet_inv = pad.inverse(y)
    torch.testing.assert_close(er, e, atol=1e-6, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-4, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown padding noise"):
        PadChannels(noise="laplace")
    with pytest.raises(ValueError, match="unknown padding noise"):
        ModelConfig(pad_noise="laplace")


def test_pixel_scale_logdet_matches_jacobian() -> None:
    v = torch.rand(1, 1, 3, 3, dtype=torch.float64) * 256
    expected = _jacobian_logdet(lambda t: t / 256 - 0.5, v)
    assert math.isclose(pixel_scale_logdet(9), float(expected[0]), rel_tol=1e-12)


def test_factor_out_prior_inverse_and_logdet() -> None:
    """u = (z - mu(h)) exp(-s(h)) given h: exact inverse, logdet = -sum s = autograd Jacobian."""
    torch.manual_seed(0)
    layer = FactorOutPrior(3, 2).double()
    _perturb(layer)
    z = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    h = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    u, logdet = layer(z, h)
    zr, logdet_inv = layer.inverse(u, h)
    torch.testing.assert_close(zr, z, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-10, rtol=1e-10)
    for i in range(3):  # per sample (h differs between samples)
        ld = _jacobian_logdet(lambda v, i=i: layer(v, h[i : i + 1])[0], z[i : i + 1])
        torch.testing.assert_close(logdet[i : i + 1], ld, atol=1e-8, rtol=1e-8)
        ld_inv = _jacobian_logdet(lambda v, i=i: layer.inverse(v, h[i : i + 1])[0], u[i : i + 1])
        torch.testing.assert_close(logdet_inv[i : i + 1], ld_inv, atol=1e-8, rtol=1e-8)
    # as a density: log N(z; mu, sigma) = log N(u; 0, 1) + logdet
    out = layer.net(h)
    mu, logs = out[:, 0::2], out[:, 1::2]
    ref = torch.distributions.Normal(mu, logs.exp()).log_prob(z).flatten(1).sum(1)
    std = torch.distributions.Normal(0.0, 1.0).log_prob(u).flatten(1).sum(1)
    torch.testing.assert_close(std + logdet, ref)


def test_actnorm_ready_flag_follows_state_dict() -> None:
    a, b = ActNorm(2), ActNorm(2)
    a.train()
    a(torch.randn(8, 2, 3, 3))
    assert a.ready and not b.ready
    b.load_state_dict(a.state_dict())
    assert b.ready


@pytest.mark.parametrize("prior,factor_out,first,squeeze_first,pad_noise", [
    ("gmm", False, -1, False, "uniform"), ("split", False, -1, False, "uniform"),
    ("gmm", True, -1, False, "uniform"), ("split", True, -1, False, "uniform"),
    ("gmm", True, 1, False, "uniform"), ("split", False, 2, False, "uniform"),
    ("gmm", True, -1, True, "uniform"), ("split", True, 2, True, "uniform"),
    ("gmm", False, -1, True, "uniform"), ("gmm", True, -1, False, "gaussian"),
    ("split", True, 2, True, "gaussian")])
def test_whole_flow_inverse_and_logdet(prior: str, factor_out: bool, first: int,
                                       squeeze_first: bool, pad_noise: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(in_channels=1, hidden=4, steps_per_level=1, levels=2, image_size=8,
                      prior=prior, factor_out_prior=factor_out, first_level_steps=first,
                      squeeze_first=squeeze_first, pad_noise=pad_noise)
    model = GlowClassifier(cfg).double()
    assert [len(steps) for steps in model.levels] == [1 if first < 0 else first, 1]
    # the first level's steps act on 8 padded channels at 4x4 (squeeze first) or 2 at 8x8
    assert model.levels[0][0].layers[0].bias.shape[1] == (8 if squeeze_first else 2)
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64) - 0.5
    model.train()
    model(x)
    _perturb(model, 0.1)
    model.eval()
    e = torch.rand_like(x)
    z, logdet = model.encode(x, e)
    assert z.shape == (2, 2 * 64)
    xr, er = model.decode(z)
    torch.testing.assert_close(xr, x, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(er, e, atol=1e-9, rtol=1e-9)
    xe = torch.cat([x, e], 1)
    expected = _jacobian_logdet(lambda v: model.encode(v[:, :1], v[:, 1:])[0], xe)
    torch.testing.assert_close(logdet, expected, atol=1e-7, rtol=1e-9)
    # decode accumulates the inverse log-determinants: log|det d(x, e)/dz| = -log|det dz/d(x, e)|
    xd, ed, logdet_inv = model.decode_with_logdet(z)
    torch.testing.assert_close(torch.cat([xd, ed], 1), xe, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-9, rtol=1e-9)
    expected_inv = _jacobian_logdet(lambda v: torch.cat(model.decode(v), 1), z)
    torch.testing.assert_close(logdet_inv, expected_inv, atol=1e-7, rtol=1e-9)


def test_no_flow_step_at_full_resolution_is_refused() -> None:
    """With 0 steps at the first level, the factored-out half after the first squeeze would be
    the image itself (PadChannels puts x first), modelled by no flow at all."""
    with pytest.raises(ValueError, match="first_level_steps 0"):
        ModelConfig(first_level_steps=0)


@pytest.mark.parametrize("channels", [2, 3, 8])
def test_set_identity_makes_a_trained_step_the_identity(channels: int) -> None:
    """After ``set_identity`` a (perturbed, i.e. trained-looking) step maps ``x`` to itself with
    log-determinant 0, in both directions, float64; its parameters still get gradients."""
    step = FlowStep(channels, 6).double()
    _perturb(step)
    x = torch.randn(3, channels, 4, 4, dtype=torch.float64)
    assert not torch.allclose(step(x)[0], x)
    step.set_identity()
    y, logdet = step(x)
    torch.testing.assert_close(y, x, rtol=0, atol=1e-14)
    torch.testing.assert_close(logdet, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
    back, logdet_inv = step.inverse(x)
    torch.testing.assert_close(back, x, rtol=0, atol=1e-14)
    torch.testing.assert_close(logdet_inv, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-12)
    step.train()  # initialised: no data-dependent initialisation overwrites it
    (step(x)[0] ** 2).sum().backward()
    assert step.layers[2].net[-1].conv.weight.grad.abs().sum() > 0
    torch.testing.assert_close(step(x)[0], x, rtol=0, atol=1e-14)
