"""GlowClassifier interface, priors, posteriors, objectives and one optimisation step."""

from __future__ import annotations

import math

import pytest
import torch

from flows.config import OBJECTIVES, ModelConfig, model_config, prior_for
from flows.model import GlowClassifier
from flows.objectives import objective_loss
from flows.priors import GaussianMixturePrior, SplitPrior, diag_gaussian_logpdf


def _model(prior: str = "gmm", image_size: int = 8, channels: int = 1) -> GlowClassifier:
    torch.manual_seed(0)
    cfg = ModelConfig(in_channels=channels, hidden=8, steps_per_level=1, levels=2,
                      image_size=image_size, prior=prior)
    return GlowClassifier(cfg)


def test_paper_interface_shapes() -> None:
    model = GlowClassifier(model_config("tiny", 3, "reweighted"))
    assert model.num_classes == 10 and model.data_dims == 3 * 32 * 32
    x = torch.rand(4, 3, 32, 32) - 0.5
    model.train()
    model(x)
    model.eval()
    lp = model(x)
    assert lp.shape == (4, 10) and torch.isfinite(lp).all()
    assert model.log_prior().shape == (10,)
    torch.testing.assert_close(model.logits(x), lp + model.log_prior())
    torch.testing.assert_close(model.log_prob(x), torch.logsumexp(lp + model.log_prior(), 1))
    samples = model.sample(3, 2)
    assert samples.shape == (3, 3, 32, 32)


def test_sample_decodes_a_prior_draw_of_its_class() -> None:
    """``sample`` is ``decode`` of the class prior's draw: same seed, same images (before the
    clamp), and encoding them with the decoded padding noise gives the draw back."""
    model = GlowClassifier(model_config("tiny", 1, "split")).eval()
    with torch.no_grad():
        model(torch.rand(8, 1, 32, 32) - 0.5)  # actnorm init
    torch.manual_seed(3)
    samples = model.sample(4, 5, temperature=0.3)
    torch.manual_seed(3)
    z = model.prior.sample(torch.full((4,), 5), 0.3)
    x, e = model.decode(z)
    torch.testing.assert_close(samples, x.clamp(-0.5, 0.5))
    z_back, _ = model.encode(x, e)
    torch.testing.assert_close(z_back, z, rtol=1e-4, atol=1e-4)
    # the split prior puts class 5's draw near the one-hot mean: z_s[5] is the largest logit
    assert (z[:, :10].argmax(1) == 5).all()


@pytest.mark.parametrize("prior", ["gmm", "split"])
def test_posteriors_sum_to_one_and_eval_is_deterministic(prior: str) -> None:
    model = _model(prior)
    x = torch.rand(5, 1, 8, 8) - 0.5
    model.train()
    model(x)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.eval()
    post = torch.softmax(model.logits(x), 1)
    torch.testing.assert_close(post.sum(1), torch.ones(5))
    torch.testing.assert_close(model(x), model(x), atol=0, rtol=0)
    model.train()
    assert not torch.equal(model(x), model(x))  # fresh padding noise in training mode


def test_gmm_prior_matches_torch_distributions() -> None:
    prior = GaussianMixturePrior(6, 3)
    with torch.no_grad():
        prior.mean.normal_()
        prior.log_std.normal_(0, 0.3)
    z = torch.randn(4, 6)
    lp = prior(z)
    for k in range(3):
        ref = torch.distributions.Normal(prior.mean[k], prior.log_std[k].exp()).log_prob(z).sum(1)
        torch.testing.assert_close(lp[:, k], ref)


