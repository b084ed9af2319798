"""What every Section-4 experiment starts from: a trained run, its 8-bit test images, their scores.

Conventions used by every experiment (paper Sec. 4.2-4.5, App. A.3, B):

* **An image is an 8-bit image.** Everything that is scored, accepted, rejected, fooled or
  measured is a uint8 image ``k`` ``[N, C, 32, 32]`` (MNIST zero-padded; the padding is part of
  the image and can be attacked). :func:`flows.pixels.to_grid` puts any model-space tensor on
  that grid (pixel ``k`` owns the bin ``[k/256 - 0.5, (k+1)/256 - 0.5)``, so
  ``k = floor(256 (x + 0.5))``; the grid's maths is :mod:`flows.pixels`).
* **One scoring path.** Every score comes from :func:`flows.scoring.score_images` (``S`` draws of
  dequantisation and padding noise, log-mean-exp; the classifier is Bayes' rule on it, App. A.1).
  Gradient-based attacks differentiate a *fixed-draw* forward (:class:`FixedDraw`: one seeded
  draw ``(u0, e0)`` of :func:`flows.pixels.fixed_uniform`, ``x = (k + u0)/256 - 0.5``), but
  success, distance and detection are always decided on the rounded image scored with
  :mod:`flows.scoring`.
* **Distances.** L2 between 8-bit images on the [0, 1] pixel scale of the paper's budgets
  (eps = 1.5 MNIST, 33/255 CIFAR-10): ``||k' - k||_2 / 256`` (:func:`flows.pixels.grid_l2`, the
  model-input scale, range 1).
* **Detection** (Sec. 4.3): accepted iff bits/dim ``<= T`` (:mod:`flows.experiments.detection`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flows import pixels, scoring
from flows.scoring import Scores
from foundation import errors


# -- runs -----------------------------------------------------------------------------------------
def dataset_of(config: dict[str, Any] | None, override: str | None = None) -> str:
    """Dataset name of a run (``config["dataset"]``, or nested ``data.dataset``/``data.name``)."""
    from flows.data import DATASETS
    from flows.run_checks import channels_problem

    name = override
    if name is None and config:
        name = config.get("dataset")
        if name is None and isinstance(config.get("data"), dict):
            name = config["data"].get("dataset") or config["data"].get("name")
    if name is None:
        raise errors.UsageError("cannot tell the run's dataset from its config; pass --dataset")
    if name not in DATASETS:
        raise errors.UsageError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    model = config.get("model") if config else None
    problem = channels_problem(name, model) if isinstance(model, dict) else None
    if problem:
        raise errors.UsageError(f"--dataset {name}: {problem}")
    return str(name)


def load_run_checked(
    run_dir: str | os.PathLike[str], device: str = "cpu"
) -> tuple[nn.Module, dict]:
    """:func:`flows.runs.load_run_state` of a run directory or a model folder, eval mode, in the
    channels_last memory format that :func:`flows.scoring.score_images` puts it in: the same
    float32 values, but other convolution kernels, whose last-bit differences can move a sampled
    pixel across an 8-bit bin. Converted here, a model samples the same images whether its test
    scores came from the cache or were computed first.

    The returned config carries ``weights`` (``file``, ``sha256``): the weights every result of
    the experiment was made from (recorded through its ``run_config``). A missing directory or
    checkpoint is a usage error naming ``--run`` (exit 2); an unusable config, checkpoint or
    weights file a :class:`flows.runs.RunError` (exit 1).
    """
    from flows.runs import RunNotFoundError, load_run_state

    try:
        model, config, state = load_run_state(run_dir, map_location=device)
    except RunNotFoundError as exc:
        raise errors.UsageError(f"--run: {exc}") from None
    model = model.to(device, memory_format=torch.channels_last).eval()
    return model, {**(config or {}), "weights": state["weights"]}


def load_test_images(
    dataset: str,
    *,
    split: str = "test",
    n: int | None = None,
    data_dir: str | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of a split as uint8 ``[N, C, 32, 32]`` (zero-padded) and labels.

    BG-MNIST is rebuilt with the run's ``bg_seed`` (``config["bg_seed"]``) when given.
    """
    from flows.data import load_split
    from flows.preprocess import pad_to_32

    kwargs: dict[str, Any] = {}
    if config and config.get("bg_seed") is not None and dataset.startswith("bg-mnist"):
        kwargs["bg_seed"] = int(config["bg_seed"])
    try:
        images, labels = load_split(dataset, split, data_dir=data_dir, **kwargs)
    except (OSError, RuntimeError) as exc:  # missing files, flows.data.DataFileError
        raise errors.CommandError(
            f"cannot load {dataset}/{split}: {errors.one_line(exc)}") from None
    if n is not None:
        images, labels = images[:n], labels[:n]
    k = pad_to_32(torch.as_tensor(images)).to(torch.uint8).contiguous()
    return k, torch.as_tensor(np.asarray(labels), dtype=torch.int64)


