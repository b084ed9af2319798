"""Table 2 (paper Sec. 4.3): CW-L2 and boundary attacks, plain and detection-aware.

Settings (``--attacks``, all four by default):

``cw``            plain untargeted CW-L2 on the C-way classifier (own implementation in
                  :mod:`flows.experiments.cw`, identical to foolbox's CW when T = +inf);
``cw-det``        CW-L2 with the detection loss ``max(0, -log p(x') - T_nll)`` (Carlini & Wagner
                  2017a); success additionally needs ``bits/dim(x') <= T``;
``boundary``      foolbox ``BoundaryAttack``, untargeted, on the C-way classifier, started by
                  foolbox's default init (blended uniform noise; inputs where it fails start
                  from a random accepted, correctly classified test image of another class);
``boundary-det``  foolbox ``BoundaryAttack`` on a (C+1)-way classifier whose extra class is
                  "non-image" (wins iff ``bits/dim(x) > T``), *targeted* at a random wrong
                  class ``t`` and started from a random accepted test image of class ``t``.

Attacked images: ``--n-images`` test images drawn with ``--seed`` among the first ``--n-test``
test images that are correctly classified and accepted (``bits/dim <= T_used``).  Detection:
accepted iff ``bits/dim <= T``; ``T_used`` (for the detection-aware attacks and the image pool)
is the ``--threshold`` rule (default ``quantile``, see :mod:`flows.experiments.common`); the plain
attacks are scored under both the paper's and the quantile threshold.

Table-2 numbers per setting and threshold: ``undetected_within_eps_pct`` = % of attacked images
with an adversarial that fools the classifier (C-way prediction != true label), is accepted and
has ``||x' - x||_2 <= eps``; ``fooled_within_eps_pct`` (the paper's parentheses) = % that fool
the classifier within eps, detected or not; ``fooled_any_pct`` = % fooled at any distance.
eps = 1.5 (MNIST-like) or 33/255 (CIFAR-10), L2 on the [0, 1] pixel scale (= our [-0.5, 0.5]
model-input scale; MNIST is zero-padded to 32x32 and the padding is attackable too).

CLI::

    python -m flows.experiments.attacks --run RUN_DIR --out OUT.json [--png-dir DIR]
        [--attacks cw,cw-det,boundary,boundary-det] [--n-images 50] [--seed 0]
        [--threshold quantile|paper] [--n-test N] [--cw-steps 200] [--cw-binary-steps 5]
        [--cw-initial-const 0.01] [--cw-stepsize 0.01] [--det-weight 1]
        [--boundary-steps 1000] [--eps E] [--batch-size 100] [--cache-dir DIR]
    python -m flows.experiments.attacks --replot OUT.json --png-dir DIR

JSON keys: ``experiment`` "attacks"; ``dataset``; ``eps_l2``; ``eps_scale`` (text);
``n_test``; ``thresholds`` (``paper``/``quantile``: ``T_bpd``, ``accepted_share_test``, rule);
``threshold_used`` (rule name) and ``T_used_bpd``; ``pool_size`` (eligible images);
``n_images``; ``seed``; ``settings``: {name: {``attack``, ``detection_aware``, ``targeted``,
``params``, ``wall_time_s``, ``init_fallbacks`` (boundary), ``table2``: {threshold name:
{``undetected_within_eps_pct``, ``fooled_within_eps_pct``, ``fooled_any_pct``,
``undetected_any_distance_pct``}}, ``l2_fooled`` (summary of L2 of fooling adversarials),
``bpd_change_fooled`` (summary of bits/dim(x') - bits/dim(x) over fooling adversarials),
``test_rank_fooled`` (summary over fooling adversarials of the share of test images with
bits/dim <= bits/dim(x'): 1.0 means x' is less likely than every test image),
``per_image``: {``index``, ``label``, ``target``, ``found``, ``pred_adv``, ``l2``,
``bpd_orig``, ``bpd_adv``}}};
``table2``: {threshold name: {setting: "U% (F%)"}} in the paper's format; ``provenance``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from flows.experiments import common
from flows.experiments.cw import cw_l2
from flows.experiments.provenance import Provenance, write_json

ATTACKS = ("cw", "cw-det", "boundary", "boundary-det")
BOUNDS = (-0.5, 0.5)


class ClassifierLogits(nn.Module):
    """C-way logits ``log p(x|y) + log p(y)`` in fp32, for foolbox.  ``bar`` counts calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.bar: tqdm | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bar is not None:
            self.bar.update(1)
        return self.model.logits(x.float()).float()