def test_shared_scale_gmm_prior_matches_torch_distributions_and_samples_its_scale() -> None:
    """One scale for every class: each column is ``N(mu_k, diag(sigma^2))``, the class
    log-ratios are affine in ``z`` (LDA), and samples of every class have that scale."""
    torch.manual_seed(0)
    prior = GaussianMixturePrior(6, 3, shared_scale=True)
    assert prior.log_std.shape == (1, 6)
    with torch.no_grad():
        prior.mean.normal_()
        prior.log_std.normal_(0, 0.3)
    z = torch.randn(4, 6, dtype=torch.float64)
    lp = prior.double()(z)
    for k in range(3):
        ref = torch.distributions.Normal(prior.mean[k], prior.log_std[0].exp()).log_prob(z).sum(1)
        torch.testing.assert_close(lp[:, k], ref)
    ratio = lambda z: prior(z)[:, 1] - prior(z)[:, 0]  # noqa: E731
    z2 = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(ratio(0.5 * (z + z2)), 0.5 * (ratio(z) + ratio(z2)))
    y = torch.tensor([0, 2] * 4000)
    draws = prior.float().sample(y) - prior.mean[y].float()
    torch.testing.assert_close(draws.std(0), prior.log_std[0].exp().float(), rtol=0.05, atol=0)


@pytest.mark.parametrize("shared", [False, True])
def test_class_dims_leave_the_posterior_to_the_first_dims(shared: bool) -> None:
    """With ``class_dims = c`` every class has the class mean of the parameters past ``c``:
    each column is ``N`` of those effective parameters, moving ``z[:, c:]`` shifts every class's
    log-density by the same amount, and samples past ``c`` do not depend on the class."""
    torch.manual_seed(1)
    prior = GaussianMixturePrior(7, 3, shared_scale=shared, class_dims=3).double()
    with torch.no_grad():
        prior.mean.normal_()
        prior.log_std.normal_(0, 0.3)
    z = torch.randn(5, 7, dtype=torch.float64)
    lp = prior(z)
    log_std = prior.log_std.expand(3, 7)
    for k in range(3):
        m = torch.cat([prior.mean[k, :3], prior.mean[:, 3:].mean(0)])
        s = torch.cat([log_std[k, :3], log_std[:, 3:].mean(0)])
        torch.testing.assert_close(lp[:, k], torch.distributions.Normal(m, s.exp()).log_prob(z)
                                   .sum(1))
    moved = z.clone()
    moved[:, 3:] += torch.randn(5, 4, dtype=torch.float64)
    shift = prior(moved) - lp
    torch.testing.assert_close(shift, shift[:, :1].expand(5, 3))
    torch.manual_seed(2)
    a = prior.sample(torch.zeros(4, dtype=torch.long))
    torch.manual_seed(2)
    b = prior.sample(torch.full((4,), 2))
    torch.testing.assert_close(a[:, 3:], b[:, 3:])
    assert not torch.allclose(a[:, :3], b[:, :3])
    with pytest.raises(ValueError, match="class_dims"):
        GaussianMixturePrior(7, 3, class_dims=8)


def test_top_class_latent_puts_the_class_in_the_top_level() -> None:
    """``gmm_class_latent="top"``: the class parameters cover exactly the top level's latent
    (first in ``z``); the posterior of an image does not change when only the factored-out
    parts of its latent move."""
    cfg = ModelConfig(hidden=8, steps_per_level=1, levels=2, image_size=8,
                      gmm_class_latent="top", gmm_scale="shared")
    model = GlowClassifier(cfg)
    c, s, _ = model.shapes[-1]
    assert model.prior.class_dims == c * s * s < model.latent_dims
    with torch.no_grad():
        model.prior.mean.normal_()
    z = torch.randn(3, model.latent_dims)
    moved = z.clone()
    moved[:, c * s * s:] += 1.0
    torch.testing.assert_close(torch.log_softmax(model.prior(z), 1),
                               torch.log_softmax(model.prior(moved), 1))
    with pytest.raises(ValueError, match="need the gmm prior"):
        ModelConfig(prior="split", gmm_class_latent="top")


