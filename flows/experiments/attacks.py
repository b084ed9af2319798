"""Table 2 (paper Sec. 4.3): CW-L2 and boundary attacks on 8-bit images, plain and detection-aware.

**An adversarial example is an image.** Every attack's output is rounded to the 8-bit grid
(:func:`flows.pixels.to_grid`) and re-scored with :func:`flows.scoring.score_images`
(``--draws`` noise draws); success, L2 distance and detection are those of that image.

Settings (``--attacks``):

``cw``            CW-L2 (Carlini & Wagner 2017b) with rounding inside the loop: every iterate is
                  rounded to the grid, loss and success test use the fixed-draw forward of that
                  image (straight-through gradients), and a success needs the logit margin
                  ``kappa`` (``--margin-nats``) so that it survives the final ``S``-draw check;
``cw-det``        the same with the detection term ``c w_det max(0, -log p(x') - T_nll)``
                  (Carlini & Wagner 2017a); a success must also be accepted, with a bits/dim
                  margin (``--margin-bpd``): ``bits/dim(x') <= T - m``;
``cw-cont``       the continuous CW (a port of foolbox 3.3.4's, kappa = 0) whose result is only
                  rounded afterwards: the baseline that shows how many "successes" fail only
                  because of rounding (``rounding_failures``). (foolbox's early abort is used
                  only here: with rounding in the loop the loss is flat until a pixel crosses
                  a bin edge, which the abort rule would mistake for convergence);
``boundary``      foolbox ``BoundaryAttack``, untargeted, on a classifier that rounds its input to
                  the grid and needs the margin ``kappa`` (so every query decision is about an
                  image), foolbox's blended-noise init (fallback: a test image of another class);
``boundary-det``  the same on a (C+1)-way classifier whose extra "non-image" class wins iff
                  ``bits/dim > T - m``, targeted at a random wrong class with a usable start image
                  (classified as that class with the margin and accepted); started there.

Boundary convergence rule (per image, on the stored L2 trajectory of the best rounded
adversarial): converged at step ``t`` when ``L2(t - W) - L2(t) <= rtol * L2(t)``
(``--boundary-window`` W, ``--boundary-rtol``) and ``t >= --boundary-min-steps`` (default 1000:
foolbox adapts the spherical step size from its 100-entry success queue, filled every 10 steps,
so before step 1000 a flat trajectory can mean "not adapted yet"); the attack stops when every
image has converged or after ``--boundary-steps`` (foolbox's default is 25000). The trajectory
(every ``--boundary-record-every`` steps) and each image's convergence step are stored.

Margins: ``auto`` calibrates them on the attacked images themselves: ``kappa`` = the 90th
percentile of ``|gap_fixed - gap_S|`` (gap = logit of the true class minus the runner-up; fixed
draw vs. the ``S``-draw estimate) and ``m`` = the 90th percentile of ``max(0, bpd_S - bpd_fixed)``.

Attacked images: ``--n-images`` test images drawn with ``--seed`` among the first ``--n-test``
that are correctly classified and accepted under ``T_used`` (``--threshold``, default
``quantile``: see :func:`flows.experiments.detection.thresholds`).

Table-2 entries per setting and threshold, each ``{"k", "n", "pct", "wilson95_pct"}``:
``undetected_within_eps`` (fools the classifier, accepted, ``L2 <= eps``; the paper's first
number), ``fooled_within_eps`` (the paper's parentheses), ``fooled_any``,
``undetected_any_distance``; the legacy ``*_pct`` floats are kept. eps = 1.5 (MNIST-like) or
33/255 (CIFAR-10). Per setting also: ``in_loop_success`` (the attack's own criterion),
``final_check_failures`` (in-loop successes that the ``S``-draw check of the image rejects),
``complete`` (false while settings are still running: the JSON is rewritten after each),
``identical_after_rounding`` (images the attack did not change), ``rounding_failures``
(``cw-cont``), ``detection_evidence`` (CW: iterates with the detection term active and iterates
blocked by it; boundary: queries blocked by the non-image class), ``not_attacked`` (no usable
start), ``boundary`` (trajectory and convergence), ``per_image`` arrays.

CLI::

    python -m flows.experiments.attacks --run RUN_DIR --out OUT.json [--png-dir DIR]
        [--attacks cw,cw-det,cw-cont,boundary,boundary-det] [--n-images 50] [--seed 0]
        [--threshold quantile|paper] [--n-test N] [--draws 8] [--cw-steps 100]
        [--cw-binary-steps 5] [--cw-initial-const 0.01] [--cw-stepsize 0.01] [--det-weight 1]
        [--margin-nats auto|X] [--margin-bpd auto|X] [--boundary-steps 2000]
        [--boundary-window 500] [--boundary-rtol 0.01] [--boundary-min-steps 1000] [--eps E]
        [--cache-dir DIR]

``--png-dir`` saves the first attacked images beside their adversarial examples; Table 2 and its
curves are drawn from the JSON by ``python -m paper_figures --only table2 --only attack_curves``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from flows import pixels
from flows.experiments import detection, png_files, runner, scored_runs
from flows.experiments.cw import MAX_CONST, CWCriterion, CWSettings, cw_l2
from foundation import cli, errors
from foundation.intervals import logsumexp
from foundation.percent import share_text

ATTACKS = ("cw", "cw-det", "cw-cont", "boundary", "boundary-det")
BOUNDS = (-0.5, 0.5)
MODULE = "flows.experiments.attacks"

PAPER_EPS_L2: dict[str, float] = {"mnist": 1.5, "cifar10": 33.0 / 255.0}
"""Table 2 L2 budgets (pixel scale [0, 1], equal to our [-0.5, 0.5] model-input scale)."""

# Upper bounds of the float flags: each value is used in float32 (the CW constant and loss, the
# logits, the detection term), where a larger one overflows to inf or means nothing.
MAX_STEPSIZE = 10.0
"""``--cw-stepsize``: an Adam step in CW's tanh space, where a pixel's whole range spans
``2 atanh(0.999999) = 14.5``."""
MAX_DET_WEIGHT = 1e6
"""``--det-weight``: beside a larger ``w_det`` the float32 loss no longer resolves the hinge."""
MAX_MARGIN_NATS = 1e5
"""``--margin-nats``: more than all the nats of a 32x32x3 image at 8 bits/dim (17,035)."""
MAX_MARGIN_BPD = 1e3
"""``--margin-bpd``: far beyond any threshold (8 bits/dim is the uniform model); a margin that
large already rejects every image."""
MAX_EPS_L2 = math.sqrt(3 * 32 * 32)
"""``--eps``: no two 32x32x3 images are further apart (L2, pixel scale [0, 1])."""


class GridDecision(nn.Module):
    """foolbox model deciding on the rounded image ``to_grid(x)`` with the fixed-draw forward.

    Untargeted (``target`` None): the true class's logit gets ``+kappa``, so "adversarial" means
    another class wins by at least ``kappa``. Targeted: the target's logit gets ``-kappa``.
    With ``threshold_bpd``, a (C+1)-th "non-image" logit wins iff ``bits/dim > T - margin_bpd``.
    Every call updates the best (smallest-L2) adversarial image per row, so the returned
    adversarial is exactly an image that was decided adversarial, and counts queries that the
    non-image class blocked (fooled the classifier but rejected).
    """

    def __init__(self, draw: scored_runs.FixedDraw, labels: torch.Tensor, k_orig: torch.Tensor, *,
                 kappa: float, target: torch.Tensor | None = None,
                 threshold_bpd: float | None = None, margin_bpd: float = 0.0) -> None:
        super().__init__()
        self.draw = draw
        self.labels = labels
        self.target = target
        self.k_orig = k_orig
        self.kappa = float(kappa)
        self.threshold_bpd = threshold_bpd
        self.margin_bpd = float(margin_bpd)
        self.num_dims = int(draw.model.data_dims)
        n = len(labels)
        self.best_k = k_orig.clone()
        self.best_l2 = np.full(n, np.inf)
        self.blocked = np.zeros(n, dtype=np.int64)
        self.queries = 0
        self.track = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self.labels):
            raise RuntimeError("GridDecision expects the whole batch in every call")
        k = pixels.to_grid(x)
        with torch.no_grad():
            z = self.draw.logits_k(k).float()
        rows = torch.arange(len(z), device=z.device)
        zz = z.clone()
        cls = self.labels if self.target is None else self.target
        zz[rows, cls] += self.kappa if self.target is None else -self.kappa
        pred = zz.argmax(1)
        fools = pred != self.labels if self.target is None else pred == self.target
        out = zz
        if self.threshold_bpd is not None:
            bpd = pixels.bits_per_dim(torch.logsumexp(z.double(), dim=1), self.num_dims)
            rejected = bpd > self.threshold_bpd - self.margin_bpd
            zmax = zz.max(dim=1).values
            extra = torch.where(rejected, zmax + 1.0, zmax - 1.0)
            out = torch.cat([zz, extra[:, None]], dim=1)
            if self.track:
                self.blocked += (fools & rejected).cpu().numpy()
            fools = fools & ~rejected
        if self.track:
            self.queries += 1
            l2 = pixels.grid_l2(k, self.k_orig)
            better = fools.cpu().numpy() & (l2 < self.best_l2)
            if better.any():
                b = torch.from_numpy(better).to(k.device)
                self.best_k = torch.where(b[:, None, None, None], k, self.best_k)
                self.best_l2 = np.where(better, l2, self.best_l2)
        return out

    def decide(self, k: torch.Tensor) -> np.ndarray:
        """Whether each uint8 image ``k`` is adversarial for its row (no tracking)."""
        self.track = False
        try:
            out = self.forward(pixels.bin_centre(k))
        finally:
            self.track = True
        want = self.labels if self.target is None else self.target
        if self.target is None:
            return (out.argmax(1) != want).cpu().numpy()
        return (out.argmax(1) == want).cpu().numpy()


class _Converged(Exception):
    """Raised from the step hook when every image met the convergence rule."""


class _StepHook:
    """Stands in for foolbox's TensorBoard writer; ``histogram("norms", ., step)`` runs once per
    boundary-attack step and drives the L2 trajectory and the convergence rule."""

    def __init__(self, wrapper: GridDecision, *, window: int, rtol: float, record_every: int,
                 bar: tqdm | None, min_steps: int = 0) -> None:
        self.w, self.window, self.rtol = wrapper, window, rtol
        self.every, self.bar = record_every, bar
        self.min_steps = min_steps
        self.history: list[np.ndarray] = []
        self.steps_done = 0
        n = len(wrapper.labels)
        self.converged_at = np.full(n, -1, dtype=np.int64)
        self.trajectory: dict[str, list] = {"step": [], "l2": []}

    def __call__(self, logdir: Any = None) -> _StepHook:  # foolbox calls TensorBoard(logdir=...)
        return self

    def histogram(self, tag: str, x: Any, step: int) -> None:
        if tag != "norms":
            return
        self.steps_done = step
        cur = self.w.best_l2.copy()
        self.history.append(cur)
        if self.bar is not None:
            self.bar.update(1)
            if step % 50 == 0:
                fin = cur[np.isfinite(cur)]
                self.bar.set_postfix(median_l2=f"{np.median(fin):.3f}" if fin.size else "-",
                                     converged=int((self.converged_at >= 0).sum()))
        if step % self.every == 0 or step == 1:
            self.trajectory["step"].append(step)
            self.trajectory["l2"].append(cur)
        if step > self.window and step >= self.min_steps:
            old = self.history[step - 1 - self.window]
            ok = (old - cur) <= self.rtol * cur
            ok &= np.isfinite(cur)
            newly = ok & (self.converged_at < 0)
            self.converged_at[newly] = step
            if np.all(self.converged_at >= 0):
                self.trajectory["step"].append(step)
                self.trajectory["l2"].append(cur)
                raise _Converged

    def __getattr__(self, name: str) -> Any:  # every other TensorBoard method: no-op
        return lambda *a, **k: None


@contextlib.contextmanager
def _hooked_tensorboard(hook: _StepHook) -> Iterator[None]:
    import foolbox.attacks.boundary_attack as ba

    saved = ba.TensorBoard
    ba.TensorBoard = hook  # type: ignore[assignment, misc]
    try:
        yield
    finally:
        ba.TensorBoard = saved  # type: ignore[misc]


def run_boundary(wrapper: GridDecision, x: torch.Tensor, *, steps: int, seed: int,
                 starting_points: torch.Tensor | None, window: int, rtol: float,
                 min_steps: int = 0, record_every: int = 50,
                 progress: str | None = None) -> dict[str, Any]:
    """foolbox ``BoundaryAttack`` on ``wrapper`` (decisions on rounded images) with the
    convergence rule; returns the best adversarial images and the trajectory."""
    import foolbox

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    fmodel = foolbox.PyTorchModel(wrapper.eval(), bounds=BOUNDS, device=x.device)
    if wrapper.target is None:
        criterion = foolbox.criteria.Misclassification(wrapper.labels)
    else:
        criterion = foolbox.criteria.TargetedMisclassification(wrapper.target)
    bar = tqdm(total=steps, desc=progress or "boundary", disable=not progress, leave=False)
    hook = _StepHook(wrapper, window=window, rtol=rtol, record_every=record_every,
                     bar=bar if progress else None, min_steps=min_steps)
    stopped = "step budget"
    try:
        with _hooked_tensorboard(hook):
            foolbox.attacks.BoundaryAttack(steps=steps).run(
                fmodel, x, criterion, starting_points=starting_points)
        if hook.steps_done < steps:
            stopped = "foolbox source_step convergence"
    except _Converged:
        stopped = "convergence rule (all images)"
    finally:
        bar.close()
    return {"best_k": wrapper.best_k.clone(), "best_l2": wrapper.best_l2.copy(),
            "steps_done": hook.steps_done, "stopped_by": stopped,
            "converged_at": hook.converged_at, "trajectory": hook.trajectory,
            "queries": wrapper.queries, "blocked_queries": wrapper.blocked.copy()}


def calibrate_margins(draw: scored_runs.FixedDraw, k: torch.Tensor, y: np.ndarray,
                      scores: Any) -> dict[str, float]:
    """``kappa`` and ``m`` (module docstring) from fixed-draw vs ``S``-draw scores of ``k``."""
    with torch.no_grad():
        zf = draw.logits_k(k).double().cpu().numpy()
    zs = scores.logits
    rows = np.arange(len(y))

    def gap(z: np.ndarray) -> np.ndarray:
        o = z.copy()
        o[rows, y] = -np.inf
        return z[rows, y] - o.max(1)

    d = np.abs(gap(zf) - gap(zs))
    bf = pixels.bits_per_dim(logsumexp(zf, axis=1), int(draw.model.data_dims))
    m = np.maximum(0.0, scores.bpd - bf)
    return {"kappa_nats": float(np.percentile(d, 90)), "margin_bpd": float(np.percentile(m, 90)),
            "gap_abs_diff_median": float(np.median(d)), "bpd_S_minus_fixed_median":
            float(np.median(scores.bpd - bf))}


def evaluate(model: nn.Module, k_orig: torch.Tensor, labels: np.ndarray, adv_k: torch.Tensor,
             found: np.ndarray, *, eps: float, thresholds_bpd: dict[str, float | None],
             t_used: float, detection_aware: bool, bpd_orig: np.ndarray, draws: int, seed: int,
             batch_size: int = 250, device: str = "cpu",
             bpd_test: np.ndarray | None = None) -> dict[str, Any]:
    """Table-2 entries (with Wilson intervals) for the rounded adversarial images ``adv_k``."""
    s_adv = scored_runs.score(model, adv_k.cpu(), draws=draws, seed=seed, batch_size=batch_size,
                         device=device)
    n = len(labels)
    pred = s_adv.pred
    bpd_adv = s_adv.bpd
    l2 = pixels.grid_l2(adv_k.cpu(), k_orig.cpu())
    identical = l2 == 0
    l2 = np.where(found, l2, np.inf)
    # an unchanged image is not an adversarial example, even if the re-scoring's noise draws
    # happen to misclassify it (a borderline original)
    fooled = found & (pred != labels) & ~identical
    table: dict[str, dict[str, Any]] = {}
    for name, t in thresholds_bpd.items():
        if t is None:
            continue
        acc = detection.accepted(bpd_adv, t)
        cells = {"undetected_within_eps": fooled & acc & (l2 <= eps),
                 "fooled_within_eps": fooled & (l2 <= eps), "fooled_any": fooled,
                 "undetected_any_distance": fooled & acc}
        entry: dict[str, Any] = {}
        for key, mask in cells.items():
            entry[key] = detection.pct_ci(int(mask.sum()), n)
            entry[f"{key}_pct"] = entry[key]["pct"]
        table[name] = entry
    ok_final = fooled & (detection.accepted(bpd_adv, t_used) if detection_aware else True)
    rank = None
    if bpd_test is not None:
        srt = np.sort(np.asarray(bpd_test, dtype=np.float64))
        rank = np.searchsorted(srt, bpd_adv, side="right") / len(srt)
    return {
        "table2": table,
        "in_loop_success": detection.pct_ci(int(found.sum()), n),
        "final_check_failures": int((found & ~ok_final).sum()),
        "identical_after_rounding": int((found & identical).sum()),
        "rejected_share_of_fooled_T_used": detection.pct_ci(
            int((fooled & ~detection.accepted(bpd_adv, t_used)).sum()), int(fooled.sum())),
        "l2_fooled": detection.summary(l2[fooled]),
        "bpd_change_fooled": detection.summary((bpd_adv - bpd_orig)[fooled]),
        "test_rank_fooled": None if rank is None else detection.summary(rank[fooled]),
        "per_image": {"label": labels, "found": found, "pred_adv": pred, "l2": l2,
                      "bpd_orig": bpd_orig, "bpd_adv": bpd_adv,
                      "max_pixel_change": (adv_k.cpu().int() - k_orig.cpu().int()).abs()
                      .flatten(1).max(1).values.numpy()},
    }


def _fmt(entry: dict[str, Any]) -> str:
    u, f = entry["undetected_within_eps"], entry["fooled_within_eps"]
    if u["pct"] is None:
        return "- (n=0)"
    return f"{share_text(u)} ({share_text(f)}) n={u['n']}"


def _plot_examples(k: torch.Tensor, advs: dict[str, torch.Tensor], path: Path, n: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(n, len(k))
    rows = 1 + len(advs)
    fig, axes = plt.subplots(rows, n, figsize=(1.3 * n, 1.3 * rows), squeeze=False)

    def show(ax: Any, img: torch.Tensor) -> None:
        a = pixels.intensity(img.cpu().numpy().transpose(1, 2, 0))
        ax.imshow(a[..., 0] if a.shape[2] == 1 else a, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])

    for j in range(n):
        show(axes[0, j], k[j])
        for i, (_name, a) in enumerate(advs.items(), start=1):
            show(axes[i, j], a[j])
    axes[0, 0].set_ylabel("orig", fontsize=7)
    for i, name in enumerate(advs, start=1):
        axes[i, 0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    png_files.savefig(fig, path, dpi=60)
    plt.close(fig)


def _margin(hi: float) -> Callable[[str], float | None]:
    """Argument type: ``auto`` -> None, else a finite number in ``[0, hi]``."""
    number = cli.float_range(0.0, hi)

    def parse(value: str) -> float | None:
        if str(value).strip().lower() == "auto":
            return None
        return number(value)

    return parse


def build_parser() -> cli.ArgumentParser:
    p = runner.experiment_parser(
        "attacks", "Table 2: CW-L2 and boundary attacks on 8-bit images, with and without "
                   "likelihood detection.", images="the first attacked images and their "
                                                   "adversarial examples")
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--n-images", type=runner.count, default=50)
    p.add_argument("--threshold", default="quantile", choices=("quantile", "paper"))
    p.add_argument("--cw-steps", type=runner.count, default=100)
    p.add_argument("--cw-binary-steps", type=cli.int_range(1, 100), default=5)
    p.add_argument("--cw-initial-const", type=cli.float_range(0.0, MAX_CONST, lo_open=True),
                   default=1e-2)
    p.add_argument("--cw-stepsize", type=cli.float_range(0.0, MAX_STEPSIZE, lo_open=True),
                   default=1e-2)
    p.add_argument("--det-weight", type=cli.float_range(0.0, MAX_DET_WEIGHT, lo_open=True),
                   default=1.0)
    p.add_argument("--margin-nats", type=_margin(MAX_MARGIN_NATS), default=None,
                   help=f"kappa: 'auto' or nats in [0, {MAX_MARGIN_NATS:g}]")
    p.add_argument("--margin-bpd", type=_margin(MAX_MARGIN_BPD), default=None,
                   help=f"m: 'auto' or bits/dim in [0, {MAX_MARGIN_BPD:g}]")
    p.add_argument("--boundary-steps", type=runner.count, default=2000)
    p.add_argument("--boundary-window", type=runner.count, default=500)
    p.add_argument("--boundary-rtol", type=cli.float_range(0.0, 1.0), default=0.01)
    p.add_argument("--boundary-min-steps", type=runner.count0, default=1000,
                   help="no convergence before this step (foolbox adapts its spherical step "
                        "size only from step 1000 on)")
    p.add_argument("--boundary-record-every", type=runner.count, default=50)
    p.add_argument("--eps", type=cli.float_range(0.0, MAX_EPS_L2, lo_open=True), default=None,
                   help="L2 budget (default: the paper's)")
    return p


def parse_attacks(text: str) -> list[str]:
    """``"cw,boundary"`` -> ``["cw", "boundary"]``; unknown names are a usage error."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in names if a not in ATTACKS]
    if bad:
        raise errors.UsageError(
            f"--attacks: unknown attack(s) {', '.join(bad)}; choose from {', '.join(ATTACKS)}")
    if not names:
        raise errors.UsageError(f"--attacks: no attack named; choose from {', '.join(ATTACKS)}")
    twice = sorted({a for a in names if names.count(a) > 1})
    if twice:
        raise errors.UsageError(f"--attacks: {', '.join(twice)} named more than once")
    return names