# -- the fixed-draw forward -----------------------------------------------------------------------
class FixedDraw(nn.Module):
    """A fixed-draw forward: ``log q((k + u0)/256 - 0.5, e0 | y) + log p(y)`` (App. A.3).

    ``u0`` (dequantisation) and ``e0`` (padding noise) are the first two draws ``U[0,1)^(C,32,32)``
    of :func:`flows.pixels.fixed_uniform` for ``seed`` (the mechanism of the model's own eval-mode
    padding noise), the same for every image, so the output is a deterministic function of the
    image. :meth:`logits_ste` evaluates the model at the rounded point but lets gradients through
    to the continuous input (straight-through rounding, used inside the attacks).
    """

    def __init__(self, model: nn.Module, seed: int = 12345) -> None:
        super().__init__()
        self.model = model
        shape = (int(model.in_channels), int(model.image_size), int(model.image_size))
        u0, e0 = pixels.fixed_uniform(shape, seed, count=2)
        dev = model.log_prior().device
        self.register_buffer("u0", u0.to(dev), persistent=False)
        self.register_buffer("e0", e0.to(dev), persistent=False)
        self.seed = seed

    def logits_k(self, k: torch.Tensor) -> torch.Tensor:
        """Logits of uint8 (or integer-valued float) images ``k``."""
        return self._logits(pixels.bin_point(k.float(), self.u0))

    def logits_ste(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits at the rounded point, rounded point as bin centres)``, straight-through."""
        k = pixels.grid_index(x).detach()
        x_in = x + (pixels.bin_point(k, self.u0) - x).detach()
        x_c = x + (pixels.bin_point(k, 0.5) - x).detach()
        return self._logits(x_in), x_c

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        e = self.e0.to(x.dtype).expand_as(x)
        return self.model(x, noise=e) + self.model.log_prior()


# -- scoring (flows.scoring only) -----------------------------------------------------------------
def score(model: nn.Module, images: torch.Tensor, *, draws: int = scoring.DEFAULT_DRAWS,
          seed: int = 0, batch_size: int = 250, device: str = "cpu",
          desc: str | None = None) -> Scores:
    """:func:`flows.scoring.score_images` of uint8 images (the only scoring path)."""
    if images.dtype != torch.uint8:
        raise TypeError("score() takes uint8 images; use to_grid() first")
    if len(images) == 0:
        c = int(model.num_classes)
        prior = model.log_prior().detach().double().cpu().numpy()
        return Scores(np.zeros((0, draws, c)), prior, int(model.data_dims))
    return scoring.score_images(model, images, draws=draws, seed=seed, batch_size=batch_size,
                                device=device, desc=desc)


@dataclass
class ScoredRun:
    """A trained run with its test images scored once: what every experiment starts from."""

    model: nn.Module
    config: dict[str, Any]
    dataset: str
    images: torch.Tensor  # uint8 [N, C, 32, 32]
    y: torch.Tensor
    scores: Scores
    draws: int
    score_seed: int


@dataclass(frozen=True)
class ScoringSettings:
    """How an experiment scores its test split: the experiment CLI's shared flags
    (:func:`flows.experiments.runner.experiment_parser`)."""

    n_test: int | None = None  # first N test images (None: all)
    draws: int = scoring.DEFAULT_DRAWS
    seed: int = 0
    batch_size: int = 250
    data_dir: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    device: str = "cpu"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ScoringSettings:
        return cls(args.n_test, args.draws, args.seed, args.batch_size, args.data_dir,
                   args.cache_dir, args.device)


def load_scored_run(run_dir: str, settings: ScoringSettings,
                    dataset: str | None = None) -> ScoredRun:
    """Load ``run_dir``, its test split and its (cached) scores. A model whose test metrics are
    not finite (broken weights) is refused as :mod:`flows.evaluate` refuses it
    (:func:`flows.scoring.checked_metrics`: a :class:`flows.runs.RunError`, exit 1), before any
    result is made from its scores."""
    model, config = load_run_checked(run_dir, settings.device)
    name = dataset_of(config, dataset)
    k, y = load_test_images(name, n=settings.n_test, data_dir=settings.data_dir, config=config)
    scores = score_cached(model, k, run_dir=run_dir, dataset=name, split="test",
                          n=settings.n_test, draws=settings.draws, seed=settings.seed,
                          cache_dir=settings.cache_dir, batch_size=settings.batch_size,
                          device=settings.device)
    if len(k):
        weights = Path(run_dir) / config["weights"]["file"]
        scoring.checked_metrics(scoring.metrics(scores, y), weights)
    return ScoredRun(model, config, name, k, y, scores, settings.draws, settings.seed)


def _cache_key(run_dir: str | os.PathLike[str], dataset: str, split: str, n: int | None,
               draws: int, seed: int, batch_size: int) -> str:
    from flows.layout import CHECKPOINT_NAME, CONFIG_NAME, WEIGHTS_NAME

    p = Path(run_dir).resolve()
    stamp = []
    for name in (CONFIG_NAME, CHECKPOINT_NAME, WEIGHTS_NAME):
        f = p / name
        if f.is_file():
            st = f.stat()
            stamp.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    import flows.layers
    import flows.model
    import flows.priors

    code = [Path(m.__file__).read_bytes() for m in (flows.model, flows.layers, flows.priors,
                                                     scoring)]
    stamp.append(hashlib.sha1(b"".join(code)).hexdigest())
    raw = "|".join([str(p), dataset, split, str(n), str(draws), str(seed), str(batch_size),
                    str(torch.get_num_threads()), *stamp])
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def _cache_problem(scores: Scores, model: nn.Module, n: int, draws: int) -> str | None:
    """What makes ``scores`` unusable as the scores of ``n`` images with ``draws`` draws by
    ``model`` (None: nothing): float arrays of the shapes asked for, finite values, the model's
    ``num_dims``."""
    c = int(model.num_classes)
    for name, a, shape in (("per_draw", scores.per_draw, (n, draws, c)),
                           ("log_prior", scores.log_prior, (c,))):
        if not np.issubdtype(a.dtype, np.floating) or a.shape != shape:
            return f"{name} is {a.dtype} {a.shape}, expected float {shape}"
        if not np.isfinite(a).all():
            return f"{name} holds non-finite values"
    if not isinstance(scores.num_dims, int) or scores.num_dims != int(model.data_dims):
        return f"num_dims is {scores.num_dims!r}, expected {int(model.data_dims)}"
    return None


def _read_cache(path: Path, model: nn.Module, n: int, draws: int) -> Scores | None:
    """The scores cached at ``path``, or None (saying why on stderr, one line) when they cannot
    be read or are not valid scores for this request (:func:`_cache_problem`)."""
    try:
        with np.load(path) as z:
            scores = Scores(z["per_draw"], z["log_prior"], z["num_dims"].item())
        problem = _cache_problem(scores, model, n, draws)
    except Exception as exc:  # damaged bytes raise anything from zipfile or numpy (BadZipFile,
        problem = errors.one_line(exc)  # EOFError, ValueError, KeyError, RuntimeError, ...)
    if problem is None:
        return Scores(scores.per_draw.astype(np.float64), scores.log_prior.astype(np.float64),
                      scores.num_dims)
    print(f"note: {path}: unusable score cache ({problem}); recomputing", file=sys.stderr,
          flush=True)
    return None


def score_cached(model: nn.Module, images: torch.Tensor, *, run_dir: str | os.PathLike[str],
                 dataset: str, split: str, n: int | None, draws: int, seed: int,
                 cache_dir: str | os.PathLike[str] | None, batch_size: int = 250,
                 device: str = "cpu") -> Scores:
    """:func:`score`, stored as ``.npz`` under ``cache_dir`` (keyed by run, data, draws, seed).

    The cache only ever saves work: one that cannot be read, or whose contents are not valid
    scores of these images (:func:`_cache_problem`), is recomputed and replaced atomically,
    with a note on stderr; scores that are not valid (a broken model) are not cached.
    """
    from foundation import atomic

    path = None
    if cache_dir:
        key = _cache_key(run_dir, dataset, split, n, draws, seed, batch_size)
        path = Path(cache_dir) / f"scores-{key}.npz"
        if path.exists():
            cached = _read_cache(path, model, len(images), draws)
            if cached is not None:
                return cached
    s = score(model, images, draws=draws, seed=seed, batch_size=batch_size, device=device,
              desc=f"scoring {dataset}/{split} (S={draws})")
    if path is not None and _cache_problem(s, model, len(images), draws) is None:
        atomic.atomic_write_bytes(path, lambda f: np.savez(
            f, per_draw=s.per_draw, log_prior=s.log_prior, num_dims=s.num_dims))
    return s
