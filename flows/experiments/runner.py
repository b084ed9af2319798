"""The shared shape of every experiment's ``main()``: its CLI (the arguments all experiments
take, argument types), the exit-code guard, the output lock, seeding, and the start and end of a
single-run experiment (:func:`start_scored_run`, :func:`write_with_provenance`). Experiments write
JSON (and, with ``--png-dir``, the images only a model can draw); every plot of a stored result
is ``paper_figures``'."""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flows import devices, scoring
from flows.data import DATASETS
from flows.experiments import detection, scored_runs
from flows.layout import RUN_FILE_NAMES, is_run_file
from flows.provenance import Provenance, write_result
from foundation import cli, errors


def cli_main(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap an experiment's ``main``: usage errors exit 2, expected runtime errors exit 1.

    Always one ``PROG: error: ...`` line on stderr and no traceback
    (:func:`foundation.errors.guard`).
    """
    spec = main.__globals__.get("__spec__")  # __module__ is "__main__" under -m
    name = spec.name if spec is not None and spec.name != "__main__" else main.__module__
    if name == "__main__":
        name = "flows.experiments"
    from foundation import runlock

    # the output's lock (require_run) is held until the command ends
    return errors.guard(f"python -m {name}", runtime=(RuntimeError, ValueError))(
        runlock.releasing(main))


# -- argument types (foundation.cli) -------------------------------------------------------------
positive_int = cli.positive_int
non_negative_int = cli.non_negative_int
positive_float = cli.positive_float
non_negative_float = cli.non_negative_float
MAX_COUNT = 10**7
"""Upper bound of count arguments (images, pairs, steps): beyond it the run cannot finish."""
count = cli.int_range(1, MAX_COUNT)
count0 = cli.int_range(0, MAX_COUNT)


def experiment_parser(module: str, description: str, *, many_runs: bool = False,
                      dataset_flag: bool = True, images: str | None = None
                      ) -> cli.ArgumentParser:
    """The arguments every experiment CLI shares (run, output, data, scoring, device);
    ``images`` (what they show) adds ``--png-dir`` for an experiment that draws images."""
    p = cli.ArgumentParser(prog=f"python -m flows.experiments.{module}", description=description)
    if many_runs:
        p.add_argument("--run", action="append", default=[], type=cli.existing_dir,
                       help="run directory (repeatable)")
    else:
        p.add_argument("--run", type=cli.existing_dir,
                       help="trained run directory (flows.runs layout)")
    p.add_argument("--out", type=cli.output_file, help="output JSON path")
    if images:
        p.add_argument("--png-dir", type=cli.output_dir, default=None,
                       help=f"write PNGs of {images} here")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--n-test", type=count, default=None, help="first N test images (default all)")
    p.add_argument("--draws", type=cli.int_range(1, 1024), default=scoring.DEFAULT_DRAWS,
                   help="noise draws per image in flows.scoring (S)")
    p.add_argument("--batch-size", type=cli.int_range(1, 100000), default=250)
    p.add_argument("--data-dir", type=cli.existing_dir_of("data directory"), default=None,
                   help="dataset root (default: $ANNULUS_DATA_DIR or ../shared/data)")
    if dataset_flag:
        p.add_argument("--dataset", default=None, choices=DATASETS,
                       help="override the dataset of the run config")
    p.add_argument("--cache-dir", type=cli.output_dir, default=None,
                   help="cache test-set scores here (.npz)")
    p.add_argument("--device", type=devices.device, default="cpu")
    p.add_argument("--threads", type=cli.threads, default=0, help="torch threads (0: default)")
    return p


def require_run(args: argparse.Namespace) -> None:
    """Check that ``--run`` and ``--out`` were given and that ``--out`` is not one of the files
    of a run directory or model folder (:func:`flows.layout.is_run_file`), set the thread count,
    and take the output's lock (held until the command ends; a second writer exits 1)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.run or not args.out:
        raise errors.UsageError("--run and --out are required")
    runs = args.run if isinstance(args.run, list) else [args.run]
    if any(is_run_file(Path(args.out), Path(r)) for r in runs):
        raise errors.UsageError(
            f"--out {args.out} would replace a file of a run directory or model folder "
            f"({', '.join(sorted(RUN_FILE_NAMES))}); write the result elsewhere")
    cli.refuse_out_inside(args.out, args, ("data_dir", "cache_dir", "png_dir"))
    from foundation import (
        atomic,
        runlock,  # one writer per output file (a second: exit 1)
    )

    runlock.acquire(runlock.file_lock_path(args.out), args.out)
    atomic.clean_stale_tmp(Path(args.out).parent)  # temporaries of killed earlier writers


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def start_scored_run(args: argparse.Namespace, argv: Sequence[str] | None, module: str
                     ) -> tuple[Provenance, scored_runs.ScoredRun]:
    """The start every single-run experiment shares: check ``--run``/``--out`` and lock the
    output (:func:`require_run`), seed, start the provenance clock, and load ``--run`` with its
    test images scored once (:func:`flows.experiments.scored_runs.load_scored_run`)."""
    require_run(args)
    if getattr(args, "threshold", None) == "paper":  # a rule the dataset has, before scoring
        from flows.runs import read_config

        detection.require_rule("paper", scored_runs.dataset_of(read_config(args.run),
                                                                args.dataset))
    set_seed(args.seed)
    prov = Provenance(seed=args.seed, run_dir=args.run, run_config=None, device=args.device,
                      argv=None if argv is None else list(argv), module=module)
    run = scored_runs.load_scored_run(
        args.run, scored_runs.ScoringSettings.from_args(args), args.dataset)
    prov.run_config = run.config
    return prov, run


def write_with_provenance(out: str, result: dict[str, Any], prov: Provenance) -> None:
    """Stamp ``result`` with the finished provenance and write it atomically to ``out``."""
    result["provenance"] = prov.finish()
    write_result(out, result)
