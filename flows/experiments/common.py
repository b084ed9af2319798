"""Shared helpers of the Section-4 experiments: loading a run, scoring, detection thresholds.

Conventions used by every experiment (paper Sec. 4.2-4.4, App. B):

* Model input ``x`` is float32 ``[N, C, 32, 32]`` in ``[-0.5, 0.5]``
  (``flows.data.to_model_input``); L2 distances are measured on that scale, which has range 1
  and therefore equals the L2
  distance on the ``[0, 1]`` pixel scale (the paper's scale for eps = 1.5 and 33/255).
* ``log p(x|y)`` is ``model(x)`` in nats, ``log p(x) = logsumexp_y [log p(x|y) + log p(y)]``,
  ``p(y|x) = softmax(model.logits(x))`` (Bayes rule).
* bits/dim always comes from ``flows.metrics.bits_per_dim(log_px, model.data_dims)``.
* Detection (Sec. 4.3): an input is **accepted** as a real image iff ``bits/dim <= T`` and
  **rejected** ("non-image", detected) iff ``bits/dim > T``.  The paper's plots show negative
  bits/dim, so its "above the threshold" means our "accepted".
* Two thresholds are recorded: the paper's (1.4 MNIST, 4.0 CIFAR-10; App. B) and ``quantile``:
  the smallest test-set bits/dim value such that the accepted share of the test set is at least
  the paper's share (100% MNIST, 78.6% CIFAR-10; BG-MNIST uses the CIFAR-10 share, 78.6%,
  because the paper gives no threshold for it).  CPU-scale models have different bits/dim, so
  the quantile threshold is the one the detection-aware attacks and interpolations use by default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from paper_figures import paper_numbers

PAPER_THRESHOLD_BPD: dict[str, float] = paper_numbers.THRESHOLD_BPD
"""Paper App. B detection thresholds in bits/dim."""

PAPER_ACCEPT_SHARE: dict[str, float] = paper_numbers.THRESHOLD_ACCEPTED_SHARE
"""Share of test images below the paper's threshold (App. B / Sec. 4.4)."""

DEFAULT_ACCEPT_SHARE = 0.786
"""Share used for datasets without a paper threshold (BG-MNIST)."""

PAPER_EPS_L2: dict[str, float] = {"mnist": 1.5, "cifar10": 33.0 / 255.0}
"""Table 2 L2 budgets (pixel scale [0, 1], equal to our [-0.5, 0.5] model-input scale)."""


class UserInputError(Exception):
    """Bad command-line input; reported as one stderr line and exit status 2."""


