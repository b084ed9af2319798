"""The training phases behind a model: its chain of warm starts, each verified by sha256.

A run started from another run's weights records them in ``config["init_from"]`` (path, weights
file, sha256; :func:`flows.runs.init_from_run`). The recipe's models are such chains: a likelihood
phase (objective ``base``), then one or more Eq. (6) phases. :func:`trace` follows the chain back
from a run directory or a model folder. An earlier phase is taken only while the file at its
recorded path still has the recorded sha256; the first one that is gone or differs ends the chain
with a record saying so (``"missing"``), never with a guess. A model folder that holds
:data:`flows.layout.LINEAGE_NAME` (written by ``flows.package``) gives its recorded phases, so a
chain stays known after the run folders behind it are gone. ``flows.train`` writes a run's
``lineage.json`` when it starts from another run's weights (the moment its source is verified),
``flows.resume_state`` carries it, and ``flows.package`` copies it into the model folder.

``python -m flows.lineage --run DIR`` prints the phases; ``--write`` also stores them in ``DIR``
(a run directory or model folder without one, e.g. made before lineages were recorded).

Each phase: ``run`` (the folder's name), ``path`` (as recorded, portable), ``weights`` (file and
sha256 the next phase started from), ``dataset``, ``objective``, ``preset``, ``epochs``,
``batch_size``, ``seed``, ``lr``, ``lr_schedule``, ``init_from`` (the phase's own warm start as
its config records it: path, prior, weights; ``None`` for a phase trained from scratch),
``invocations`` (command, epochs done and provenance of each ``flows.train`` invocation) and
``history`` (one record per epoch, as in ``train_summary.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from flows.layout import LINEAGE_NAME, SUMMARY_NAME, folder_kind
from flows.run_checks import history_problem
from flows.runs import RunError, read_config, read_summary
from flows.weights import sha256_file
from foundation import cli, errors
from foundation.atomic import write_json
from foundation.provenance import REPO_ROOT

PROG = "python -m flows.lineage"

#: Phases traced at most; a longer chain ends in a ``missing`` record (a cycle cannot verify, but
#: a corrupt record could loop).
MAX_PHASES = 32


def resolve(recorded: str) -> Path:
    """The folder a recorded (portable) path names: ``~/...`` under the home directory, a
    relative path under the repository root (:func:`foundation.provenance.portable_path`)."""
    path = Path(recorded).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def phase(folder: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The record of one phase: ``folder``'s config (as read) and training history (not its
    weights)."""
    invocations = read_summary(folder / SUMMARY_NAME)["invocations"]
    init = config.get("init_from")
    return {"run": folder.resolve().name, "dataset": config.get("dataset"),
            "objective": config.get("objective"), "preset": config.get("preset"),
            "epochs": config.get("epochs"), "batch_size": config.get("batch_size"),
            "seed": config.get("seed"), "lr": config.get("lr"),
            "lr_schedule": config.get("lr_schedule"),
            "init_from": init if isinstance(init, dict) else None,
            "invocations": [{"command": i["command"], "epochs_done": i["epochs_done"],
                             "provenance": i.get("provenance")} for i in invocations],
            "history": invocations[-1]["history"]}  # each invocation's history is cumulative


def phase_problem(p: Any) -> str | None:
    """Why ``p`` is not a phase record as :func:`trace_from` writes them (``None`` if it is): a
    dict with a ``run`` name and either a ``missing`` reason or the ``weights`` (file, sha256)
    and the ``history`` (:func:`flows.run_checks.history_problem`)."""
    if not isinstance(p, dict) or not isinstance(p.get("run"), str):
        return "a phase is not a record with a run name"
    if "missing" in p:
        return None if isinstance(p["missing"], str) else f"{p['run']}: 'missing' is not text"
    w = p.get("weights")
    if not (isinstance(w, dict) and isinstance(w.get("file"), str)
            and isinstance(w.get("sha256"), str)):
        return f"{p['run']}: no weights file and sha256"
    why = history_problem(p.get("history"))  # as a train_summary.json's history is checked
    return f"{p['run']}: {why}" if why else None


def _recorded(folder: Path) -> list[dict[str, Any]] | None:
    """The phases of ``folder/lineage.json``, ``None`` when it is not there; a file that is
    there but unreadable or not a list of phase records (:func:`phase_problem`) is a
    :class:`~flows.runs.RunError` (it is never silently replaced by a re-trace)."""
    path = folder / LINEAGE_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"{path}: cannot read it ({errors.one_line(exc)[:200]})") from None
    phases = data.get("phases") if isinstance(data, dict) else None
    if not isinstance(phases, list):
        raise RunError(f"{path}: malformed (no list of phases)")
    for p in phases:
        if why := phase_problem(p):
            raise RunError(f"{path}: malformed ({why})")
    return phases


