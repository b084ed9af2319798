"""One pipeline from training to figures: ``python -m flows.pipeline [NAME-GLOB ...]``.

Every run of the project (training, evaluation, experiment, figure) is one ``[[run]]`` entry of a
declarative TOML file (default ``pipeline/runs.toml``)::

    [vars]                      # substituted as {name} in every string below
    runs = "~/annulus-runs"

    [[run]]
    name = "train/mnist-reweighted-cpu"
    kind = "train"              # train | command (default)
    module = "flows.train"      # run as ``python -m MODULE ARGS``
    args = "--dataset mnist ... --out {runs}/mnist-reweighted-cpu"
    inputs = []                 # files or run directories the run reads
    outputs = ["{runs}/mnist-reweighted-cpu/checkpoint.pt"]
    code = ["flows/*.py"]       # source globs whose content is part of the fingerprint

One command (re)produces any subset: the positional NAME-GLOBs select runs (``attacks/*``), and the
runs they depend on are added (a run depends on every run that writes one of its inputs). A run is
**skipped when up to date**: its outputs exist and its stamp matches (``--state-dir``, default
``build/pipeline``: ``stamps/NAME.json`` holds the command and the input, code and output
fingerprints of its last successful run). A ``train`` run is complete when ``train_summary.json``
reports its ``--epochs``; an interrupted one is **resumed** with ``--resume``; other runs write
their outputs atomically, so an interrupted run left nothing and simply runs again (the
experiments' score cache makes that cheap). A ``train`` run whose run directory is locked by a
live writer (:mod:`foundation.runlock`) is skipped, naming its PID; the runs the pipeline starts get
SIGTERM when it dies (Linux ``PR_SET_PDEATHSIG``), so none outlives it. Progress: a line per
run and, with ``--jobs 1``, the run's own tqdm bars; with ``--jobs N > 1`` the runs' output goes
to ``build/pipeline/logs/NAME.log``.

Flags: ``--file``, ``--jobs``, ``--dry-run`` (show what would run), ``--list``, ``--force``
(re-run the selected runs even when up to date), ``--set VAR=VALUE`` (override a var),
``--no-deps``. Exit status 0 when every selected run succeeded or was up to date, 1 when one
failed (its dependents are skipped), 2 on bad usage (one line).
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from flows.layout import CHECKPOINT_NAME, SUMMARY_NAME
from foundation import atomic, cli, errors, runlock

PROG = "python -m flows.pipeline"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO / "pipeline" / "runs.toml"
STATE = REPO / "build" / "pipeline"
KINDS = ("train", "command")


@dataclass
class Run:
    """One declared run, with ``{vars}`` substituted."""

    name: str
    kind: str
    module: str
    args: list[str]
    inputs: list[str]
    outputs: list[str]
    code: list[str]
    needs: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def command(self) -> list[str]:
        return ["python", "-m", self.module, *self.args]


def _sub(text: str, env: dict[str, str], where: str) -> str:
    try:
        return text.format(**env)
    except (KeyError, IndexError, ValueError) as exc:
        raise errors.CommandError(f"{where}: cannot substitute {text!r}: {errors.one_line(exc)}"
                               ) from None


def load(path: Path, overrides: dict[str, str] | None = None) -> list[Run]:
    """Parse the runs file; check names, kinds, dependencies (in file order, no cycles)."""
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise errors.CommandError(f"{path}: not valid TOML ({exc})") from None
    env = {k: str(v) for k, v in spec.get("vars", {}).items()}
    env.update(overrides or {})
    runs: list[Run] = []
    seen: set[str] = set()
    for i, entry in enumerate(spec.get("run", [])):
        where = f"{path}: run #{i + 1}"
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise errors.CommandError(f"{where}: missing 'name'")
        if name in seen:
            raise errors.CommandError(f"{where}: duplicate name {name!r}")
        seen.add(name)
        kind = entry.get("kind", "command")
        if kind not in KINDS:
            raise errors.CommandError(f"{where} ({name}): kind must be one of {KINDS}")
        if "module" not in entry:
            raise errors.CommandError(f"{where} ({name}): missing 'module'")
        args = shlex.split(_sub(entry.get("args", ""), env, where))
        run = Run(name=name, kind=kind, module=entry["module"], args=args,
                  inputs=[_sub(s, env, where) for s in entry.get("inputs", [])],
                  outputs=[_sub(s, env, where) for s in entry.get("outputs", [])],
                  code=list(entry.get("code", [])), needs=list(entry.get("needs", [])),
                  note=entry.get("note", ""))
        if not run.outputs:
            raise errors.CommandError(f"{where} ({name}): no 'outputs'")
        runs.append(run)
    by_out = {}
    for r in runs:
        for o in r.outputs:
            by_out[_norm(o)] = r.name
    order = {r.name: i for i, r in enumerate(runs)}
    for r in runs:
        for inp in r.inputs:
            n = _norm(inp)
            for out, writer in by_out.items():
                if writer != r.name and (out == n or out.startswith(n + os.sep)
                                         or n.startswith(out + os.sep)):
                    if writer not in r.needs:
                        r.needs.append(writer)
        for dep in r.needs:
            if dep not in order:
                raise errors.CommandError(f"{path}: {r.name} needs unknown run {dep!r}")
            if order[dep] >= order[r.name]:
                raise errors.CommandError(f"{path}: {r.name} needs {dep}, declared after it")
    return runs


def _norm(p: str) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(p)))


def _file_stamp(p: Path) -> str | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def fingerprint(paths: Sequence[str]) -> dict[str, str | None]:
    """Size and mtime of each input file; of a directory, of the files directly in it."""
    out: dict[str, str | None] = {}
    for s in paths:
        p = Path(os.path.expanduser(s))
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    out[f"{s}/{f.name}"] = _file_stamp(f)
        else:
            out[s] = _file_stamp(p)
    return out


def code_hash(globs: Sequence[str]) -> str:
    """sha1 over the contents of the source files matched by ``globs`` (repo-relative)."""
    h = hashlib.sha1()
    for g in globs:
        for f in sorted(glob.glob(str(REPO / g), recursive=True)):
            h.update(f.encode())
            h.update(Path(f).read_bytes())
    return h.hexdigest()


def _stamp_path(run: Run, state: Path = STATE) -> Path:
    return state / "stamps" / (run.name.replace("/", "__") + ".json")


def _current_stamp(run: Run) -> dict[str, Any]:
    return {"command": shlex.join(run.command), "inputs": fingerprint(run.inputs),
            "code": code_hash(run.code)}


def _epochs_wanted(run: Run) -> int | None:
    if "--epochs" in run.args:
        return int(run.args[run.args.index("--epochs") + 1])
    return None


def _train_dir(run: Run) -> Path:
    return Path(os.path.expanduser(run.args[run.args.index("--out") + 1]))


def train_state(run: Run) -> str:
    """``complete``, ``partial`` (checkpoint, not all epochs) or ``missing``."""
    out = _train_dir(run)
    summary = out / SUMMARY_NAME
    want = _epochs_wanted(run)
    if summary.is_file():
        try:
            inv = json.loads(summary.read_text()).get("invocations", [])
            done = max((int(i.get("epochs_done", 0)) for i in inv), default=0)
        except (ValueError, OSError, AttributeError):
            done = 0
        if want is not None and done >= want and (out / CHECKPOINT_NAME).is_file():
            return "complete"
    return "partial" if (out / CHECKPOINT_NAME).is_file() else "missing"


def running_elsewhere(run: Run) -> int | None:
    """PID of a live process writing this run's ``--out``: the holder of its lock
    (:mod:`foundation.runlock`, ``OUT/.lock``; ``-1`` when its PID cannot be told), else a
    ``flows.train`` process started before the lock existed, found by its command line
    (Linux ``/proc``)."""
    pid = runlock.holder(runlock.dir_lock_path(_train_dir(run)))
    return pid if pid is not None else _legacy_writer(_norm(str(_train_dir(run))))


def _legacy_writer(out: str) -> int | None:
    """PID of a ``flows.train`` process whose ``--out`` is ``out``, by ``/proc/PID/cmdline``
    (training processes of a version without :mod:`foundation.runlock` hold no lock)."""
    for d in Path("/proc").glob("[0-9]*"):
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            args = [a.decode(errors="replace") for a in argv if a]
            if "flows.train" in args and "--out" in args:
                i = args.index("--out")
                cwd = os.readlink(d / "cwd")
                if i + 1 < len(args) and _norm(os.path.join(cwd, args[i + 1])) == out:
                    return int(d.name)
        except OSError:
            continue
    return None


PR_SET_PDEATHSIG = 1


def die_with_parent() -> Any:
    """A ``preexec_fn`` for the runs: the kernel sends SIGTERM to the child when the pipeline
    dies (Linux ``prctl(PR_SET_PDEATHSIG)``), so no run outlives it as an orphan writer.
    ``None`` where that is not available."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here, not in the child
    except (OSError, AttributeError):
        return None
    import signal

    parent = os.getpid()

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the pipeline died before prctl took effect
            os._exit(143)

    return preexec