def test_mixture_state_from_pools_and_broadcasts_scales() -> None:
    """Per-class scales enter a shared-scale prior as the pooled within-class variance
    ``mean_k sigma_k^2``; a shared scale enters a per-class prior as every class's scale."""
    per_class = GaussianMixturePrior(5, 4)
    with torch.no_grad():
        per_class.mean.normal_()
        per_class.log_std.normal_(0, 0.7)
    state = {k: v.detach().clone() for k, v in per_class.state_dict().items()}
    shared = GaussianMixturePrior(5, 4, shared_scale=True)
    pooled, how = shared.state_from(state)
    assert how == "pooled"
    var = per_class.log_std.detach().double().mul(2).exp().mean(0)
    torch.testing.assert_close(pooled["log_std"][0].double(), 0.5 * var.log())
    assert torch.equal(pooled["mean"], state["mean"])
    shared.load_state_dict(pooled)
    back, how = GaussianMixturePrior(5, 4).state_from(shared.state_dict())
    assert how == "broadcast" and back["log_std"].shape == (4, 5)
    assert torch.equal(back["log_std"], shared.log_std.detach().expand(4, 5))
    assert shared.state_from(shared.state_dict())[1] == "loaded"


def test_gmm_prior_is_exact_far_from_the_mean_and_at_large_dimension() -> None:
    """The expanded quadratic form (float64) against the float64 broadcast, where float32
    cancellation between its terms would show: 6144 dimensions, means of size 10, z near and far
    from them; gradients agree with those of the broadcast form."""
    torch.manual_seed(0)
    prior = GaussianMixturePrior(6144, 10)
    with torch.no_grad():
        prior.mean.normal_(0, 10.0)
        prior.log_std.normal_(0, 0.5)
    z = torch.cat([prior.mean[:3].detach() + 1e-3 * torch.randn(3, 6144), torch.randn(3, 6144)])
    z.requires_grad_(True)
    lp = prior(z)
    assert lp.dtype == torch.float32 and lp.shape == (6, 10)
    ref = diag_gaussian_logpdf(z.double()[:, None], prior.mean.double()[None],
                               prior.log_std.double()[None])
    torch.testing.assert_close(lp.double(), ref, atol=0, rtol=2e-7)  # float32 rounding only
    w = torch.randn(6, 10)
    grads = torch.autograd.grad((lp * w).sum(), (z, prior.mean, prior.log_std))
    refs = torch.autograd.grad((ref * w.double()).sum(), (z, prior.mean, prior.log_std))
    for g, r in zip(grads, refs, strict=True):
        torch.testing.assert_close(g, r.float(), rtol=1e-5, atol=1e-4)


def test_split_prior_matches_factorisation() -> None:
    prior = SplitPrior(7, 3, sigma_s=0.5)
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 0.2)
    z = torch.randn(4, 7)
    lp = prior(z)
    zs, zn = z[:, :3], z[:, 3:]
    for k in range(3):
        mean_s = torch.nn.functional.one_hot(torch.tensor(k), 3).float()
        ref_s = torch.distributions.Normal(mean_s, 0.5).log_prob(zs).sum(1)
        mean_n = zs @ prior.mean_zs + prior.mean_y[k]
        std_n = (zs @ prior.logstd_zs + prior.logstd_y[k]).exp()
        ref_n = torch.distributions.Normal(mean_n, std_n).log_prob(zn).sum(1)
        torch.testing.assert_close(lp[:, k], ref_s + ref_n)
    # the z_s part behaves like logits: differences between classes are (z_s[i]-z_s[j])/sigma^2
    with torch.no_grad():
        for p in prior.parameters():
            p.zero_()
    lp = prior(z)
    torch.testing.assert_close(lp[:, 0] - lp[:, 1], (zs[:, 0] - zs[:, 1]) / 0.25)


