"""Table 3 and Figures 5-6 (paper Sec. 4.5): conditional flows on BG-MNIST.

BG-MNIST-X is MNIST whose black background is replaced by a greyscaled, downsampled CIFAR-10
image blurred with a Gaussian of bandwidth X (``flows.data``; X in {0, 1, 5}).  For every run
given with ``--run`` (typically the Reweighted runs on MNIST, BG-MNIST-5/1/0 and CIFAR-10) this
computes test accuracy (95% Wilson interval, n) and test bits/dim (mean over the first
``--n-test`` test images of the ``S``-draw bits/dim of :mod:`flows.scoring`), next to the paper's
Table 3.  For ``--samples-run``
(default: the BG-MNIST-0 run) it draws ``--samples-per-class`` samples per class at
``--temperature`` (Figure 5) and, unless ``--n-pairs 0``, runs the interpolation experiment of
:mod:`flows.experiments.interpolation_paths` on it (Figure 6).

CLI::

    python -m flows.experiments.bg_mnist --run RUN_A --run RUN_B ... --out OUT.json
        [--png-dir DIR] [--samples-run RUN] [--samples-per-class 8] [--temperature 0.7]
        [--n-pairs 200] [--n-test N] [--seed 0] [--cache-dir DIR]

JSON keys: ``experiment`` "bg_mnist"; ``rows``: list of {``run_dir``, ``dataset``,
``objective``, ``n_test``, ``accuracy``, ``bits_per_dim``, ``bits_per_dim_std``,
``run_eval`` (the run's own ``eval.json`` if present), ``paper_accuracy_pct``,
``paper_bits_per_dim``}; ``samples``: {``run_dir``, ``dataset``, ``per_class``,
``temperature``, ``seed``, ``bits_per_dim_of_samples`` [C][k], ``pred_of_samples`` [C][k],
``png``} or null; ``interpolation``: an :mod:`~flows.experiments.interpolation` result (same
keys) or null; ``paper_table3``; ``provenance`` (``run_config`` = list of the runs' configs).

``--png-dir`` saves the samples and the example interpolation paths; Table 3 and Figures 5 and 6
are drawn from the JSON by ``python -m paper_figures --only table3 --only fig5 --only fig6``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flows import pixels
from flows.experiments import detection, interpolation_paths, png_files, runner, scored_runs
from flows.layout import EVAL_NAME
from flows.provenance import Provenance, write_result
from flows.scoring import Scores
from foundation import cli, errors, paper_numbers
from foundation.provenance import portable_path

MODULE = "flows.experiments.bg_mnist"

PAPER_TABLE3 = paper_numbers.TABLE3
"""Paper Table 3 (Reweighted models): accuracy in %, test bits/dim."""


def read_run_eval(path: Path) -> dict | None:
    """The run's own ``eval.json`` (``None`` where it has none); an unreadable one is an error
    naming the file."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise errors.CommandError(f"{path}: not a readable evaluation: {errors.one_line(exc)}"
                                  ) from None
    if not isinstance(value, dict):
        raise errors.CommandError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def table_row(
    run_dir: str, settings: scored_runs.ScoringSettings, run_eval: dict | None
) -> tuple[dict[str, Any], Any, dict, torch.Tensor, torch.Tensor, Scores]:
    """One Table-3 row: accuracy (95% Wilson, n) and bits/dim (mean +- s.e.) of the test set;
    ``run_eval``: the run's own evaluation (:func:`read_run_eval`), recorded beside it."""
    run = scored_runs.load_scored_run(run_dir, settings)
    model, config, dataset, x, y, sc = (run.model, run.config, run.dataset, run.images, run.y,
                                        run.scores)
    bpd = sc.bpd
    paper = PAPER_TABLE3.get(dataset)
    row = {
        "run_dir": portable_path(str(run_dir)),
        "dataset": dataset,
        "objective": config.get("objective"),
        "n_test": len(x),
        "draws": sc.draws,
        "accuracy": float(np.mean(sc.pred == y.numpy())),
        "accuracy_ci": detection.pct_ci(int(np.sum(sc.pred == y.numpy())), len(x)),
        "bits_per_dim": float(bpd.mean()),
        "bits_per_dim_std": float(bpd.std()),
        "bits_per_dim_se": float(bpd.std(ddof=1) / np.sqrt(len(bpd))) if len(bpd) > 1 else None,
        "run_eval": run_eval,
        "paper_accuracy_pct": None if paper is None else paper[0],
        "paper_bits_per_dim": None if paper is None else paper[1],
    }
    return row, model, config, x, y, sc