def cli_main(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a CLI ``main``: bad input gives one clear stderr line and a non-zero exit."""

    def wrapped(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except (UserInputError, FileNotFoundError, NotADirectoryError) as exc:
            spec = main.__globals__.get("__spec__")  # __module__ is "__main__" under -m
            name = spec.name if spec is not None else main.__module__
            print(f"python -m {name}: error: {exc}", file=sys.stderr)
            return 2

    wrapped.__doc__ = main.__doc__
    wrapped.__name__ = getattr(main, "__name__", "main")
    return wrapped


def experiment_parser(module: str, description: str, *, many_runs: bool = False,
                      dataset_flag: bool = True) -> argparse.ArgumentParser:
    """The arguments every experiment CLI shares (run, output, data, cache, device, replot)."""
    p = argparse.ArgumentParser(prog=f"python -m flows.experiments.{module}",
                                description=description)
    if many_runs:
        p.add_argument("--run", action="append", default=[], help="run directory (repeatable)")
    else:
        p.add_argument("--run", help="trained run directory (flows.runs.load_run)")
    p.add_argument("--out", help="output JSON path")
    p.add_argument("--png-dir", default=None, help="write PNG figures here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-test", type=int, default=None, help="first N test images (default all)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--data-dir", default=None, help="dataset root (flows.data.resolve_data_dir)")
    if dataset_flag:
        p.add_argument("--dataset", default=None, help="override the dataset of the run config")
    p.add_argument("--cache-dir", default=None, help="cache test-set scores here (.npz)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--replot", default=None, help="re-draw PNGs from a stored JSON, no model")
    return p


def replot_or_require_run(args: argparse.Namespace,
                          plot: Callable[[dict[str, Any], str], Any]) -> bool:
    """Handle ``--replot`` (True: done) or check that ``--run`` and ``--out`` were given."""
    if args.replot:
        if not args.png_dir:
            raise UserInputError("--replot needs --png-dir")
        plot(json.loads(Path(args.replot).read_text()), args.png_dir)
        return True
    if not args.run or not args.out:
        raise UserInputError("--run and --out are required")
    return False


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def dataset_of(config: dict[str, Any] | None, override: str | None = None) -> str:
    """Dataset name of a run (``config["dataset"]``, or nested ``data.dataset``/``data.name``)."""
    from flows.data import DATASETS

    name = override
    if name is None and config:
        name = config.get("dataset")
        if name is None and isinstance(config.get("data"), dict):
            name = config["data"].get("dataset") or config["data"].get("name")
    if name is None:
        raise UserInputError("cannot tell the run's dataset from its config; pass --dataset")
    if name not in DATASETS:
        raise UserInputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return str(name)


def load_run_checked(
    run_dir: str | os.PathLike[str], device: str = "cpu"
) -> tuple[nn.Module, dict]:
    """``flows.runs.load_run`` with a clear error when the run is missing or unfinished."""
    from flows.runs import load_run

    p = Path(run_dir)
    if not p.is_dir():
        raise UserInputError(f"run directory {str(p)!r} does not exist")
    try:
        model, config = load_run(p, map_location=device)
    except FileNotFoundError as exc:
        raise UserInputError(f"cannot load run {str(p)!r}: {exc}") from exc
    model = model.to(device).eval()
    return model, dict(config or {})


def load_test_inputs(
    dataset: str,
    *,
    split: str = "test",
    n: int | None = None,
    data_dir: str | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of a split as model input (float32 in [-0.5, 0.5]) and labels.

    BG-MNIST is rebuilt with the run's ``bg_seed`` (``config["bg_seed"]``) when given.
    """
    from flows.data import load_split, to_model_input

    kwargs: dict[str, Any] = {}
    if config and config.get("bg_seed") is not None and dataset.startswith("bg-mnist"):
        kwargs["bg_seed"] = int(config["bg_seed"])
    try:
        images, labels = load_split(dataset, split, data_dir=data_dir, **kwargs)
    except (OSError, RuntimeError) as exc:  # missing files, flows.data.DataFileError
        raise UserInputError(f"cannot load {dataset}/{split}: {exc}") from exc
    if n is not None:
        if n <= 0:
            raise UserInputError(f"--n-test must be positive, got {n}")
        images, labels = images[:n], labels[:n]
    x = torch.as_tensor(np.asarray(to_model_input(images)), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return x, y


def bits_per_dim(log_px: torch.Tensor | np.ndarray, num_dims: int) -> np.ndarray:
    """bits/dim of ``log p(x)`` (nats) via ``flows.metrics.bits_per_dim`` (never re-derived)."""
    from flows.metrics import bits_per_dim as _bpd

    lp = torch.as_tensor(np.asarray(log_px, dtype=np.float64))
    out = _bpd(lp, num_dims)
    return np.asarray(torch.as_tensor(out).detach().cpu().numpy(), dtype=np.float64)


def bpd_affine(num_dims: int) -> tuple[float, float]:
    """``(a, b)`` with ``bits_per_dim(l) = a * l + b``; checked to be affine in ``l``."""
    probe = np.array([0.0, 1.0, -1000.0], dtype=np.float64)
    v = bits_per_dim(probe, num_dims)
    a, b = float(v[1] - v[0]), float(v[0])
    if not math.isclose(a * probe[2] + b, float(v[2]), rel_tol=1e-6, abs_tol=1e-6) or a >= 0:
        raise RuntimeError("flows.metrics.bits_per_dim is not a decreasing affine map of log p")
    return a, b


def log_px_at_bpd(threshold_bpd: float, num_dims: int) -> float:
    """The ``log p(x)`` (nats) whose bits/dim equals ``threshold_bpd`` (``-inf`` for ``T=inf``)."""
    if math.isinf(threshold_bpd):
        return -math.inf if threshold_bpd > 0 else math.inf
    a, b = bpd_affine(num_dims)
    return (threshold_bpd - b) / a


@dataclass
class Scores:
    """Model outputs on a set of inputs (all numpy, float64)."""

    log_px_given_y: np.ndarray  # [N, C] nats
    log_prior: np.ndarray  # [C]
    num_dims: int

    @property
    def logits(self) -> np.ndarray:
        return self.log_px_given_y + self.log_prior[None, :]

    @property
    def log_px(self) -> np.ndarray:
        z = self.logits
        m = z.max(axis=1, keepdims=True)
        return (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]

    @property
    def posterior(self) -> np.ndarray:
        z = self.logits
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def pred(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def bpd(self) -> np.ndarray:
        return bits_per_dim(self.log_px, self.num_dims)


@torch.no_grad()
def score(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 100,
    desc: str | None = "scoring",
    device: str = "cpu",
) -> Scores:
    """``log p(x|y)`` for every input and class (``model.forward``), batched, no gradients."""
    model.eval()
    outs = []
    it = range(0, len(x), batch_size)
    for i in tqdm(it, desc=desc, disable=desc is None, leave=False):
        xb = x[i : i + batch_size].to(device)
        outs.append(model(xb).double().cpu())
    lpy = torch.cat(outs).numpy() if outs else np.zeros((0, int(model.num_classes)))
    prior = model.log_prior().detach().double().cpu().numpy()
    return Scores(log_px_given_y=lpy, log_prior=prior, num_dims=int(model.data_dims))


@dataclass
class ScoredRun:
    """A trained run with its test inputs scored once: what every experiment starts from."""

    model: nn.Module
    config: dict[str, Any]
    dataset: str
    x: torch.Tensor
    y: torch.Tensor
    scores: Scores


def load_scored_run(run_dir: str, args: argparse.Namespace,
                    dataset: str | None = None) -> ScoredRun:
    """Load ``run_dir``, its test split (``--n-test``, ``--data-dir``) and the cached scores."""
    model, config = load_run_checked(run_dir, args.device)
    name = dataset_of(config, dataset)
    x, y = load_test_inputs(name, n=args.n_test, data_dir=args.data_dir, config=config)
    scores = score_cached(
        model, x, run_dir=run_dir, dataset=name, split="test", n=args.n_test,
        cache_dir=args.cache_dir, batch_size=args.batch_size, device=args.device,
    )  # fmt: skip
    return ScoredRun(model, config, name, x, y, scores)


def _cache_key(run_dir: str | os.PathLike[str], dataset: str, split: str, n: int | None) -> str:
    p = Path(run_dir).resolve()
    stamp = []
    for f in sorted(p.iterdir()):
        if f.is_file():
            st = f.stat()
            stamp.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    # the model code matters too (e.g. the eval-mode padding noise): fingerprint its source
    import flows.layers
    import flows.model
    import flows.priors

    code = [Path(m.__file__).read_bytes() for m in (flows.model, flows.layers, flows.priors)]
    stamp.append(hashlib.sha1(b"".join(code)).hexdigest())
    raw = "|".join([str(p), dataset, split, str(n), *stamp])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def score_cached(
    model: nn.Module,
    x: torch.Tensor,
    *,
    run_dir: str | os.PathLike[str],
    dataset: str,
    split: str,
    n: int | None,
    cache_dir: str | None,
    batch_size: int = 100,
    device: str = "cpu",
) -> Scores:
    """:func:`score`, stored as ``.npz`` under ``cache_dir`` (keyed by run files, dataset, n)."""
    path = None
    if cache_dir:
        path = Path(cache_dir) / f"scores-{_cache_key(run_dir, dataset, split, n)}.npz"
        if path.exists():
            z = np.load(path)
            if z["log_px_given_y"].shape[0] == len(x):
                return Scores(z["log_px_given_y"], z["log_prior"], int(z["num_dims"]))
    s = score(model, x, batch_size=batch_size, desc=f"scoring {dataset}/{split}", device=device)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, log_px_given_y=s.log_px_given_y, log_prior=s.log_prior, num_dims=s.num_dims)
    return s


def accepted(bpd: np.ndarray | torch.Tensor | float, threshold_bpd: float) -> Any:
    """Detection rule: accepted as a real image iff ``bits/dim <= T``."""
    return bpd <= threshold_bpd


def thresholds(bpd_test: np.ndarray, dataset: str) -> dict[str, dict[str, Any]]:
    """Paper and quantile-matched thresholds with the accepted share of ``bpd_test`` under each."""
    bpd_test = np.asarray(bpd_test, dtype=np.float64)
    out: dict[str, dict[str, Any]] = {}
    t_paper = PAPER_THRESHOLD_BPD.get(dataset)
    out["paper"] = {
        "T_bpd": t_paper,
        "accepted_share_test": None
        if t_paper is None
        else float(np.mean(accepted(bpd_test, t_paper))),
        "paper_accepted_share": PAPER_ACCEPT_SHARE.get(dataset),
        "rule": "paper App. B value" if t_paper is not None else "paper gives none",
    }
    share = PAPER_ACCEPT_SHARE.get(dataset, DEFAULT_ACCEPT_SHARE)
    t_q = float(np.quantile(bpd_test, share, method="higher"))
    out["quantile"] = {
        "T_bpd": t_q,
        "accepted_share_test": float(np.mean(accepted(bpd_test, t_q))),
        "target_share": share,
        "rule": f"np.quantile(test bits/dim, {share}, method='higher')",
    }
    return out


def pick_threshold(ths: dict[str, dict[str, Any]], rule: str) -> float:
    """``T`` for ``rule`` in {"paper", "quantile"}; error when the paper gives none."""
    if rule not in ths:
        raise UserInputError(f"unknown threshold rule {rule!r}; use 'paper' or 'quantile'")
    t = ths[rule]["T_bpd"]
    if t is None:
        raise UserInputError(f"threshold rule {rule!r} has no value for this dataset")
    return float(t)


def summary(v: np.ndarray) -> dict[str, float]:
    """mean, std, min, max and the 1/5/25/50/75/95/99 percentiles."""
    v = np.asarray(v, dtype=np.float64)
    if v.size == 0:
        return {}
    qs = [1, 5, 25, 50, 75, 95, 99]
    out = {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
    }
    out.update({f"p{q:02d}": float(np.percentile(v, q)) for q in qs})
    return out


def resolve_png_dir(png_dir: str | None) -> Path | None:
    if png_dir is None:
        return None
    p = Path(png_dir)
    p.mkdir(parents=True, exist_ok=True)
    return p
