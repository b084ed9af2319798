"""Issue 18: does a *trained* conditional flow become the paper's ``q`` (Appendix D)?

We draw ``(x, y) ~ p`` exactly (``annulus.sampling``) from the counter-example of Appendix D,

    p(x|0) = lambda1 U(0,1) + (1-lambda1) U(1, 1+Delta)
    p(x|1) = lambda2 U(0,1) + (1-lambda2) U(2,3)

train a class-conditional masked autoregressive flow ``q_theta(x|y)`` (``zuko.flows.MAF`` with the
one-hot label as context, ``q_theta(y) = 1/2``) by maximum likelihood, and measure it against the
exact ``p`` beside the theorem's model ``q`` (``annulus.construction``) and the Bayes classifier
``p(y|x)`` itself, for several dimensions ``d``.

**lambda1.** ``annulus`` chooses lambda1 per dimension (``canonical_lambda1``), but the proof's
conditions admit one only from the default dimension ``d_default`` on (201 at ``eps=0.1,
delta=1e-3, Delta=0.1``); below it the admissible interval is empty. We therefore use the
canonical lambda1 of ``d_default`` (and the proof's ``lambda2 = delta/(1-delta) lambda1``) at every
``d``, as ``annulus.attack.run_sampling`` does for ``dimension != d_default``; the JSON records,
per ``d``, whether the interval is empty and the certificate's verdict with that lambda1.

**Measurements** (each with a standard error or a 99% Wilson interval, ``wilson_interval``):

* ``KL(p(x,y) || q_theta(x,y)) = E_p[log p(x,y) - log q_theta(x,y)]`` by Monte Carlo with the exact
  float64 ``log p`` (:func:`exact_log_joint`); ``KL(q_theta || p)`` is infinite for any
  full-support ``q_theta`` (a flow with a Gaussian base), since ``p`` vanishes on
  ``1+Delta < ||x|| < 2`` and ``||x|| > 3``; we report the mass ``q_theta`` puts there (sampled);
* accuracy, expected calibration error (equal-width confidence bins) and mean
  ``|q_theta(0|x) - p(0|x)|`` against the Bayes posterior;
* attacks from the shell ``1 <= ||x|| < 1+Delta``, judged by the certificate's properties 1-5
  (:func:`success_predicate`): (a) the theorem's radial map (``annulus.attack.attack``), (b) L2 PGD
  on ``log q_theta(y_p|xbar) + beta relu(median - log q_theta(xbar))``, projected to
  ``||x - xbar|| < Delta``. The same radial attack is judged on the theorem's ``q`` and on ``p``
  (whose densities are piecewise constant: gradients vanish almost everywhere, so (b) does not
  apply to them).

CLI::

    python -m flows.experiments.annulus_flow --out results/annulus_flow/annulus_flow.json \
        [--dims 2 8 32 128 201] [--steps N] [--quick] [--seed S]
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import torch

from annulus.attack import attack
from annulus.certificate import build_certificate
from annulus.construction import Construction, JointModel
from annulus.numeric import log_num, num
from annulus.pieces import PieceTable
from annulus.proposition import (
    Params,
    admissible,
    canonical_lambda1,
    minimal_dimension_search,
)
from annulus.sampling import sample
from flows.provenance import Provenance, write_result
from foundation import cli, errors
from foundation.intervals import wilson_interval

MODULE = "flows.experiments.annulus_flow"
PROG = f"python -m {MODULE}"
DEFAULT_DIMS = (2, 8, 32, 128, 201)
#: Properties of Proposition 1 (as numbered by ``annulus.verify``).
PROPS = ("1", "2", "3", "4", "5")
KL_Q_P_NOTE = ("KL(q_theta || p) is +infinity for every full-support q_theta (a flow with a "
               "Gaussian base): p(x, y) = 0 on 1+Delta < ||x|| < 2, ||x|| > 3 (and for y=0 on "
               "||x|| > 1+Delta) where q_theta > 0; the sampled mass there is reported instead")


# -- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FlowConfig:
    """``zuko.flows.MAF(d, context=2, transforms, hidden_features)`` trained by Adam on
    ``-mean log q_theta(x|y)`` for ``steps`` minibatches of ``batch`` from ``n_train`` draws."""

    transforms: int = 4
    hidden: int = 128
    steps: int = 1500
    batch: int = 256
    lr: float = 1e-3
    n_train: int = 20000


@dataclass(frozen=True)
class EvalConfig:
    """Sample sizes: ``n_eval`` draws of ``p`` (KL, calibration, median), ``n_attack`` shell points
    attacked, ``n_model`` draws of ``q_theta``; PGD with ``pgd_steps`` steps, weight ``beta``."""

    n_eval: int = 4000
    n_attack: int = 1000
    n_model: int = 2000
    pgd_steps: int = 30
    beta: float = 1.0
    ece_bins: int = 10


@dataclass(frozen=True)
class Config:
    """The whole experiment: targets of Proposition 1, dimensions, seed, flow and evaluation."""

    eps: Fraction = Fraction(1, 10)
    delta: Fraction = Fraction(1, 1000)
    Delta: Fraction = Fraction(1, 10)
    dims: tuple[int, ...] = DEFAULT_DIMS
    seed: int = 0
    flow: FlowConfig = field(default_factory=FlowConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def params(self) -> Params:
        return Params(self.eps, self.delta, self.Delta)


QUICK = Config(dims=(2, 8), flow=FlowConfig(transforms=1, hidden=16, steps=20, batch=64,
                                            n_train=256),
               eval=EvalConfig(n_eval=300, n_attack=40, n_model=100, pgd_steps=3))


# -- the exact density of p in float64 ---------------------------------------------------------
def log_unit_ball_volume(d: int) -> float:
    """``log V_d = (d/2) log(pi) - log Gamma(d/2 + 1)``."""
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def log_annulus_volume(a: float, b: float, d: int) -> float:
    """``log(V_d (b^d - a^d)) = log V_d + d log b + log(-expm1(d log(a/b)))`` (no ``b**d``)."""
    tail = 0.0 if a == 0 else math.log(-math.expm1(d * math.log(a / b)))
    return log_unit_ball_volume(d) + d * math.log(b) + tail


@dataclass(frozen=True)
class ExactJoint:
    """``log m(x, y)`` in float64 for a radial joint model of ``annulus`` (``p`` or ``q``):
    ``log m(y) + logsumexp_k [log w_k - log vol(a_k <= ||x|| <= b_k)]`` over the components
    whose closed annulus contains ``||x||``, ``-inf`` where none does."""

    d: int
    log_prior: tuple[float, float]
    comps: tuple[tuple[tuple[float, float, float], ...], ...]  # per y: (log w, a, b)

    @classmethod
    def of(cls, model: JointModel) -> ExactJoint:
        with mpmath.mp.workdps(30):
            comps = tuple(tuple((float(log_num(mpmath.mp, w)), float(ann.a), float(ann.b))
                                for w, ann in cond.components)
                          for cond in model.conditionals)
        return cls(model.d, tuple(math.log(float(p)) for p in model.prior), comps)

    def log_joint(self, r: np.ndarray) -> np.ndarray:
        """``[n, 2]`` array of ``log m(x, y)`` for radii ``r = ||x||``."""
        r = np.asarray(r, dtype=np.float64)
        out = np.full((r.size, 2), -np.inf)
        for y, comps in enumerate(self.comps):
            for log_w, a, b in comps:
                if log_w == -math.inf:
                    continue
                inside = (r >= a) & (r <= b)
                term = log_w - log_annulus_volume(a, b, self.d)
                out[inside, y] = np.logaddexp(out[inside, y], term)
            out[:, y] += self.log_prior[y]
        return out

    def log_marginal(self, r: np.ndarray) -> np.ndarray:
        """``log m(x) = logsumexp_y log m(x, y)``."""
        return np.logaddexp.reduce(self.log_joint(r), axis=1)

    def posterior(self, r: np.ndarray) -> np.ndarray:
        """``[n, 2]`` Bayes posterior ``m(y|x)`` (nan off the support)."""
        lj = self.log_joint(r)
        lm = np.logaddexp.reduce(lj, axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            return np.exp(lj - lm)


def exact_log_joint(con: Construction, r: np.ndarray) -> np.ndarray:
    """``log p(x, y)`` (``[n, 2]``, float64) of the construction's data distribution."""
    return ExactJoint.of(con.p).log_joint(r)