def test_split_prior_is_exact_far_from_the_mean_and_at_large_dimension() -> None:
    """The split prior's expanded quadratic form (per-sample and per-class means and scales,
    float64) against the float64 ``[N, K, D]`` broadcast, at CIFAR-10's 6144 latent dimensions,
    z near and far from the class means; gradients agree with those of the broadcast form."""
    torch.manual_seed(1)
    prior = SplitPrior(6144, 10, sigma_s=0.5)
    with torch.no_grad():
        prior.mean_y.normal_(0, 10.0)
        prior.logstd_y.normal_(0, 0.5)
        prior.mean_zs.normal_(0, 1.0)
        prior.logstd_zs.normal_(0, 0.05)
    zs = torch.randn(6, 10)
    near = zs[:3] @ prior.mean_zs.detach() + prior.mean_y[:3].detach() + 1e-3 * torch.randn(3, 6134)
    z = torch.cat([zs, torch.cat([near, torch.randn(3, 6134)])], 1).requires_grad_(True)
    lp = prior(z)
    assert lp.dtype == torch.float32 and lp.shape == (6, 10)
    params = (z, prior.mean_y, prior.logstd_y, prior.mean_zs, prior.logstd_zs)

    def broadcast(z64: torch.Tensor) -> torch.Tensor:
        zs64, zn64 = z64[:, :10], z64[:, 10:]
        eye = torch.eye(10, dtype=torch.float64)
        lp_s = diag_gaussian_logpdf(zs64[:, None], eye[None],
                                    torch.tensor(math.log(0.5), dtype=torch.float64))
        mean = (zs64 @ prior.mean_zs.double())[:, None] + prior.mean_y.double()[None]
        log_std = (zs64 @ prior.logstd_zs.double())[:, None] + prior.logstd_y.double()[None]
        return lp_s + diag_gaussian_logpdf(zn64[:, None], mean, log_std)

    ref = broadcast(z.double())
    torch.testing.assert_close(lp.double(), ref, atol=0, rtol=2e-7)  # float32 rounding only
    w = torch.randn(6, 10)
    grads = torch.autograd.grad((lp * w).sum(), params)
    refs = torch.autograd.grad((ref * w.double()).sum(), params)
    for g, r in zip(grads, refs, strict=True):
        torch.testing.assert_close(g, r.float(), rtol=1e-5, atol=1e-4)


def test_split_prior_class_dims_leave_the_posterior_to_the_top_level() -> None:
    """With ``class_dims = c`` the split prior's class terms past ``c`` are their class mean:
    each column is the factorisation with those tied terms, and moving ``z[:, c:]`` shifts every
    class's log-density by the same amount (``p(y|z)`` unchanged)."""
    torch.manual_seed(4)
    prior = SplitPrior(9, 3, sigma_s=0.5, class_dims=5).double()
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0, 0.3)
    z = torch.randn(4, 9, dtype=torch.float64)
    lp = prior(z)
    zs, zn = z[:, :3], z[:, 3:]
    for k in range(3):
        m_y = torch.cat([prior.mean_y[k, :2], prior.mean_y[:, 2:].mean(0)])
        s_y = torch.cat([prior.logstd_y[k, :2], prior.logstd_y[:, 2:].mean(0)])
        ref_s = torch.distributions.Normal(
            torch.nn.functional.one_hot(torch.tensor(k), 3).double(), 0.5).log_prob(zs).sum(1)
        ref_n = torch.distributions.Normal(zs @ prior.mean_zs + m_y,
                                           (zs @ prior.logstd_zs + s_y).exp()).log_prob(zn).sum(1)
        torch.testing.assert_close(lp[:, k], ref_s + ref_n)
    moved = z.clone()
    moved[:, 5:] += torch.randn(4, 4, dtype=torch.float64)
    shift = prior(moved) - lp
    torch.testing.assert_close(shift, shift[:, :1].expand(4, 3))
    with pytest.raises(ValueError, match="class_dims"):
        SplitPrior(9, 3, class_dims=3)
    with pytest.raises(ValueError, match="needs the split prior"):
        ModelConfig(prior="gmm", split_class_latent="top")
    model = GlowClassifier(ModelConfig(hidden=8, steps_per_level=1, levels=2, image_size=8,
                                       prior="split", split_class_latent="top"))
    c, s_, _ = model.shapes[-1]
    assert model.prior.class_dims_n == c * s_ * s_ - model.num_classes