def status(run: Run, state: Path = STATE) -> str:
    """``up to date``, ``resume``, ``run`` (never run or stale) for one run."""
    if run.kind == "train":
        st = train_state(run)
        return {"complete": "up to date", "partial": "resume", "missing": "run"}[st]
    if not all(Path(os.path.expanduser(o)).exists() for o in run.outputs):
        return "run"
    sp = _stamp_path(run, state)
    if not sp.is_file():
        return "run"
    try:
        old = json.loads(sp.read_text())
    except (ValueError, OSError):
        return "run"
    cur = _current_stamp(run)
    if any(old.get(k) != cur[k] for k in cur) or old.get("outputs") != fingerprint(run.outputs):
        return "run"
    return "up to date"


def _argv(run: Run, resume: bool) -> list[str]:
    args = list(run.args)
    if run.kind == "train" and resume and "--resume" not in args:
        args.append("--resume")
    return [sys.executable, "-m", run.module, *[os.path.expanduser(a) if a.startswith("~")
                                                else a for a in args]]


def select(runs: list[Run], patterns: Sequence[str], deps: bool) -> list[Run]:
    """Runs matching any glob (all when none), plus their dependencies, in file order."""
    by_name = {r.name: r for r in runs}
    if not patterns:
        return runs
    chosen: set[str] = set()
    for pat in patterns:
        hit = [r.name for r in runs if fnmatch.fnmatchcase(r.name, pat)]
        if not hit:
            raise errors.UsageError(f"NAME {pat!r} matches no run (see --list)")
        chosen.update(hit)
    if deps:
        stack = list(chosen)
        while stack:
            for d in by_name[stack.pop()].needs:
                if d not in chosen:
                    chosen.add(d)
                    stack.append(d)
    return [r for r in runs if r.name in chosen]