# -- the success predicate of the certificate ------------------------------------------------
def lower_median(values: np.ndarray) -> float:
    """The ``ceil(n/2)``-th smallest value (the certificate's lower median)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    return float(v[(len(v) + 1) // 2 - 1])


def _prediction(post: np.ndarray) -> np.ndarray:
    """``argmax_y m(y|x)``; -1 on a tie or off the support (nan)."""
    pred = np.where(post[:, 0] > post[:, 1], 0, 1)
    return np.where((post[:, 0] == post[:, 1]) | np.isnan(post[:, 0]), -1, pred)


def success_predicate(table: PieceTable, delta: float, Delta: float, r_x: np.ndarray,
                      r_xbar: np.ndarray, dist: np.ndarray, q_x: np.ndarray, q_xbar: np.ndarray,
                      log_q_xbar: np.ndarray, median: float) -> dict[str, np.ndarray]:
    """Properties 1-5 of Proposition 1 for a model with posteriors ``q_x, q_xbar`` (``[n, 2]``).

    The ``p`` side (``y_p``, ``p(y_p|.) >= 1-delta``) is exact, per piece, from ``table``:
    1. ``y_q(x) = y_p(x)``, ``p(y_p|x) >= 1-delta``, ``q(y_q|x) >= 1-delta``;
    2. ``y_p(xbar) = y_p(x)``, ``y_q(xbar) != y_p(xbar)``;
    3. ``q(y_p(xbar)|xbar) <= delta``, ``p(y_p(xbar)|xbar) >= 1-delta``;
    4. ``||x - xbar|| < Delta``;  5. ``log q(xbar) >= median``.
    ``q(y|x) >= 1-delta`` is read as ``q(1-y|x) <= delta`` (no ``1 - q`` cancellation).
    """
    kx, kb = table.index(r_x), table.index(r_xbar)
    yp_x, yp_b = table.yp[kx].astype(int), table.yp[kb].astype(int)
    yq_x, yq_b = _prediction(q_x), _prediction(q_xbar)
    rows = np.arange(len(r_x))
    other_x = q_x[rows, 1 - np.clip(yq_x, 0, 1)]
    true_b = q_xbar[rows, np.clip(yp_b, 0, 1)]
    return {
        "1": (yp_x >= 0) & (yq_x == yp_x) & table.conf_p[kx] & (other_x <= delta),
        "2": (yp_b >= 0) & (yp_b == yp_x) & (yq_b != yp_b),
        "3": (yp_b >= 0) & (true_b <= delta) & table.conf_p[kb],
        "4": np.asarray(dist) < Delta,
        "5": np.asarray(log_q_xbar) >= median,
    }


def rate(k: int, n: int) -> dict[str, Any]:
    """``{k, n, rate, wilson99}`` (``foundation.intervals.wilson_interval``, 99%)."""
    lo, hi = wilson_interval(int(k), int(n))
    return {"k": int(k), "n": int(n), "rate": k / n if n else None, "wilson99": [lo, hi]}


def summarize_attack(props: dict[str, np.ndarray]) -> dict[str, Any]:
    """Success (all of 1-5), misclassified share (1-4), undetectable share (5), per property."""
    n = len(props["1"])
    ok14 = props["1"] & props["2"] & props["3"] & props["4"]
    return {"success": rate(int((ok14 & props["5"]).sum()), n),
            "misclassified_1_4": rate(int(ok14.sum()), n),
            "undetectable_5": rate(int(props["5"].sum()), n),
            "per_property": {k: rate(int(v.sum()), n) for k, v in props.items()}}


# -- data ------------------------------------------------------------------------------------
@dataclass
class Draws:
    """``n`` exact draws of ``p``: vectors, labels, radii."""

    x: np.ndarray
    y: np.ndarray
    r: np.ndarray


def draw_p(con: Construction, n: int, seed: np.random.SeedSequence) -> Draws:
    """``n`` exact draws ``(x, y) ~ p`` (``annulus.sampling.sample``, numpy backend)."""
    xs, ys, rs = [], [], []
    for ch in sample(con.p, n, seed=seed):
        xs.append(np.array(ch.x))
        ys.append(ch.y.astype(np.int64))
        rs.append(ch.r)
    d = con.d
    if not xs:
        return Draws(np.zeros((0, d)), np.zeros(0, np.int64), np.zeros(0))
    return Draws(np.concatenate(xs), np.concatenate(ys), np.concatenate(rs))


def norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", x, x))


# -- the flow --------------------------------------------------------------------------------
def make_flow(d: int, cfg: FlowConfig) -> torch.nn.Module:
    """``zuko.flows.MAF`` on ``R^d`` with a two-dimensional (one-hot ``y``) context."""
    import zuko

    return zuko.flows.MAF(d, context=2, transforms=cfg.transforms,
                          hidden_features=(cfg.hidden, cfg.hidden))


def one_hot(y: torch.Tensor | np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.as_tensor(y, dtype=torch.long), 2).to(dtype)


def train_flow(flow: torch.nn.Module, data: Draws, cfg: FlowConfig,
               gen: torch.Generator) -> list[float]:
    """Adam on ``-mean log q_theta(x|y)``; returns the loss every ``steps // 20`` steps."""
    x = torch.as_tensor(data.x, dtype=torch.float32)
    c = one_hot(data.y, torch.float32)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr)
    history = []
    every = max(1, cfg.steps // 20)
    flow.train()
    for step in range(cfg.steps):
        idx = torch.randint(len(x), (min(cfg.batch, len(x)),), generator=gen)
        loss = -flow(c[idx]).log_prob(x[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == cfg.steps - 1:
            history.append(float(loss.detach()))
    flow.eval()
    return history


def flow_log_cond(flow: torch.nn.Module, x: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """``[n, 2]`` of ``log q_theta(x|y)`` for both labels (keeps the graph when ``x`` needs it)."""
    out = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        cols = [flow(one_hot(torch.full((len(xb),), y), x.dtype)).log_prob(xb) for y in (0, 1)]
        out.append(torch.stack(cols, dim=1))
    return torch.cat(out) if out else torch.zeros((0, 2), dtype=x.dtype)


def flow_scores(flow: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log q_theta(x, y) [n, 2], log q_theta(x) [n])`` with ``q_theta(y) = 1/2`` (float64)."""
    with torch.no_grad():
        lc = flow_log_cond(flow, torch.as_tensor(x, dtype=torch.float64)).numpy()
    lj = lc + math.log(0.5)
    return lj, np.logaddexp(lj[:, 0], lj[:, 1])


def softmax2(lj: np.ndarray) -> np.ndarray:
    """``m(y|x)`` from ``log m(x, y)`` (``[n, 2]``; nan where ``m(x) = 0``)."""
    with np.errstate(invalid="ignore"):
        return np.exp(lj - np.logaddexp(lj[:, :1], lj[:, 1:]))


def pgd_attack(flow: torch.nn.Module, x: np.ndarray, y: np.ndarray, Delta: float, median: float,
               cfg: EvalConfig) -> np.ndarray:
    """L2 PGD from ``x``: minimise ``log q_theta(y|xbar) + beta relu(median - log q_theta(xbar))``
    with normalised gradient steps of ``2.5 Delta / steps``, projected to
    ``||xbar - x|| <= (1 - 1e-6) Delta`` (strictly inside the budget)."""
    x0 = torch.as_tensor(x, dtype=torch.float64)
    xb = x0.clone()
    radius = Delta * (1 - 1e-6)
    step = 2.5 * Delta / max(cfg.pgd_steps, 1)
    yy = torch.as_tensor(y, dtype=torch.long)
    for _ in range(cfg.pgd_steps):
        xb.requires_grad_(True)
        lj = flow_log_cond(flow, xb) + math.log(0.5)
        lm = torch.logsumexp(lj, dim=1)
        log_post = lj.gather(1, yy[:, None])[:, 0] - lm
        loss = (log_post + cfg.beta * torch.relu(median - lm)).sum()
        (g,) = torch.autograd.grad(loss, xb)
        with torch.no_grad():
            g = g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
            xb = xb - step * g
            delta = xb - x0
            scale = (radius / delta.norm(dim=1, keepdim=True).clamp_min(1e-300)).clamp(max=1.0)
            xb = x0 + delta * scale
    return xb.detach().numpy()


def sample_flow(flow: torch.nn.Module, n: int, gen: torch.Generator) -> tuple[np.ndarray,
                                                                               np.ndarray]:
    """``n`` draws ``(x, y) ~ q_theta`` (``y ~ 1/2``)."""
    y = torch.randint(2, (n,), generator=gen)
    with torch.no_grad():
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
        x = flow(one_hot(y, torch.float64)).sample() if n else torch.zeros((0,))
    return x.numpy().reshape(n, -1), y.numpy()


# -- measurements ----------------------------------------------------------------------------
def mean_se(v: np.ndarray) -> dict[str, float]:
    """``{mean, stderr}`` (``std / sqrt(n)``)."""
    v = np.asarray(v, dtype=np.float64)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return {"mean": float(v.mean()), "stderr": se, "n": int(len(v))}


def calibration(post: np.ndarray, y: np.ndarray, bayes: np.ndarray, bins: int) -> dict[str, Any]:
    """Accuracy (99% Wilson), ECE over ``bins`` equal-width confidence bins, and
    ``mean |m(0|x) - p(0|x)|`` (with s.e.) of a posterior ``post`` against labels ``y``."""
    pred = _prediction(post)
    correct = pred == y
    conf = np.nanmax(post, axis=1)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return {"accuracy": rate(int(correct.sum()), len(y)), "ece": float(ece), "ece_bins": bins,
            "abs_posterior_error": mean_se(np.abs(post[:, 0] - bayes[:, 0]))}


def support_mass(p: ExactJoint, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Share of draws of a model outside the support of ``p(x, y)`` and of ``p(x)``."""
    lj = p.log_joint(norms(x))
    joint_out = np.isneginf(lj[np.arange(len(y)), y])
    marg_out = np.isneginf(np.logaddexp(lj[:, 0], lj[:, 1]))
    return {"joint": rate(int(joint_out.sum()), len(y)),
            "marginal": rate(int(marg_out.sum()), len(y))}


def judge(table: PieceTable, cfg: Config, x: np.ndarray, xbar: np.ndarray,
          post_x: np.ndarray, post_b: np.ndarray, logm_b: np.ndarray,
          median: float) -> dict[str, Any]:
    """:func:`success_predicate` on the vectors, summarised (:func:`summarize_attack`)."""
    dist = norms(x - xbar)
    props = success_predicate(table, float(cfg.delta), float(cfg.Delta), norms(x), norms(xbar),
                              dist, post_x, post_b, logm_b, median)
    out = summarize_attack(props)
    out["max_dist"] = float(dist.max()) if len(dist) else None
    return out


def exact_model_block(name: str, model: ExactJoint, table: PieceTable, cfg: Config,
                      ev: Draws, shell: Draws, p: ExactJoint) -> dict[str, Any]:
    """Calibration and radial attack for an exact radial model (the theorem's q, or p)."""
    lj = model.log_joint(ev.r)
    logm = np.logaddexp(lj[:, 0], lj[:, 1])
    median = lower_median(logm)
    xbar = attack(shell.x, float(cfg.Delta))
    ljb = model.log_joint(norms(xbar))
    return {
        "model": name,
        "calibration": calibration(model.posterior(ev.r), ev.y, p.posterior(ev.r),
                                   cfg.eval.ece_bins),
        "median_log_density": median,
        "attack_radial": judge(table, cfg, shell.x, xbar, model.posterior(shell.r),
                               softmax2(ljb), np.logaddexp(ljb[:, 0], ljb[:, 1]), median),
        "attack_pgd": None,
        "attack_pgd_note": "not applicable: the density is piecewise constant in ||x|| "
                           "(zero gradient almost everywhere)",
    }


def theory_block(cfg: Config, d: int, con: Construction) -> dict[str, Any]:
    """The certificate at ``d`` with the fixed lambda1 (verdict, exact attack probability,
    exact joint KLs) and whether the proof admits any lambda1 at ``d``."""
    cert = build_certificate(cfg.params, dim=d, lambda1=con.lambda1)
    with mpmath.mp.workdps(30):
        kl_pq = float(con.kl_p_q_joint(mpmath.mp))
        kl_qp = float(con.kl_q_p_joint(mpmath.mp))
    return {"verdict": cert.verdict, "attack_probability_exact": float(cert.attack_probability),
            "admissible_lambda1_empty": bool(admissible(cfg.params, d).empty),
            "kl_p_q_joint_exact": kl_pq, "kl_q_p_joint_exact": kl_qp}


def run_dimension(cfg: Config, d: int, lambda1: Any, ss: np.random.SeedSequence,
                  progress: bool = False) -> dict[str, Any]:
    """Train ``q_theta`` at dimension ``d`` and measure it, the theorem's ``q`` and ``p``."""
    cpu0 = time.process_time()
    con = cfg.params.construction(d, lambda1)
    p, qt = ExactJoint.of(con.p), ExactJoint.of(con.q)
    table = PieceTable.of(con, cfg.delta)
    ss_train, ss_eval, ss_torch = ss.spawn(3)
    torch_seed = int(ss_torch.generate_state(1)[0])
    gen = torch.Generator().manual_seed(torch_seed)
    torch.manual_seed(torch_seed)
    train = draw_p(con, cfg.flow.n_train, ss_train)
    ev = draw_p(con, cfg.eval.n_eval, ss_eval)
    flow = make_flow(d, cfg.flow)
    history = train_flow(flow, train, cfg.flow, gen)
    cpu_train = time.process_time() - cpu0
    flow = flow.double()

    lp = p.log_joint(ev.r)[np.arange(len(ev.y)), ev.y]
    lq_joint, lq_marg = flow_scores(flow, ev.x)
    kl_terms = lp - lq_joint[np.arange(len(ev.y)), ev.y]
    median = lower_median(lq_marg)
    in_shell = (ev.r >= 1) & (ev.r < 1 + float(cfg.Delta))
    idx = np.nonzero(in_shell)[0][: cfg.eval.n_attack]
    if len(idx) == 0:
        raise errors.CommandError(
            f"d={d}: none of the {len(ev.y)} evaluation draws fell in the shell "
            f"1 <= r < 1 + Delta, so there is no point to attack; raise --n-eval")
    shell = Draws(ev.x[idx], ev.y[idx], ev.r[idx])
    post_x = softmax2(flow_scores(flow, shell.x)[0])

    def judged(xbar: np.ndarray) -> dict[str, Any]:
        ljb, lmb = flow_scores(flow, xbar)
        return judge(table, cfg, shell.x, xbar, post_x, softmax2(ljb), lmb, median)

    radial = judged(attack(shell.x, float(cfg.Delta)))
    pgd = judged(pgd_attack(flow, shell.x, shell.y, float(cfg.Delta), median, cfg.eval))
    xs, ys = sample_flow(flow, cfg.eval.n_model, gen)
    cpu_total = time.process_time() - cpu0
    if progress:
        print(f"  d={d}: KL(p||q_theta)={kl_terms.mean():.4g}, radial success "
              f"{radial['success']['k']}/{radial['success']['n']}, pgd "
              f"{pgd['success']['k']}/{pgd['success']['n']}, {cpu_total:.1f} CPU s",
              file=sys.stderr, flush=True)
    return {
        "d": d,
        "seeds": {"experiment_seed": cfg.seed, "seed_sequence_spawn_key": list(ss.spawn_key),
                  "children": "spawn(3): training draws, evaluation draws, torch seed",
                  "torch": torch_seed},
        "sizes": {"n_train": len(train.y), "n_eval": len(ev.y), "n_shell": int(in_shell.sum()),
                  "n_attacked": len(idx), "n_model_samples": len(ys)},
        "theory": theory_block(cfg, d, con),
        "trained": {
            "train_loss_history": history,
            "kl_p_q_theta_joint": mean_se(kl_terms),
            "kl_q_theta_p_joint": None,
            "kl_q_theta_p_note": KL_Q_P_NOTE,
            "mass_outside_support_of_p": support_mass(p, xs, ys),
            "calibration": calibration(softmax2(lq_joint), ev.y, p.posterior(ev.r),
                                       cfg.eval.ece_bins),
            "median_log_density": median,
            "attack_radial": radial,
            "attack_pgd": pgd,
        },
        "theorem_q": {**exact_model_block("theorem_q", qt, table, cfg, ev, shell, p),
                      "kl_p_q_joint_mc": mean_se(lp - qt.log_joint(ev.r)[np.arange(len(ev.y)),
                                                                            ev.y])},
        "bayes_p": exact_model_block("bayes_p", p, table, cfg, ev, shell, p),
        "cpu_seconds": {"train": cpu_train, "total": cpu_total},
        "cpu_minutes": cpu_total / 60,
    }


def as_float(w: Any) -> float:
    """An exact weight of ``annulus`` (Fraction or Sci) as float64."""
    with mpmath.mp.workdps(30):
        return float(num(mpmath.mp, w))


def exact_text(w: Any) -> str:
    """An exact weight as text: ``m e E`` for a Sci (``m 10^E``), else ``str``."""
    m, e = getattr(w, "m", None), getattr(w, "e", None)
    return f"{m}e{e}" if m is not None and e is not None else str(w)


def run(cfg: Config, progress: bool = False) -> dict[str, Any]:
    """All dimensions of ``cfg``; lambda1 is the canonical one of the default dimension."""
    d_default = minimal_dimension_search(cfg.params, third=True)
    lambda1 = canonical_lambda1(cfg.params, d_default)
    lambda2 = cfg.params.lambda2_of(lambda1)
    children = np.random.SeedSequence(cfg.seed).spawn(len(cfg.dims))
    rows = [run_dimension(cfg, d, lambda1, ss, progress)
            for d, ss in zip(cfg.dims, children, strict=True)]
    return {
        "experiment": "annulus_flow",
        "params": {"eps": str(cfg.eps), "delta": str(cfg.delta), "Delta": str(cfg.Delta)},
        "lambda1": {"value": as_float(lambda1), "exact": exact_text(lambda1),
                    "lambda2": as_float(lambda2),
                    "source": f"canonical_lambda1 at the default dimension d = {d_default}, "
                              "used at every d (the proof admits a lambda1 only from "
                              f"d = {d_default} on at these parameters)"},
        "d_default": d_default,
        "config": {**asdict(cfg), "eps": str(cfg.eps), "delta": str(cfg.delta),
                   "Delta": str(cfg.Delta)},
        "model": "zuko.flows.MAF(d, context=2 (one-hot y), transforms, hidden_features=(h, h)); "
                 "q_theta(y) = 1/2",
        "success_definition": "properties 1-5 of Proposition 1 (annulus.verify): x in the shell "
                              "1 <= ||x|| < 1+Delta correctly and confidently classified, "
                              "y_q(xbar) != y_p(xbar) = y_p(x), q(y_p(xbar)|xbar) <= delta, "
                              "p(y_p(xbar)|xbar) >= 1-delta, ||x - xbar|| < Delta, "
                              "log q(xbar) >= lower median of log q(X), X ~ p (n_eval draws)",
        "intervals": "rates: 99% Wilson (foundation.intervals.wilson_interval); means: +- 1 s.e.",
        "dims": rows,
        "cpu_minutes_total": sum(r["cpu_minutes"] for r in rows),
    }


# -- command line ----------------------------------------------------------------------------
SIZE_LIMITS = {"steps": 10**6, "transforms": 64, "hidden": 8192, "batch": 10**6,
               "n-train": 10**7, "n-eval": 10**7, "n-attack": 10**7, "n-model": 10**7,
               "pgd-steps": 10**5}
"""Upper bounds of the size flags (each far beyond minutes of CPU; refused before any work)."""
MAX_SAMPLE_VALUES = 5 * 10**8
"""Largest ``draws x d`` of one sample set (4 GB in float64)."""


def size_problem(cfg: Config) -> str | None:
    """Sizes that cannot run here: a batch larger than the training set, a sample set that
    would not fit in memory (``None`` when there is none)."""
    if cfg.flow.batch > cfg.flow.n_train:
        return f"--batch {cfg.flow.batch} exceeds --n-train {cfg.flow.n_train}"
    d = max(cfg.dims)
    for flag, n in (("--n-train", cfg.flow.n_train), ("--n-eval", cfg.eval.n_eval),
                    ("--n-attack", cfg.eval.n_attack), ("--n-model", cfg.eval.n_model)):
        if n * d > MAX_SAMPLE_VALUES:
            return (f"{flag} {n} at d = {d}: {n * d:.3g} values, more than "
                    f"{MAX_SAMPLE_VALUES:.0e} (about 4 GB)")
    return None


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description="Train a conditional flow (zuko MAF) on the "
                           "Appendix-D data and measure it against the exact p and the "
                           "theorem's q.")
    p.add_argument("--out", type=cli.output_file, required=True, help="result JSON")
    p.add_argument("--dims", type=cli.positive_int, nargs="+", help="dimensions d")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds; for tests)")
    for name in ("steps", "transforms", "hidden", "batch", "n-train"):
        p.add_argument(f"--{name}", type=cli.int_range(1, SIZE_LIMITS[name]),
                       help="flow: " + name)
    for name in ("n-eval", "n-attack", "n-model", "pgd-steps"):
        p.add_argument(f"--{name}", type=cli.int_range(1, SIZE_LIMITS[name]),
                       help="evaluation: " + name)
    p.add_argument("--quiet", action="store_true")
    return p


def config_from_args(args: Any) -> Config:
    """The default (or ``--quick``) config with the flags given."""
    cfg = QUICK if args.quick else Config()
    flow = replace(cfg.flow, **{k: getattr(args, k) for k in
                                ("steps", "transforms", "hidden", "batch", "n_train")
                                if getattr(args, k) is not None})
    ev = replace(cfg.eval, **{k: getattr(args, k) for k in
                              ("n_eval", "n_attack", "n_model", "pgd_steps")
                              if getattr(args, k) is not None})
    dims = tuple(args.dims) if args.dims else cfg.dims
    return replace(cfg, dims=dims, seed=args.seed, flow=flow, eval=ev)


@errors.guard(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.dims and len(set(args.dims)) != len(args.dims):
        raise errors.UsageError("--dims: each dimension at most once")
    if args.dims and max(args.dims) > 4096:
        raise errors.UsageError("--dims: at most 4096 (the flow would not train in minutes)")
    cfg = config_from_args(args)
    problem = size_problem(cfg)
    if problem:
        raise errors.UsageError(problem)
    torch.set_num_threads(1)
    prov = Provenance(seed=cfg.seed, run_dir=None, run_config=None, device="cpu",
                      argv=list(sys.argv[1:] if argv is None else argv), module=MODULE)
    result = run(cfg, progress=not args.quiet)
    result["provenance"] = prov.finish()
    write_result(args.out, result)
    if not args.quiet:
        print(f"wrote {args.out} ({result['cpu_minutes_total']:.2f} CPU min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