def _choose_starts(draw: scored_runs.FixedDraw, images: torch.Tensor, pool: np.ndarray,
                   pool_labels: np.ndarray, y: np.ndarray, rng: np.random.Generator, *,
                   kappa: float, targeted: bool, t_bpd: float | None, m_bpd: float,
                   per_class: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """For each attacked row a start image (test index, -1: none usable) and, when targeted,
    a target class: a random wrong class that has a usable start (classified as it with margin
    ``kappa`` under the fixed draw and, with ``t_bpd``, accepted with margin ``m_bpd``)."""
    c = int(draw.model.num_classes)
    cand = np.concatenate([rng.permutation(pool[pool_labels == j])[:per_class] for j in range(c)])
    with torch.no_grad():
        z = torch.cat([draw.logits_k(images[cand[i:i + 250]]).double()
                       for i in range(0, len(cand), 250)]).cpu().numpy() if len(cand) else \
            np.zeros((0, c))
    acc = (np.ones(len(cand), bool) if t_bpd is None
           else (pixels.bits_per_dim(logsumexp(z, axis=1), int(draw.model.data_dims))
                 <= t_bpd - m_bpd))
    start = np.full(len(y), -1, dtype=np.int64)
    target = np.full(len(y), -1, dtype=np.int64)
    for i, yy in enumerate(y):
        if targeted:
            usable = {}
            for t in range(c):
                if t == yy:
                    continue
                zz = z.copy()
                zz[:, t] -= kappa
                ok = np.flatnonzero((zz.argmax(1) == t) & acc)
                if ok.size:
                    usable[t] = ok
            if usable:
                t = int(rng.choice(sorted(usable)))
                target[i], start[i] = t, cand[int(rng.choice(usable[t]))]
        else:
            zz = z.copy()
            zz[:, yy] += kappa
            ok = np.flatnonzero(zz.argmax(1) != yy)
            if ok.size:
                start[i] = cand[int(rng.choice(ok))]
    return start, target


@dataclass(frozen=True)
class BoundarySettings:
    """Boundary attacks: the step budget and the convergence rule (module docstring)."""

    steps: int = 2000
    window: int = 500
    rtol: float = 0.01
    min_steps: int = 1000
    record_every: int = 50


@dataclass(frozen=True)
class AttackConfig:
    """Everything ``run_attacks`` needs besides the scored run (the CLI builds it from its
    arguments: :meth:`from_args`). ``margin_nats``/``margin_bpd``/``eps`` ``None``: auto / the
    paper's budget."""

    attacks: tuple[str, ...]
    n_images: int = 50
    threshold: str = "quantile"
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 250
    cw: CWSettings = CWSettings()
    boundary: BoundarySettings = BoundarySettings()
    margin_nats: float | None = None
    margin_bpd: float | None = None
    eps: float | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AttackConfig:
        return cls(
            attacks=tuple(parse_attacks(args.attacks)), n_images=args.n_images,
            threshold=args.threshold, seed=args.seed, device=args.device,
            batch_size=args.batch_size,
            cw=CWSettings(args.cw_steps, args.cw_binary_steps, args.cw_initial_const,
                          args.cw_stepsize, args.det_weight),
            boundary=BoundarySettings(args.boundary_steps, args.boundary_window,
                                      args.boundary_rtol, args.boundary_min_steps,
                                      args.boundary_record_every),
            margin_nats=args.margin_nats, margin_bpd=args.margin_bpd, eps=args.eps)


@dataclass
class Attacked:
    """What every setting attacks: the chosen test images and the decision rule's constants."""

    model: nn.Module
    dataset: str
    draw: scored_runs.FixedDraw
    images: torch.Tensor  # the whole uint8 test split (start images come from it)
    labels: np.ndarray
    pool: np.ndarray  # test indices correctly classified and accepted
    idx: np.ndarray  # the attacked test indices
    k0: torch.Tensor  # their uint8 images, on the device
    y_np: np.ndarray
    t_used: float  # bits/dim threshold of detection
    kappa: float  # logit margin (nats)
    m_bpd: float  # bits/dim margin

    @property
    def y(self) -> torch.Tensor:
        return torch.as_tensor(self.y_np, device=self.k0.device)

    @property
    def x0(self) -> torch.Tensor:
        return pixels.bin_centre(self.k0)


@dataclass
class SettingOutcome:
    """One setting's adversarial images (uint8, one per attacked image; the original where
    nothing was found), its in-loop successes, the rows it could not attack, its parameters and
    the setting-specific evidence stored beside the Table-2 entries."""

    adv_k: torch.Tensor
    found: np.ndarray
    not_attacked: np.ndarray
    params: dict[str, Any]
    extra: dict[str, Any]


def attack_cw(a: Attacked, cfg: CWSettings, name: str, progress: str) -> SettingOutcome:
    """``cw`` / ``cw-det`` (rounding in the loop, margin ``kappa``) or ``cw-cont``."""
    det, cont = name.endswith("-det"), name == "cw-cont"
    params = {"steps": cfg.steps, "binary_search_steps": cfg.binary_steps,
              "stepsize": cfg.stepsize, "initial_const": cfg.initial_const,
              "confidence_nats": 0.0 if cont else a.kappa, "abort_early": cont,
              "rounding_in_loop": not cont, "fixed_draw_seed": a.draw.seed,
              "det_weight": cfg.det_weight if det else None,
              "threshold_bpd": a.t_used if det else None,
              "det_margin_bpd": a.m_bpd if det else None}
    criterion = CWCriterion(confidence=0.0 if cont else a.kappa,
                            threshold_bpd=a.t_used if det else math.inf, det_margin_bpd=a.m_bpd)
    res = cw_l2(a.model, a.x0, a.y, cfg, criterion, grid=None if cont else a.draw,
                abort_early=cont, progress=progress)
    extra: dict[str, Any] = {}
    if det:
        extra["detection_evidence"] = {
            "iterates": int(res.steps_run.sum()),
            "iterates_det_term_active": int(res.det_active_steps.sum()),
            "iterates_blocked": int(res.blocked_steps.sum()),
            "images_with_blocked_iterates": detection.pct_ci(
                int((res.blocked_steps > 0).sum()), len(a.idx)),
            "per_image_det_active_steps": res.det_active_steps,
            "per_image_blocked_steps": res.blocked_steps,
            "per_image_steps": res.steps_run}
    return SettingOutcome(res.adv_k, res.found, np.zeros(len(a.idx), bool), params, extra)


def attack_boundary(a: Attacked, cfg: BoundarySettings, name: str, seed: int,
                    progress: str) -> SettingOutcome:
    """``boundary`` (untargeted, blended-noise start) or ``boundary-det`` (targeted, with the
    non-image class, started at an accepted image of the target class)."""
    det = name.endswith("-det")
    dev = a.k0.device
    params = {"steps": cfg.steps, "spherical_step": 1e-2, "source_step": 1e-2,
              "step_adaptation": 1.5, "targeted": det, "kappa_nats": a.kappa,
              "threshold_bpd": a.t_used if det else None,
              "margin_bpd": a.m_bpd if det else None, "seed": seed,
              "convergence_rule": f"L2(t-{cfg.window}) - L2(t) <= {cfg.rtol} L2(t), t >= "
                                  f"{cfg.min_steps}",
              "init": "start image of the target class" if det
              else "LinearSearchBlendedUniformNoiseAttack(steps=50), fallback: a test "
                   "image of another class"}
    y, x0 = a.y, a.x0
    start, target = _choose_starts(a.draw, a.images, a.pool, a.labels[a.pool], a.y_np,
                                   np.random.default_rng(seed), kappa=a.kappa, targeted=det,
                                   t_bpd=a.t_used if det else None, m_bpd=a.m_bpd)
    adv_k = a.k0.clone()
    found = np.zeros(len(a.idx), bool)
    rows = np.flatnonzero(start >= 0) if det else np.arange(len(a.idx))
    init_fallbacks = 0
    wrapper = GridDecision(a.draw, y[rows], a.k0[rows], kappa=a.kappa,
                           target=None if not det else torch.as_tensor(target[rows], device=dev),
                           threshold_bpd=a.t_used if det else None, margin_bpd=a.m_bpd)
    sp = None
    if not det and len(rows):
        sp, init_fallbacks, rows_ok = _untargeted_init(wrapper, x0[rows], a.images, start[rows])
        if not rows_ok.all():
            rows = rows[rows_ok]
            sp = sp[rows_ok]
            wrapper = GridDecision(a.draw, y[rows], a.k0[rows], kappa=a.kappa)
    elif det and len(rows):
        sp = pixels.bin_centre(a.images[start[rows]].to(dev))
    info: dict[str, Any] = {"steps_done": 0, "stopped_by": "no usable start",
                            "converged_at": [], "trajectory": {"step": [], "l2": []}}
    if len(rows):
        info = run_boundary(wrapper, x0[rows], steps=cfg.steps, seed=seed, starting_points=sp,
                            window=cfg.window, rtol=cfg.rtol, min_steps=cfg.min_steps,
                            record_every=cfg.record_every, progress=progress)
        adv_k[rows] = info["best_k"]
        found[rows] = np.isfinite(info["best_l2"])
    not_attacked = np.ones(len(a.idx), bool)
    not_attacked[rows] = False
    conv = np.full(len(a.idx), -1, dtype=np.int64)
    if len(rows):
        conv[rows] = info["converged_at"]
    traj_l2 = [np.full(len(a.idx), np.nan) for _ in info["trajectory"]["l2"]]
    for tl, v in zip(traj_l2, info["trajectory"]["l2"], strict=True):
        tl[rows] = v
    extra: dict[str, Any] = {"boundary": {
        "steps_done": info["steps_done"], "stopped_by": info["stopped_by"],
        "queries": info.get("queries", 0), "init_fallbacks": init_fallbacks,
        "converged": detection.pct_ci(int((conv >= 0).sum()), len(rows)),
        "converged_at": conv, "trajectory": {"step": info["trajectory"]["step"], "l2": traj_l2},
        "target": target if det else None, "start_index": start}}
    if det:
        blocked = np.zeros(len(a.idx), dtype=np.int64)
        if len(rows):
            blocked[rows] = info["blocked_queries"]
        extra["detection_evidence"] = {
            "queries_blocked": int(blocked.sum()),
            "images_with_blocked_queries": detection.pct_ci(int((blocked > 0).sum()), len(rows)),
            "per_image_blocked_queries": blocked}
    return SettingOutcome(adv_k, found, not_attacked, params, extra)


def run_attacks(run: scored_runs.ScoredRun, cfg: AttackConfig,
                checkpoint: Any = None) -> dict[str, Any]:
    """Select images, run the requested settings, score every result as an 8-bit image.

    ``checkpoint(partial_result)`` is called after every finished setting (the CLI writes the
    JSON then, marked ``"complete": false``, so an interrupted run keeps what it finished).
    """
    model, dataset, sc = run.model, run.dataset, run.scores
    images, labels = run.images, run.y.numpy()
    bpd_test = sc.bpd
    ths = detection.thresholds(bpd_test, dataset)
    t_used = detection.pick_threshold(ths, cfg.threshold)
    eps = cfg.eps if cfg.eps is not None else \
        PAPER_EPS_L2["cifar10" if dataset == "cifar10" else "mnist"]
    pool = np.flatnonzero((sc.pred == labels) & detection.accepted(bpd_test, t_used))
    if len(pool) < cfg.n_images:
        raise errors.UsageError(
            f"--n-images {cfg.n_images}: only {len(pool)} correctly classified, accepted test "
            f"images among the first {len(labels)}")
    rng = np.random.default_rng(cfg.seed)
    idx = np.sort(rng.choice(pool, size=cfg.n_images, replace=False))
    k0 = images[idx].to(torch.device(cfg.device))
    y_np = labels[idx]
    draw = scored_runs.FixedDraw(model, seed=cfg.seed + 777).to(k0.device)
    cal = calibrate_margins(draw, k0, y_np, _subset_scores(sc, idx))
    kappa = cal["kappa_nats"] if cfg.margin_nats is None else cfg.margin_nats
    m_bpd = cal["margin_bpd"] if cfg.margin_bpd is None else cfg.margin_bpd
    attacked = Attacked(model, dataset, draw, images, labels, pool, idx, k0, y_np, t_used,
                        kappa, m_bpd)
    bpd_orig = bpd_test[idx]
    th_eval = {k: v["T_bpd"] for k, v in ths.items()}
    settings: dict[str, Any] = {}
    advs: dict[str, torch.Tensor] = {}

    def assemble(complete: bool) -> dict[str, Any]:
        table = {th: {n: _fmt(s["table2"][th]) for n, s in settings.items()
                      if th in s["table2"]} for th in ths}
        return {
            "experiment": "attacks", "dataset": dataset, "eps_l2": eps,
            "eps_scale": "L2 of 8-bit images on the [0,1] pixel scale, ||k'-k||/256, 32x32 "
                         "incl. padding",
            "n_test": len(labels), "draws": run.draws, "thresholds": ths,
            "threshold_used": cfg.threshold, "T_used_bpd": t_used, "pool_size": len(pool),
            "n_images": len(idx), "seed": cfg.seed,
            "margins": {"kappa_nats": kappa, "margin_bpd": m_bpd,
                        "auto": {"kappa": cfg.margin_nats is None,
                                 "bpd": cfg.margin_bpd is None},
                        "calibration": cal},
            "settings": dict(settings), "table2": table, "_k": k0.cpu(), "_advs": dict(advs),
            "complete": complete}

    for j, name in enumerate(cfg.attacks):
        t0 = time.perf_counter()
        progress = f"{dataset} {name}"
        out = (attack_cw(attacked, cfg.cw, name, progress) if name.startswith("cw") else
               attack_boundary(attacked, cfg.boundary, name, cfg.seed + 1000 * (j + 1),
                               progress))
        wall = time.perf_counter() - t0
        det = name.endswith("-det")
        ev = evaluate(model, k0, y_np, out.adv_k, out.found, eps=eps, thresholds_bpd=th_eval,
                      t_used=t_used, detection_aware=det, bpd_orig=bpd_orig, draws=run.draws,
                      seed=run.score_seed + 1 + j, batch_size=cfg.batch_size,
                      device=cfg.device, bpd_test=bpd_test)
        ev["per_image"] = {"index": idx, **ev["per_image"]}
        if name == "cw-cont":  # as in evaluate: an image rounded back to the original fails
            found = out.found
            fooled = (found & (ev["per_image"]["pred_adv"] != y_np)
                      & (np.asarray(ev["per_image"]["l2"]) > 0))
            out.extra["rounding_failures"] = {
                "continuous_successes": int(found.sum()),
                "fail_after_rounding": int((found & ~fooled).sum()),
                "identical_after_rounding": ev["identical_after_rounding"],
                "share_failing": detection.pct_ci(int((found & ~fooled).sum()), int(found.sum()))}
        settings[name] = {"attack": "cw" if name.startswith("cw") else "boundary",
                          "detection_aware": det, "targeted": name == "boundary-det",
                          "params": out.params, "wall_time_s": wall,
                          "not_attacked": int(out.not_attacked.sum()), **out.extra, **ev}
        advs[name] = out.adv_k.cpu()
        tq = ev["table2"].get(cfg.threshold, {})
        tqdm.write(f"{dataset} {name}: {_fmt(tq) if tq else '-'} (T={cfg.threshold}) "
                   f"{wall:.0f}s")
        if checkpoint is not None and j < len(cfg.attacks) - 1:
            checkpoint(assemble(complete=False))
    return assemble(complete=True)


def _subset_scores(sc: Any, idx: np.ndarray) -> Any:
    from flows.scoring import Scores

    return Scores(sc.per_draw[idx], sc.log_prior, sc.num_dims)


def _untargeted_init(wrapper: GridDecision, x: torch.Tensor, images: torch.Tensor,
                     fallback_idx: np.ndarray) -> tuple[torch.Tensor, int, np.ndarray]:
    """foolbox's blended-noise init on the rounded-input classifier; failed rows take their
    fallback test image; rows with neither are dropped (returned mask)."""
    import foolbox

    fmodel = foolbox.PyTorchModel(wrapper.eval(), bounds=BOUNDS, device=x.device)
    crit = foolbox.criteria.Misclassification(wrapper.labels)
    wrapper.track = False
    try:
        start = foolbox.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50).run(
            fmodel, x, crit)
    finally:
        wrapper.track = True
    ok = wrapper.decide(pixels.to_grid(start))
    fallbacks = 0
    rows_ok = ok.copy()
    for i in np.flatnonzero(~ok):
        if fallback_idx[i] >= 0:
            start[i] = pixels.bin_centre(images[fallback_idx[i]].to(x.device))
            fallbacks += 1
            rows_ok[i] = True
    return start, fallbacks, rows_ok


@runner.cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """Parse (usage errors: one line, exit 2), attack, write the JSON (and PNGs)."""
    args = build_parser().parse_args(argv)
    parse_attacks(args.attacks)
    prov, run = runner.start_scored_run(args, argv, MODULE)

    def checkpoint(partial: dict[str, Any]) -> None:
        runner.write_with_provenance(
            args.out, {k: v for k, v in partial.items() if not k.startswith("_")}, prov)

    result = run_attacks(run, AttackConfig.from_args(args), checkpoint)
    k_att, advs = result.pop("_k"), result.pop("_advs")
    runner.write_with_provenance(args.out, result, prov)
    png = png_files.resolve_png_dir(args.png_dir)
    if png is not None:
        _plot_examples(k_att, advs,
                       png / f"table2_examples_{run.dataset}_{'-'.join(advs)}.png")
    for th, row in result["table2"].items():
        print(f"{run.dataset} [{th} T={result['thresholds'][th]['T_bpd']}]: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