class DetectorLogits(nn.Module):
    """(C+1)-way logits: class ``C`` is "non-image" and wins iff ``bits/dim(x) > T``.

    The extra logit is ``max_y z_y + 1`` when rejected and ``max_y z_y - 1`` when accepted, so the
    argmax is the model's prediction on accepted inputs and ``C`` otherwise (exactly).
    """

    def __init__(self, model: nn.Module, threshold_bpd: float) -> None:
        super().__init__()
        self.model = model
        self.threshold_bpd = float(threshold_bpd)
        self.a, self.b = common.bpd_affine(int(model.data_dims))
        self.bar: tqdm | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bar is not None:
            self.bar.update(1)
        z = self.model.logits(x.float()).float()
        bpd = self.a * torch.logsumexp(z.double(), dim=1) + self.b
        zmax = z.max(dim=1).values
        extra = torch.where(bpd > self.threshold_bpd, zmax + 1.0, zmax - 1.0)
        return torch.cat([z, extra[:, None]], dim=1)


def _fmodel(module: nn.Module):
    import foolbox

    device = next(iter(module.parameters()), torch.empty(0)).device
    return foolbox.PyTorchModel(module.eval(), bounds=BOUNDS, device=device)


def run_boundary(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    seed: int,
    threshold_bpd: float | None = None,
    target: torch.Tensor | None = None,
    starting_points: torch.Tensor | None = None,
    fallback_points: torch.Tensor | None = None,
    progress: str | None = None,
) -> tuple[torch.Tensor, int]:
    """foolbox boundary attack; returns adversarials and how many inits used the fallback.

    ``threshold_bpd`` None: untargeted on the C-way classifier, foolbox's default init, and
    ``fallback_points`` for inputs where that init fails.  Otherwise: targeted at ``target`` on
    the (C+1)-way detector classifier, started from ``starting_points``.
    """
    import foolbox

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    if threshold_bpd is None:
        wrapper: nn.Module = ClassifierLogits(model)
        criterion = foolbox.criteria.Misclassification(labels)
    else:
        if target is None or starting_points is None:
            raise ValueError("detection-aware boundary attack needs target and starting_points")
        wrapper = DetectorLogits(model, threshold_bpd)
        criterion = foolbox.criteria.TargetedMisclassification(target)
    fmodel = _fmodel(wrapper)
    fallbacks = 0
    if starting_points is None:
        init = foolbox.attacks.LinearSearchBlendedUniformNoiseAttack(steps=50)
        start = init.run(fmodel, x, criterion)
        with torch.no_grad():
            ok = wrapper(start).argmax(1) != labels
        if not bool(ok.all()):
            if fallback_points is None:
                raise RuntimeError("boundary init failed and no fallback points given")
            start = torch.where(ok[:, None, None, None], start, fallback_points)
            fallbacks = int((~ok).sum())
        starting_points = start
    bar = tqdm(total=int(steps * 1.1) + 2, desc=progress or "boundary", disable=not progress,
               leave=False)  # fmt: skip
    wrapper.bar = bar  # type: ignore[assignment]
    try:
        attack = foolbox.attacks.BoundaryAttack(steps=steps)
        adv = attack.run(fmodel, x, criterion, starting_points=starting_points)
    finally:
        wrapper.bar = None  # type: ignore[assignment]
        bar.close()
    return adv.detach(), fallbacks


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    labels: np.ndarray,
    adv: torch.Tensor,
    found: np.ndarray,
    *,
    eps: float,
    thresholds_bpd: dict[str, float | None],
    batch_size: int = 100,
    device: str = "cpu",
    bpd_test: np.ndarray | None = None,
) -> dict[str, Any]:
    """Table-2 percentages and per-image numbers for one attack setting.

    Threshold-free detectability: ``bpd_change_fooled`` summarises ``bits/dim(x') - bits/dim(x)``
    over fooling adversarials, and ``test_rank_fooled`` the share of test images with bits/dim
    at most ``bits/dim(x')`` (the test-set acceptance share a threshold needs to accept ``x'``).
    """
    adv, x = adv.cpu(), x.cpu()
    s_adv = common.score(model, adv, batch_size=batch_size, desc=None, device=device)
    s_org = common.score(model, x, batch_size=batch_size, desc=None, device=device)
    pred = s_adv.pred
    l2 = (adv - x).flatten(1).norm(dim=1).double().numpy()
    l2 = np.where(found, l2, np.inf)
    fooled = found & (pred != labels)
    bpd_adv = s_adv.bpd
    table: dict[str, dict[str, float]] = {}
    for name, t in thresholds_bpd.items():
        if t is None:
            continue
        acc = common.accepted(bpd_adv, t)
        table[name] = {
            "undetected_within_eps_pct": 100.0 * float(np.mean(fooled & acc & (l2 <= eps))),
            "fooled_within_eps_pct": 100.0 * float(np.mean(fooled & (l2 <= eps))),
            "fooled_any_pct": 100.0 * float(np.mean(fooled)),
            "undetected_any_distance_pct": 100.0 * float(np.mean(fooled & acc)),
        }
    rank = None
    if bpd_test is not None:
        srt = np.sort(np.asarray(bpd_test, dtype=np.float64))
        rank = np.searchsorted(srt, bpd_adv, side="right") / len(srt)
    return {
        "table2": table,
        "l2_fooled": common.summary(l2[fooled]),
        "bpd_change_fooled": common.summary((bpd_adv - s_org.bpd)[fooled]),
        "test_rank_fooled": None if rank is None else common.summary(rank[fooled]),
        "per_image": {
            "label": labels,
            "found": found,
            "pred_adv": pred,
            "l2": l2,
            "bpd_orig": s_org.bpd,
            "bpd_adv": bpd_adv,
        },
    }


