"""Evaluate a run on the test split: ``python -m flows.evaluate --run RUN_DIR [--out FILE]``.

Writes JSON with test accuracy and its 95% Wilson interval, bits/dim of ``log p(x)`` with its
standard error, the training history and the phases before it (``lineage``: its warm starts,
:mod:`flows.lineage`), plus provenance (config, seed, git commit, device, wall time). Scores come
from :func:`flows.scoring.score_images`: ``--draws`` draws of dequantisation and padding noise
per image (seeded by ``--seed``), the classifier on the log-mean-exp over draws, everything
float32 (no autocast). See :mod:`flows.scoring` for the estimators and why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from flows import data as fdata
from flows import devices, scoring
from flows.layout import CONFIG_NAME, EVAL_NAME, RUN_FILE_NAMES, SUMMARY_NAME, is_run_file
from flows.lineage import phases_of
from flows.provenance import provenance
from flows.runs import (
    RunError,
    load_run_state,
)
from foundation import cli, errors, runlock
from foundation.atomic import write_json
from foundation.provenance import portable_command

PROG = "python -m flows.evaluate"
MAX_DRAWS = 1000


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--run", type=cli.existing_dir_of("run directory"), required=True,
                   help="run directory written by flows.train")
    p.add_argument("--out", type=cli.output_file, default=None,
                   help="extra JSON copy, e.g. results/table1/x.json")
    p.add_argument("--data-dir", type=cli.existing_dir_of("data directory"), default=None,
                   help="default: the run's, $ANNULUS_DATA_DIR, ...")
    p.add_argument("--batch-size", type=cli.positive_int, default=500)
    p.add_argument("--n-test", type=cli.non_negative_int, default=0,
                   help="evaluate only the first N test images (0: all), as in the experiments")
    # the earlier name, kept so that stored commands still run
    p.add_argument("--limit", dest="n_test", type=cli.non_negative_int,
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    p.add_argument("--draws", type=cli.int_range(1, MAX_DRAWS), default=scoring.DEFAULT_DRAWS,
                   help=f"noise draws per image (dequantisation and padding), 1..{MAX_DRAWS}")
    p.add_argument("--seed", type=cli.seed, default=0, help="seed of the noise draws")
    p.add_argument("--device", type=devices.device, default=devices.default_device())
    p.add_argument("--threads", type=cli.threads, default=0)
    return p


def evaluate_model(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   batch_size: int, device: torch.device, draws: int = scoring.DEFAULT_DRAWS,
                   seed: int = 0, desc: str | None = None) -> dict:
    """Accuracy and bits/dim of ``model`` on uint8 ``images`` (:func:`flows.scoring.metrics`)."""
    scores = scoring.score_images(model, images, draws=draws, seed=seed, batch_size=batch_size,
                                  device=device, desc=desc)
    return scoring.metrics(scores, labels)


def _evaluated_images(path: Path) -> int:
    """The number of test images the ``eval.json`` at ``path`` scored (0 if none or unreadable)."""
    try:
        n = json.loads(path.read_text())["metrics"]["n_test"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return 0
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def _dir_writable(d: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=d):
            return True
    except OSError:
        return False


@errors.guard(PROG)
@runlock.releasing
def main(argv: list[str] | None = None) -> int:
    """Evaluate; bad usage: one line, exit 2; unusable run or data: one line, exit 1."""
    args = build_parser().parse_args(argv)
    run_dir = Path(args.run)
    if args.out is not None and is_run_file(Path(args.out), run_dir):
        raise errors.UsageError(
            f"--out {args.out} would replace a file of a run directory or model folder "
            f"({', '.join(sorted(RUN_FILE_NAMES))}); a full evaluation writes the run's "
            f"{EVAL_NAME} itself")
    if args.out is not None:
        cli.refuse_out_inside(args.out, args, ("data_dir",))
    in_run = _dir_writable(run_dir)
    if not in_run and args.out is None and not args.n_test:
        raise errors.UsageError(f"--run {run_dir}: directory not writable (cannot write "
                             f"{EVAL_NAME} there); pass --out FILE")
    targets = ([run_dir / EVAL_NAME] if in_run else []) + ([Path(args.out)] if args.out else [])
    for target in targets:  # one writer per file: a second one is refused (exit 1)
        runlock.acquire(runlock.file_lock_path(target), target)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t0 = time.time()
    model, config, ckpt = load_run_state(run_dir, map_location=device, keys=("epoch", "history"))
    if config.get("dataset") not in fdata.DATASETS:
        raise RunError(f"{run_dir / CONFIG_NAME}: 'dataset' is {config.get('dataset')!r}, "
                       f"expected one of {', '.join(fdata.DATASETS)}")
    data_dir = args.data_dir
    if data_dir is None and not os.environ.get(fdata.ENV_VAR):
        data_dir = config.get("data_dir")
        if data_dir is not None and not Path(data_dir).is_dir():
            raise RunError(f"{run_dir / CONFIG_NAME}: its data_dir {data_dir} (the training's "
                           f"--data-dir) is not a directory here; pass --data-dir or set "
                           f"{fdata.ENV_VAR}")
    images, labels = fdata.load_split(config["dataset"], "test", data_dir,
                                      bg_seed=config.get("bg_seed", fdata.DEFAULT_BG_SEED))
    n_all = images.shape[0]
    if args.n_test > 0:
        images, labels = images[:args.n_test], labels[:args.n_test]
    metrics = evaluate_model(model, images, labels, args.batch_size, device, args.draws,
                             args.seed, desc="scoring")
    metrics = scoring.checked_metrics(metrics, run_dir / ckpt["weights"]["file"])
    history = ckpt["history"]  # checked (run_checks.checkpoint_problem, runs.read_summary)
    train_summary = run_dir / SUMMARY_NAME
    result = {
        "run": run_dir.resolve().name,
        "weights": ckpt["weights"],
        "metrics": metrics,
        "config": config,
        "seed": config.get("seed"),
        "epochs_trained": ckpt["epoch"],
        "train_history": history,
        "lineage": phases_of(run_dir),  # the training phases before this run's own
        "train_wall_time_s": sum(float(h.get("seconds", 0.0)) for h in history),
        "train_summary_present": train_summary.exists(),
        "eval_wall_time_s": time.time() - t0,
        "command": portable_command("flows.evaluate",
                                    sys.argv[1:] if argv is None else list(argv)),
        "provenance": provenance(device),
    }
    full = args.n_test == 0 or args.n_test >= n_all
    kept = _evaluated_images(run_dir / EVAL_NAME)
    if in_run and full and kept > n_all:  # e.g. another --data-dir with a smaller test split
        print(f"{PROG}: note: the run's {EVAL_NAME} covers {kept} test images, this evaluation "
              f"{n_all}; it is left as it was" + (f", result written to {args.out}" if args.out
                                                  else " (pass --out FILE to keep the result)"),
              file=sys.stderr)
    elif in_run and full:
        write_json(run_dir / EVAL_NAME, result)
    elif in_run:  # a partial evaluation never replaces the run's full one
        print(f"{PROG}: note: --n-test {args.n_test}: a partial evaluation; {EVAL_NAME} of the run "
              "left as it was" + (f", result written to {args.out}" if args.out else
                                  " (pass --out FILE to keep the result)"), file=sys.stderr)
    else:
        print(f"{PROG}: note: {run_dir} is not writable; {EVAL_NAME} written only to {args.out}",
              file=sys.stderr)
    if args.out:
        write_json(Path(args.out), result)
    se = metrics.get("bits_per_dim_se")
    print(f"{result['run']}: accuracy {metrics['accuracy']:.4f}  bits/dim "
          f"{metrics['bits_per_dim']:.4f} +- {'n/a' if se is None else f'{se:.4f}'}  "
          f"(n={metrics['n_test']}, draws={metrics['draws']}, "
          f"{result['eval_wall_time_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