def execute(runs: list[Run], *, jobs: int, force: bool, dry_run: bool,
            state: Path = STATE, log: Any = print) -> dict[str, str]:
    """Run what is not up to date, respecting dependencies; returns ``name -> outcome``."""
    outcome: dict[str, str] = {}
    todo: dict[str, str] = {}
    selected = {r.name for r in runs}
    for r in runs:
        st = status(r, state)
        if force and st == "up to date" and r.kind != "train":
            st = "run"
        todo[r.name] = st
    n = len(runs)
    log(f"{PROG}: {n} run(s): " + ", ".join(f"{sum(v == s for v in todo.values())} {s}"
                                              for s in ("up to date", "resume", "run")))
    if dry_run:
        for i, r in enumerate(runs, 1):
            log(f"[{i}/{n}] {r.name}: {todo[r.name]}: "
                f"{shlex.join(_argv(r, todo[r.name] == 'resume'))}")
        return {r.name: f"dry-run ({todo[r.name]})" for r in runs}
    pending = [r for r in runs]
    active: dict[str, tuple[subprocess.Popen, float, Any]] = {}
    index = {r.name: i for i, r in enumerate(runs, 1)}
    while pending or active:
        started = False
        for r in list(pending):
            deps = [d for d in r.needs if d in selected]
            if any(outcome.get(d, "").startswith(("failed", "skipped")) for d in deps):
                outcome[r.name] = "skipped (a dependency failed or was skipped)"
                log(f"[{index[r.name]}/{n}] {r.name}: skipped, a dependency failed or was skipped")
                pending.remove(r)
                continue
            if any(d not in outcome for d in deps):
                continue
            if todo[r.name] == "up to date" and all(outcome.get(d) == "up to date"
                                                    for d in deps):
                outcome[r.name] = "up to date"
                log(f"[{index[r.name]}/{n}] {r.name}: up to date")
                pending.remove(r)
                continue
            if len(active) >= jobs:
                break
            resume = r.kind == "train" and train_state(r) == "partial"
            if r.kind == "train" and train_state(r) == "complete":
                outcome[r.name] = "up to date"
                pending.remove(r)
                continue
            pid = running_elsewhere(r) if r.kind == "train" else None
            if pid is not None:
                who = f"pid {pid}" if pid > 0 else "another process"
                outcome[r.name] = f"skipped (being trained by {who})"
                log(f"[{index[r.name]}/{n}] {r.name}: skipped, {who} is training it now")
                pending.remove(r)
                continue
            argv = _argv(r, resume)
            logf = None
            if jobs > 1:
                lp = state / "logs" / (r.name.replace("/", "__") + ".log")
                lp.parent.mkdir(parents=True, exist_ok=True)
                logf = open(lp, "w")  # noqa: SIM115 - closed when the run ends
            log(f"[{index[r.name]}/{n}] {r.name}: {'resuming' if resume else 'running'}: "
                f"{shlex.join(r.command)}" + (f"  (log: {logf.name})" if logf else ""))
            for o in r.outputs:
                Path(os.path.expanduser(o)).parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.Popen(argv, cwd=REPO, stdout=logf, stderr=logf,
                                    preexec_fn=die_with_parent())
            active[r.name] = (proc, time.time(), logf)
            pending.remove(r)
            started = True
        for name, (proc, t0, logf) in list(active.items()):
            rc = proc.poll()
            if rc is None:
                continue
            if logf is not None:
                logf.close()
            del active[name]
            run = next(r for r in runs if r.name == name)
            dt = time.time() - t0
            missing = [o for o in run.outputs if not Path(os.path.expanduser(o)).exists()]
            if rc == 0 and not missing:
                stamp = _current_stamp(run) | {"outputs": fingerprint(run.outputs),
                                               "finished_utc": time.strftime(
                                                   "%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                               "wall_time_s": round(dt, 1)}
                atomic.write_json(_stamp_path(run, state), stamp)
                outcome[name] = "done"
                log(f"[{index[name]}/{n}] {name}: done in {dt:.0f} s")
            else:
                why = f"exit status {rc}" if rc else f"outputs missing: {missing}"
                outcome[name] = f"failed ({why})"
                log(f"[{index[name]}/{n}] {name}: FAILED ({why}) after {dt:.0f} s")
        if not started and active:
            time.sleep(0.5)
    return outcome


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description="Train, evaluate, run the experiments and "
                           "build the figures: whatever is not up to date.")
    p.add_argument("names", nargs="*", help="glob(s) of run names (default: all)")
    p.add_argument("--file", type=cli.existing_file, default=DEFAULT_FILE)
    p.add_argument("--jobs", type=cli.int_range(1, 64), default=1)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--list", action="store_true")
    p.add_argument("--force", action="store_true", help="re-run selected runs (not training)")
    p.add_argument("--no-deps", action="store_true", help="do not add dependencies")
    p.add_argument("--set", action="append", default=[], metavar="VAR=VALUE")
    p.add_argument("--state-dir", type=cli.output_dir, default=STATE,
                   help="stamps and logs (default build/pipeline)")
    return p


@errors.guard(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    """Select, plan and execute runs; see the module docstring."""
    args = build_parser().parse_args(argv)
    overrides = {}
    for item in args.set:
        if "=" not in item:
            raise errors.UsageError(f"--set: expected VAR=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k] = v
    runs = load(Path(args.file), overrides)
    chosen = select(runs, args.names, deps=not args.no_deps)
    if args.list:
        for r in chosen:
            print(f"{r.name:48s} {status(r, args.state_dir):10s} {r.note}")
        return 0
    outcome = execute(chosen, jobs=args.jobs, force=args.force, dry_run=args.dry_run,
                      state=Path(args.state_dir))
    failed = [k for k, v in outcome.items() if v.startswith(("failed", "skipped"))]
    print(f"{PROG}: " + ", ".join(f"{k}: {v}" for k, v in outcome.items()))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
