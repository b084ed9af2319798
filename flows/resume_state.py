"""A run's resume state as a portable, pickle-free folder, and back.

``python -m flows.resume_state pack --run RUN --out DIR`` writes ``DIR/resume.safetensors`` (the
checkpoint's tensors: ``model.<key>`` and ``optimizer.<index>.<name>``) and ``DIR/resume.json``
(the rest of the checkpoint: epoch, step, history, config and the optimizer's parameter groups,
with the sha256 of the tensor file), beside a copy of the run's ``train_summary.json`` (and its
``lineage.json``, the phases before it, when it has one; :mod:`flows.lineage`).
``python -m flows.resume_state unpack --from DIR --out RUN`` checks the sha256 and the state
(epoch, step, history, config, the model tensors against the config, the summary against the
history: :func:`summary_problem`, as ``pack`` does) and writes
``RUN/checkpoint.pt``, ``RUN/train_summary.json`` (and ``RUN/lineage.json``) and
``RUN/config.json`` (the checkpoint's config, which is what ``flows.train`` writes there) again,
so that ``flows.train ... --out RUN --resume`` continues the run exactly where it stopped
(per-epoch seeds: the continued run is the uninterrupted one, tested). This is how a training
that spans several sessions can keep its state in the repository without committing a pickle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from flows.layout import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    LINEAGE_NAME,
    SUMMARY_NAME,
    holds_run_files,
)
from flows.layout import RESUME_STATE_NAME as STATE_NAME
from flows.layout import RESUME_TENSORS_NAME as TENSORS_NAME
from flows.run_checks import checkpoint_problem, dtype_problem
from flows.runs import (
    CHECKPOINT_KEYS,
    RunError,
    build_model,
    load_checkpoint,
    read_summary,
    save_checkpoint,
)
from flows.weights import non_finite_tensors
from foundation import cli, errors
from foundation.atomic import write_bytes, write_json

PROG = "python -m flows.resume_state"
FORMAT = 1


def _encode(value: Any) -> Any:
    """JSON form of an optimizer setting: tuples (Adam's ``betas``) are kept as tuples."""
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"tuple"}:
        return tuple(_decode(v) for v in value["tuple"])
    return value


def split_checkpoint(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, everything else)`` of a training checkpoint (:data:`CHECKPOINT_KEYS`)."""
    tensors = {f"model.{k}": v for k, v in state["model"].items()}
    slots: dict[str, list[str]] = {}
    for index, entries in state["optimizer"]["state"].items():
        slots[str(index)] = sorted(entries)
        for name, value in entries.items():
            tensors[f"optimizer.{index}.{name}"] = value
    groups = [{k: _encode(v) for k, v in g.items()} for g in state["optimizer"]["param_groups"]]
    rest = {"format": FORMAT, "epoch": state["epoch"], "step": state["step"],
            "history": state["history"], "config": state["config"],
            "optimizer": {"param_groups": groups, "state": slots}}
    return tensors, rest


def join_checkpoint(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint :func:`split_checkpoint` took apart (``KeyError`` where a part is missing)."""
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    opt_state = {int(i): {name: tensors[f"optimizer.{i}.{name}"] for name in names}
                 for i, names in rest["optimizer"]["state"].items()}
    groups = [{k: _decode(v) for k, v in g.items()} for g in rest["optimizer"]["param_groups"]]
    return {"model": model, "optimizer": {"state": opt_state, "param_groups": groups},
            "epoch": rest["epoch"], "step": rest["step"], "history": rest["history"],
            "config": rest["config"]}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"{path}: cannot read: {errors.reason(exc)}") from None


def _refuse_run_files(out: Path, allowed: frozenset[str] = frozenset()) -> None:
    """``out`` must not be a run directory or a model folder (other than ``allowed`` files)."""
    held = [n for n in holds_run_files(out) if n not in allowed]
    if held:
        raise errors.UsageError(f"--out {out}: holds {', '.join(held)} (a run directory or a "
                                "model folder); choose a new directory")


def _read_lineage(folder: Path) -> Any:
    """``folder``'s ``lineage.json`` (the phases before its run, :mod:`flows.lineage`) or None."""
    return _read_json(folder / LINEAGE_NAME) if (folder / LINEAGE_NAME).exists() else None


def _put_lineage(folder: Path, lineage: Any) -> None:
    """Write ``lineage`` into ``folder``, or remove one left there by an earlier run."""
    if lineage is None:
        (folder / LINEAGE_NAME).unlink(missing_ok=True)
    else:
        write_json(folder / LINEAGE_NAME, lineage)


def summary_problem(summary: dict[str, Any], state: dict[str, Any]) -> str | None:
    """Why ``summary`` (a ``train_summary.json``) is not the record of the run whose checkpoint
    is ``state``, or ``None``: its last invocation's epoch records must be the checkpoint's
    first ones (the summary is written just after each epoch's checkpoint, so it may lag by the
    epoch a kill interrupted, never lead or differ)."""
    last = summary["invocations"][-1]  # a read_summary: non-empty, typed entries
    done, history = last["epochs_done"], last["history"]
    if history != state["history"][:len(history)] or done > state["epoch"]:
        return (f"its last invocation (epoch {done}) is not the record of this checkpoint "
                f"(epoch {state['epoch']}): the two come from different runs")
    return None