def trace(folder: Path) -> list[dict[str, Any]]:
    """The earlier phases of the run or model folder ``folder``, oldest first (``[]`` for a
    model trained from scratch): :func:`trace_from` its ``config["init_from"]``."""
    return trace_from(read_config(folder).get("init_from"))


def trace_from(init: Any) -> list[dict[str, Any]]:
    """The phases behind a warm start ``init`` (a config's ``init_from`` record), oldest first.
    The first phase that cannot be verified is a record ``{"run", "path", "missing": why}`` and
    nothing before it is listed."""
    chain: list[dict[str, Any]] = []
    while isinstance(init, dict) and len(chain) < MAX_PHASES:
        recorded = str(init.get("path"))
        weights = init.get("weights") if isinstance(init.get("weights"), dict) else {}
        src = resolve(recorded)
        entry: dict[str, Any] = {"run": Path(recorded).name, "path": recorded,
                                 "weights": {"file": weights.get("file"),
                                             "sha256": weights.get("sha256")}}
        file = src / str(weights.get("file"))
        if not file.is_file():
            chain.append({**entry, "missing": f"{weights.get('file')} not found at {recorded}"})
            break
        try:
            digest = sha256_file(file)
        except OSError as exc:
            chain.append({**entry, "missing": f"{recorded}/{weights.get('file')}: cannot read "
                          f"({exc.strerror or type(exc).__name__})"})
            break
        if digest != weights.get("sha256"):
            want = str(weights.get("sha256"))[:12]
            chain.append({**entry, "missing": f"{recorded}/{weights.get('file')} has sha256 "
                          f"{digest[:12]}..., not the recorded {want}..."})
            break
        try:
            config = read_config(src)
            chain.append({**phase(src, config), **entry})
        except RunError as exc:  # the message names the folder as recorded, not as found here
            chain.append({**entry, "missing": str(exc).replace(str(src), recorded)})
            break
        earlier = _recorded(src)
        if earlier is not None:  # a model folder that knows its own phases
            chain.extend(reversed(earlier))
            break
        init = config.get("init_from")
    else:
        if isinstance(init, dict):  # MAX_PHASES reached with phases still before
            chain.append({"run": Path(str(init.get("path"))).name, "path": init.get("path"),
                          "missing": f"more than {MAX_PHASES} phases"})
    return chain[::-1]


NOTE = ("training phases before this model's own, oldest first: each phase's weights (sha256) "
        "are the ones the next phase started from (flows.lineage)")


def lineage_record(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """The content of a ``lineage.json``: ``phases`` and a note."""
    return {"note": NOTE, "phases": phases}


def phases_of(folder: Path) -> list[dict[str, Any]]:
    """The earlier phases of ``folder``: from its ``lineage.json`` when it has one, else traced."""
    recorded = _recorded(folder)
    return recorded if recorded is not None else trace(folder)


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--run", type=cli.existing_dir_of("run directory"), required=True,
                   help="a run directory of flows.train or a model folder")
    p.add_argument("--write", action="store_true",
                   help=f"store the traced phases as {LINEAGE_NAME} in --run (when it has none)")
    return p


@errors.guard(PROG)
def main(argv: list[str] | None = None) -> int:
    """Print (and with ``--write`` store) the phases; bad usage: one line, exit 2; an unusable
    run: one line, exit 1."""
    args = build_parser().parse_args(argv)
    run = Path(args.run)
    if args.write and folder_kind(run) is None:
        raise errors.UsageError(f"--write: {run} is neither a run directory of flows.train nor "
                                "a model folder")
    if args.write and (run / LINEAGE_NAME).exists():  # a re-trace could only know less
        raise errors.CommandError(f"{run / LINEAGE_NAME} exists; it is kept (the runs it was "
                                  "traced from may be gone)")
    phases = phases_of(run)
    if args.write:
        write_json(run / LINEAGE_NAME, lineage_record(phases))
    for p in phases:
        if "missing" in p:
            print(f"{p['run']}: not verifiable ({p['missing']}); nothing before it is known")
            continue
        last = p["history"][-1] if p.get("history") else {}
        print(f"{p['run']}: {p.get('objective')} on {p.get('dataset')}, {p.get('epochs')} epochs "
              f"at lr {p.get('lr')}, last training bits/dim {last.get('bpd', float('nan')):.3f}, "
              f"weights {p['weights']['file']} sha256 {str(p['weights']['sha256'])[:12]}...")
    print(f"{run}: {len(phases)} earlier phase(s)" + (f"; wrote {run / LINEAGE_NAME}"
                                                       if args.write else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
