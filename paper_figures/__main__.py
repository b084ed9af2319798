"""``python -m paper_figures``: rebuild the paper's figures and tables from stored results.

Exit status 0 when everything requested was made, 1 when an input was missing or malformed
(the other figures are still made; each problem is one line naming the file), 2 on bad usage
(one line naming the argument).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from foundation import atomic, cli, errors, runlock
from paper_figures.registry import BY_NAME, ITEMS, Context, run_item

PROG = "python -m paper_figures"


def results_dir(value: str) -> Path:
    """Argument type: the results directory (may be missing: then every input is reported as
    missing), but not a file."""
    path = Path(value)
    if not value.strip():
        raise argparse.ArgumentTypeError("empty path")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is not a directory")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog=PROG,
        description="Rebuild every figure (PNG + PDF) and table (Markdown + LaTeX) of the paper "
                    "that the project reproduces, from the stored result JSON.")
    p.add_argument("--only", action="append", metavar="NAME", choices=sorted(BY_NAME),
                   help="build only this item (repeatable); see --list")
    p.add_argument("--out", type=cli.output_dir, default=Path("figures"),
                   help="output directory")
    p.add_argument("--results", type=results_dir, default=Path("results"),
                   help="directory of the result JSON (default: results)")
    p.add_argument("--recompute", action="store_true",
                   help="recompute the theory caches in RESULTS/theory/*.json")
    p.add_argument("--list", action="store_true", help="list the items and exit")
    return p


@errors.guard(PROG)
@runlock.releasing
def main(argv: Sequence[str] | None = None) -> int:
    """Build the requested items; see the module docstring for the exit statuses."""
    args = build_parser().parse_args(argv)
    if args.list:
        for it in ITEMS:
            print(f"{it.name:22s} {it.kind:6s} {it.paper:17s} {it.description}")
        return 0
    # one build per output folder at a time (a second one: exit 1, naming the first)
    runlock.acquire(runlock.dir_lock_path(args.out), args.out)
    for d in (args.out, args.results / "theory"):  # temporaries of a killed earlier build
        atomic.clean_stale_tmp(d)
    ctx = Context(results=args.results, out=args.out, recompute=args.recompute)
    items = [BY_NAME[n] for n in dict.fromkeys(args.only)] if args.only else list(ITEMS)
    outcomes = []
    for it in items:
        t0 = time.perf_counter()
        oc = run_item(it, ctx)
        outcomes.append(oc)
        made = ", ".join(str(p) for p in oc.outputs if p.suffix in (".png", ".md"))
        print(f"[{oc.status:7s}] {it.name:22s} {time.perf_counter() - t0:5.1f} s  {made}",
              flush=True)
    bad = [o.name for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(bad)}/{len(outcomes)} made completely into {args.out}"
          + (f"; incomplete: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