def pack(run: Path, out: Path) -> str:
    """Write the resume folder ``out`` from the run directory ``run``; return the tensors'
    sha256. Everything is read and checked before ``out`` is touched."""
    _refuse_run_files(out, allowed=frozenset({SUMMARY_NAME, LINEAGE_NAME}))  # as a resume folder
    state = load_checkpoint(run / CHECKPOINT_NAME, keys=CHECKPOINT_KEYS)
    summary = read_summary(run / SUMMARY_NAME)
    if why := summary_problem(summary, state):
        raise RunError(f"{run / SUMMARY_NAME}: {why}")
    tensors, rest = split_checkpoint(state)
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    digest = hashlib.sha256(data).hexdigest()
    lineage = _read_lineage(run)
    write_bytes(out / TENSORS_NAME, data)
    write_json(out / SUMMARY_NAME, summary)
    _put_lineage(out, lineage)
    write_json(out / STATE_NAME, {**rest, "tensors": {"file": TENSORS_NAME, "sha256": digest}})
    return digest


def unpack(folder: Path, run: Path) -> dict[str, Any]:
    """Write ``run``'s checkpoint, config and summary from the resume folder ``folder`` (its
    tensors checked against the recorded sha256, and the state checked, first; ``run`` must not
    hold a run's or a model's files); return the checkpoint."""
    _refuse_run_files(run)
    rest = _read_json(folder / STATE_NAME)
    if not isinstance(rest, dict):
        raise RunError(f"{folder / STATE_NAME}: not a resume state (expected a JSON object)")
    path = folder / TENSORS_NAME
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunError(f"{path}: cannot read: {errors.reason(exc)}") from None
    tensors = rest.get("tensors")
    recorded = tensors.get("sha256") if isinstance(tensors, dict) else None
    if rest.get("format") != FORMAT or recorded != hashlib.sha256(data).hexdigest():
        raise RunError(f"{path}: not the tensors {folder / STATE_NAME} records (format "
                       f"{rest.get('format')!r}, sha256 {str(recorded)[:12]}...)")
    try:
        state = join_checkpoint(load(data), rest)
    except (SafetensorError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunError(f"{folder}: not a resume state: {errors.one_line(exc)[:200]}") from None
    if why := checkpoint_problem(state):
        raise RunError(f"{folder / STATE_NAME}: not a resume state: {why}")
    bad = non_finite_tensors(state["model"])
    if bad:
        raise RunError(f"{path}: non-finite values in {', '.join(bad[:3])}")
    model = build_model(state["config"])  # the config is valid (checkpoint_problem)
    if why := dtype_problem(model, state["model"]):
        raise RunError(f"{path}: {why}")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise RunError(f"{path}: the model tensors do not fit the recorded config: "
                       f"{errors.one_line(exc)[:200]}") from None
    summary = read_summary(folder / SUMMARY_NAME)
    if why := summary_problem(summary, state):
        raise RunError(f"{folder / SUMMARY_NAME}: {why}")
    lineage = _read_lineage(folder)
    write_json(run / CONFIG_NAME, state["config"])
    write_json(run / SUMMARY_NAME, summary)
    _put_lineage(run, lineage)
    save_checkpoint(run / CHECKPOINT_NAME, state)
    return state


def _lineage_written(folder: Path) -> str:
    return f", {LINEAGE_NAME}" if (folder / LINEAGE_NAME).is_file() else ""


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("pack", help="run directory -> resume folder")
    a.add_argument("--run", type=cli.existing_dir_of("run directory"), required=True)
    a.add_argument("--out", type=cli.output_dir, required=True, help="resume folder to write")
    b = sub.add_parser("unpack", help="resume folder -> run directory (then flows.train --resume)")
    b.add_argument("--from", dest="folder", type=cli.existing_dir_of("resume folder"),
                   required=True)
    b.add_argument("--out", type=cli.output_dir, required=True, help="run directory to write")
    return p


@errors.guard(PROG)
def main(argv: list[str] | None = None) -> int:
    """Pack or unpack; bad usage: one line, exit 2; an unusable run or folder: one line, exit 1."""
    args = build_parser().parse_args(argv)
    if args.action == "pack":
        if Path(args.run).resolve() == Path(args.out).resolve():
            raise errors.UsageError("--out must differ from --run")
        digest = pack(Path(args.run), Path(args.out))
        print(f"{args.out}: {TENSORS_NAME} (sha256 {digest[:12]}...), {STATE_NAME}, "
              f"{SUMMARY_NAME}{_lineage_written(Path(args.out))}")
    else:
        state = unpack(Path(args.folder), Path(args.out))
        print(f"{args.out}: {CHECKPOINT_NAME} (epoch {state['epoch']}, step {state['step']}), "
              f"{CONFIG_NAME}, {SUMMARY_NAME}{_lineage_written(Path(args.out))}; continue with "
              f"flows.train ... --out {args.out} --resume")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