def test_objectives_match_equations() -> None:
    torch.manual_seed(0)
    lp = torch.randn(6, 10) * 5 - 700
    y = torch.arange(6) % 10
    log_py = torch.full((10,), -math.log(10))
    d = 1024
    joint = lp + log_py
    log_post = torch.log_softmax(joint, 1)[torch.arange(6), y]
    base = objective_loss(lp, y, log_py, "base", d)
    torch.testing.assert_close(base, (-joint[torch.arange(6), y] / d).mean())
    rew = objective_loss(lp, y, log_py, "reweighted", d)
    torch.testing.assert_close(rew, (-lp[torch.arange(6), y] / d - log_post).mean())  # Eq. (6)
    torch.testing.assert_close(objective_loss(lp, y, log_py, "split", d), rew)
    ramped = objective_loss(lp, y, log_py, "reweighted", d, ce_weight=0.25)  # during a ramp
    torch.testing.assert_close(ramped, (-lp[torch.arange(6), y] / d - 0.25 * log_post).mean())
    assert objective_loss(lp, y, log_py, "reweighted", d, ce_weight=1.0).item() == rew.item()
    ib = objective_loss(lp, y, log_py, "ib", d, beta=3.0)
    torch.testing.assert_close(ib, (-torch.logsumexp(joint, 1) / d - 3.0 * log_post).mean())
    with pytest.raises(ValueError):
        objective_loss(lp, y, log_py, "nope", d)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_one_step_lowers_loss(objective: str) -> None:
    model = _model(prior_for(objective))
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 8, 8, generator=gen) - 0.5
    y = torch.arange(16) % 10
    model.train()
    model(x)  # actnorm init
    model.eval()  # deterministic padding noise so both evaluations see the same function
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def loss_fn() -> torch.Tensor:
        return objective_loss(model(x), y, model.log_prior(), objective, model.data_dims)

    before = loss_fn()
    opt.zero_grad()
    before.backward()
    opt.step()
    with torch.no_grad():
        after = loss_fn()
    assert float(after) < float(before.detach())


def test_eval_noise_is_a_fixed_typical_draw() -> None:
    a, b = _model(), _model("split")
    x = torch.zeros(3, 1, 8, 8)
    a.eval()
    b.eval()
    ea, eb = a.padding_noise(x), b.padding_noise(x)
    assert torch.equal(ea, eb) and torch.equal(ea[0], ea[2])  # fixed, shared by all images
    assert 0.0 <= float(ea.min()) and float(ea.max()) < 1.0 and float(ea.std()) > 0.2
    assert "eval_noise" not in a.state_dict()  # derived from the seed, not stored


@pytest.mark.slow
def test_training_forward_has_no_graph_break() -> None:
    """torch.compile sees the whole training forward as one graph (actnorm initialised eagerly,
    its readiness a Python flag; bf16 coupling networks included)."""
    torch.manual_seed(0)
    model = GlowClassifier(ModelConfig(in_channels=1, hidden=4, steps_per_level=1, levels=2,
                                       image_size=8, factor_out_prior=True))
    model.set_autocast(torch.bfloat16)
    x = torch.rand(4, 1, 8, 8) - 0.5
    model.train()
    model(x)  # eager data-dependent initialisation, as flows.train does before compiling
    explained = torch._dynamo.explain(model)(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_fast_path_matches_float32_reference() -> None:
    """channels_last changes nothing but the memory layout; bf16 couplings move log p(x|y) by a
    small relative amount only (the flow, log-dets and prior stay float32)."""
    torch.manual_seed(0)
    model = GlowClassifier(ModelConfig(in_channels=3, hidden=16, steps_per_level=2, levels=2,
                                       image_size=8, factor_out_prior=True))
    x = torch.rand(6, 3, 8, 8) - 0.5
    model.train()
    model(x)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    e = torch.rand_like(x)
    ref = model(x, noise=e)
    model.to(memory_format=torch.channels_last)
    cl = model(x.contiguous(memory_format=torch.channels_last), noise=e)
    torch.testing.assert_close(cl, ref, rtol=1e-5, atol=1e-3)
    model.set_autocast(torch.bfloat16)
    low = model(x, noise=e)
    assert low.dtype == torch.float32
    rel = ((low - ref).abs() / ref.abs()).max().item()
    assert 0 < rel < 1e-2, rel