def _sample_grid(samples: torch.Tensor, path: Path, real: torch.Tensor | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, k = samples.shape[:2]
    rows = c + (1 if real is not None else 0)
    fig, axes = plt.subplots(rows, k, figsize=(0.9 * k, 0.9 * rows), squeeze=False)
    for r in range(rows):
        for j in range(k):
            img = real[j] if (real is not None and r == 0) else samples[r - (real is not None), j]
            a = pixels.intensity(img.numpy().transpose(1, 2, 0))
            axes[r, j].imshow(a[..., 0] if a.shape[2] == 1 else a, cmap="gray", vmin=0, vmax=1)
            axes[r, j].set_xticks([])
            axes[r, j].set_yticks([])
    if real is not None:
        axes[0, 0].set_ylabel("data", fontsize=6)
    fig.tight_layout()
    png_files.savefig(fig, path, dpi=70)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = runner.experiment_parser(
        "bg_mnist",
        "Table 3 / Figures 5-6: BG-MNIST accuracy, bits/dim, samples, interpolations.",
        many_runs=True, dataset_flag=False,
        images="the class-conditional samples and the example interpolation paths")
    p.add_argument("--samples-run", type=cli.existing_dir_of("run directory"), default=None,
                   help="default: the bg-mnist-0 run, if any")
    p.add_argument("--samples-per-class", type=cli.int_range(1, 10000), default=8)
    p.add_argument("--temperature", type=cli.positive_float, default=0.7)
    p.add_argument("--n-pairs", type=runner.count0, default=200, help="0 skips the interpolation")
    p.add_argument("--n-alphas", type=cli.int_range(3, 10001), default=21)
    p.add_argument("--threshold", default="quantile", choices=("quantile", "paper"))
    return p


@runner.cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runner.require_run(args)
    runner.set_seed(args.seed)
    if not args.run:
        raise errors.UsageError("--run: give at least one run directory")
    seen: dict[Path, Path] = {}
    for run in args.run:
        if Path(run).resolve() in seen:
            raise errors.UsageError(f"--run {run}: given twice (as {seen[Path(run).resolve()]})")
        seen[Path(run).resolve()] = run
    # every run's own evaluation, read before the minutes of scoring (a bad one fails first)
    dirs = [Path(r) for r in args.run] + ([Path(args.samples_run)] if args.samples_run else [])
    evals = {d.resolve(): read_run_eval(d / EVAL_NAME) for d in dirs}
    prov = Provenance(seed=args.seed, run_dir=None, run_config=None, device=args.device,
                      argv=argv, module=MODULE)
    rows, configs = [], []
    by_dataset: dict[str, tuple] = {}
    scoring = scored_runs.ScoringSettings.from_args(args)
    for run in args.run:
        row, model, config, x, y, sc = table_row(run, scoring, evals[Path(run).resolve()])
        rows.append(row)
        configs.append(config)
        by_dataset[row["dataset"]] = (run, model, x, y, sc)
        print(f"{row['dataset']}: acc={row['accuracy']:.4f} bpd={row['bits_per_dim']:.3f}")
    samples_run = args.samples_run
    if samples_run is None and "bg-mnist-0" in by_dataset:
        samples_run = by_dataset["bg-mnist-0"][0]
    png = png_files.resolve_png_dir(args.png_dir)
    samples_info = None
    interp = None
    if samples_run is not None:
        key = next((d for d, v in by_dataset.items()
                    if Path(v[0]).resolve() == Path(samples_run).resolve()), None)
        if key is None:
            row, model, config, x, y, sc = table_row(samples_run, scoring,
                                                     evals[Path(samples_run).resolve()])
            key = row["dataset"]
            by_dataset[key] = (samples_run, model, x, y, sc)
        run, model, x, y, sc = by_dataset[key]
        runner.set_seed(args.seed)
        c = int(model.num_classes)
        k = args.samples_per_class
        if not hasattr(model, "sample"):
            raise errors.UsageError("the model has no sample(); cannot draw Figure 5")
        samples = torch.stack([model.sample(k, yy, args.temperature).cpu() for yy in range(c)])
        samples = pixels.to_grid(samples)  # a sample is shown and scored as an 8-bit image
        ss = scored_runs.score(model, samples.flatten(0, 1), draws=args.draws, seed=args.seed + 2,
                          batch_size=args.batch_size, device=args.device)
        png_path = None
        if png is not None:
            png_path = png / f"fig5_samples_{key}.png"
            _sample_grid(samples, png_path, x[:k])
        samples_info = {
            "run_dir": portable_path(str(run)),
            "dataset": key,
            "per_class": k,
            "temperature": args.temperature,
            "seed": args.seed,
            "bits_per_dim_of_samples": ss.bpd.reshape(c, k),
            "pred_of_samples": ss.pred.reshape(c, k),
            "png": None if png_path is None else str(png_path),
        }
        if args.n_pairs > 0:
            interp, _ = interpolation_paths.run_interpolation(
                model, x, y, sc, key, n_pairs=args.n_pairs, n_alphas=args.n_alphas,
                seed=args.seed, threshold=args.threshold, batch_size=args.batch_size,
                draws=args.draws, device=args.device,
            )
            if png is not None:
                interpolation_paths.plot_strips(x, interp, png / f"fig1_strips_{key}.png")
    result = {
        "experiment": "bg_mnist",
        "rows": rows,
        "samples": samples_info,
        "interpolation": interp,
        "paper_table3": {
            k: {"accuracy_pct": v[0], "bits_per_dim": v[1]} for k, v in PAPER_TABLE3.items()
        },
    }
    prov.run_config = configs  # type: ignore[assignment]
    result["provenance"] = prov.finish()
    write_result(args.out, result)
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