def _fmt(entry: dict[str, float]) -> str:
    return f"{entry['undetected_within_eps_pct']:.0f}% ({entry['fooled_within_eps_pct']:.0f}%)"


def plot(result: dict[str, Any], png_dir: str | Path) -> list[Path]:
    """Success rate vs L2 budget per setting (fooled: dashed; fooled and undetected: solid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png_dir = Path(png_dir)
    png_dir.mkdir(parents=True, exist_ok=True)
    t_used = result["T_used_bpd"]
    fig, ax = plt.subplots(figsize=(6, 4))
    eps = result["eps_l2"]
    for name, s in result["settings"].items():
        pi = s["per_image"]
        l2 = np.array([np.inf if v is None else v for v in pi["l2"]])
        fooled = np.array(pi["found"]) & (np.array(pi["pred_adv"]) != np.array(pi["label"]))
        acc = np.array(pi["bpd_adv"], dtype=float) <= t_used
        finite = l2[np.isfinite(l2)]
        hi = max(2 * eps, float(finite.max()) if finite.size else 2 * eps)
        grid = np.linspace(0, hi, 200)
        (line,) = ax.plot(grid, [100 * np.mean(fooled & acc & (l2 <= g)) for g in grid], label=name)
        ax.plot(grid, [100 * np.mean(fooled & (l2 <= g)) for g in grid], ls="--",
                color=line.get_color())  # fmt: skip
    ax.axvline(eps, color="k", lw=0.8)
    ax.set_xlabel("L2 budget ([0,1] pixel scale)")
    ax.set_ylabel("% of attacked images")
    ax.set_title(f"{result['dataset']}: solid fooled+undetected (T={t_used:.3f}), dashed fooled")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = png_dir / f"table2_attacks_{result['dataset']}.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return [out]


def _plot_examples(x: torch.Tensor, advs: dict[str, torch.Tensor], path: Path, k: int = 6) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(k, len(x))
    rows = 1 + len(advs)
    fig, axes = plt.subplots(rows, k, figsize=(1.3 * k, 1.3 * rows), squeeze=False)

    def show(ax, img: torch.Tensor) -> None:
        a = (img.detach().cpu().numpy() + 0.5).clip(0, 1).transpose(1, 2, 0)
        ax.imshow(a[..., 0] if a.shape[2] == 1 else a, cmap="gray", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])

    for j in range(k):
        show(axes[0, j], x[j])
        for i, (_name, a) in enumerate(advs.items(), start=1):
            show(axes[i, j], a[j])
    axes[0, 0].set_ylabel("orig", fontsize=7)
    for i, name in enumerate(advs, start=1):
        axes[i, 0].set_ylabel(name, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = common.experiment_parser(
        "attacks",
        "Table 2: CW-L2 and boundary attacks with and without likelihood detection.",
    )
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--n-images", type=int, default=50)
    p.add_argument("--threshold", default="quantile", choices=("quantile", "paper"))
    p.add_argument("--cw-steps", type=int, default=200)
    p.add_argument("--cw-binary-steps", type=int, default=5)
    p.add_argument("--cw-initial-const", type=float, default=1e-2)
    p.add_argument("--cw-stepsize", type=float, default=1e-2)
    p.add_argument("--det-weight", type=float, default=1.0)
    p.add_argument("--boundary-steps", type=int, default=1000)
    p.add_argument("--eps", type=float, default=None, help="L2 budget (default: paper's)")
    return p


def parse_attacks(text: str) -> list[str]:
    """``"cw,boundary"`` -> ``["cw", "boundary"]``; unknown names are a user error."""
    names = [a.strip() for a in text.split(",") if a.strip()]
    bad = [a for a in names if a not in ATTACKS]
    if bad or not names:
        raise common.UserInputError(f"unknown attack(s) {bad}; choose from {', '.join(ATTACKS)}")
    return names


def run_attacks(
    model: nn.Module,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    test_scores: common.Scores,
    dataset: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Select images, run the requested settings, collect the Table-2 numbers."""
    names = parse_attacks(args.attacks)
    bpd_test = test_scores.bpd
    ths = common.thresholds(bpd_test, dataset)
    t_used = common.pick_threshold(ths, args.threshold)
    eps = args.eps
    if eps is None:
        eps = common.PAPER_EPS_L2["cifar10" if dataset == "cifar10" else "mnist"]
    labels = y_test.numpy()
    pred = test_scores.pred
    pool = np.flatnonzero((pred == labels) & common.accepted(bpd_test, t_used))
    if len(pool) < max(2, args.n_images):
        raise common.UserInputError(
            f"only {len(pool)} correctly classified accepted test images; need {args.n_images}"
        )
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(pool, size=args.n_images, replace=False))
    dev = torch.device(args.device)
    x, y = x_test[idx].to(dev), y_test[idx].to(dev)
    y_np = y.cpu().numpy()
    c = int(model.num_classes)
    target = (y_np + rng.integers(1, c, size=len(idx))) % c
    pool_lab = labels[pool]
    start_idx = np.array([rng.choice(pool[pool_lab == t]) for t in target])
    fallback_idx = np.array([rng.choice(pool[pool_lab != yy]) for yy in y_np])
    th_eval = {k: v["T_bpd"] for k, v in ths.items()}
    settings: dict[str, Any] = {}
    advs: dict[str, torch.Tensor] = {}
    for k, name in enumerate(names):
        t0 = time.perf_counter()
        fallbacks = None
        seed = args.seed + 1000 * (k + 1)
        if name in ("cw", "cw-det"):
            params = {
                "steps": args.cw_steps,
                "binary_search_steps": args.cw_binary_steps,
                "stepsize": args.cw_stepsize,
                "initial_const": args.cw_initial_const,
                "confidence": 0.0,
                "abort_early": True,
                "det_weight": args.det_weight if name == "cw-det" else None,
                "threshold_bpd": t_used if name == "cw-det" else None,
                "batch_size": args.n_images,
            }
            res = cw_l2(
                model, x, y,
                threshold_bpd=t_used if name == "cw-det" else math.inf,
                det_weight=args.det_weight,
                binary_search_steps=args.cw_binary_steps,
                steps=args.cw_steps,
                stepsize=args.cw_stepsize,
                initial_const=args.cw_initial_const,
                progress=f"{dataset} {name}",
            )  # fmt: skip
            adv, found = res.adv, res.found
        else:
            det = name == "boundary-det"
            params = {
                "steps": args.boundary_steps,
                "spherical_step": 1e-2,
                "source_step": 1e-2,
                "step_adaptation": 1.5,
                "targeted": det,
                "init": "starting image of the target class" if det
                else "LinearSearchBlendedUniformNoiseAttack(steps=50)",
                "threshold_bpd": t_used if det else None,
                "seed": seed,
            }  # fmt: skip
            adv, fallbacks = run_boundary(
                model, x, y,
                steps=args.boundary_steps,
                seed=seed,
                threshold_bpd=t_used if det else None,
                target=torch.as_tensor(target, device=dev) if det else None,
                starting_points=x_test[start_idx].to(dev) if det else None,
                fallback_points=None if det else x_test[fallback_idx].to(dev),
                progress=f"{dataset} {name}",
            )  # fmt: skip
            found = np.ones(len(x), dtype=bool)
        wall = time.perf_counter() - t0
        ev = evaluate(
            model, x, y_np, adv, found, eps=eps, thresholds_bpd=th_eval,
            batch_size=args.batch_size, device=args.device, bpd_test=bpd_test,
        )  # fmt: skip
        ev["per_image"] = {"index": idx, "target": target if name == "boundary-det" else None,
                           **ev["per_image"]}  # fmt: skip
        settings[name] = {
            "attack": "cw" if name.startswith("cw") else "boundary",
            "detection_aware": name.endswith("-det"),
            "targeted": name == "boundary-det",
            "params": params,
            "wall_time_s": wall,
            "init_fallbacks": fallbacks,
            **ev,
        }
        advs[name] = adv.cpu()
        tq = ev["table2"].get(args.threshold, {})
        tqdm.write(f"{dataset} {name}: {_fmt(tq) if tq else '-'} (T={args.threshold}) {wall:.0f}s")
    table = {
        th: {n: _fmt(s["table2"][th]) for n, s in settings.items() if th in s["table2"]}
        for th in ths
    }
    return {
        "experiment": "attacks",
        "dataset": dataset,
        "eps_l2": eps,
        "eps_scale": "L2 on [0,1] pixel scale (= [-0.5,0.5] model input, 32x32 incl. padding)",
        "n_test": len(x_test),
        "thresholds": ths,
        "threshold_used": args.threshold,
        "T_used_bpd": t_used,
        "pool_size": len(pool),
        "n_images": args.n_images,
        "seed": args.seed,
        "settings": settings,
        "table2": table,
        "_x": x.cpu(),
        "_advs": advs,
    }


@common.cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if common.replot_or_require_run(args, plot):
        return 0
    if args.n_images <= 0:
        raise common.UserInputError("--n-images must be positive")
    parse_attacks(args.attacks)
    common.set_seed(args.seed)
    prov = Provenance(seed=args.seed, run_dir=args.run, run_config=None, device=args.device)
    run = common.load_scored_run(args.run, args, args.dataset)
    prov.run_config = run.config
    result = run_attacks(run.model, run.x, run.y, run.scores, run.dataset, args)
    x_att, advs = result.pop("_x"), result.pop("_advs")
    result["provenance"] = prov.finish()
    write_json(result, args.out)
    png = common.resolve_png_dir(args.png_dir)
    if png is not None:
        plot(json.loads(Path(args.out).read_text()), png)
        _plot_examples(x_att, advs, png / f"table2_examples_{run.dataset}.png")
    for th, row in result["table2"].items():
        print(f"{run.dataset} [{th} T={result['thresholds'][th]['T_bpd']}]: {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
