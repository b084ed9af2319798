"""Provenance basics that need no torch: git commit and dirty flag, host, Python version, UTC
time, and machine-independent paths and command lines.

The one implementation of each; ``flows.provenance`` adds the torch device and versions.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The source tree (the folder holding ``foundation/``, ``annulus/``, ``flows/``)."""

#: Folders that hold what runs write (results) and read as data (shipped weights, identified by
#: their sha256 in every result). A change there does not change the code that ran.
OUTPUT_DIRS = ("results", "models")


def _git(*args: str) -> str | None:
    """Output of ``git -C REPO_ROOT ARGS`` (stripped), or ``None`` when git is unavailable."""
    if not (REPO_ROOT / ".git").exists():
        return None
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str:
    """The commit hash of the source tree (``git rev-parse HEAD``); outside a git checkout
    ``$ANNULUS_GIT_COMMIT`` or ``"unknown"``. Whether the tree was modified: :func:`git_dirty`.

    Set ``ANNULUS_GIT_COMMIT`` when running an exported copy (``git archive``) of a commit, so
    that later edits of the worktree cannot affect a long run (as the cpu-* runs were trained).
    """
    return _git("rev-parse", "HEAD") or os.environ.get("ANNULUS_GIT_COMMIT", "unknown")


def git_dirty() -> bool | None:
    """True when tracked files outside :data:`OUTPUT_DIRS` differ from HEAD, i.e. the code that
    ran is not the recorded commit (``None`` when git is unavailable). Outputs are left out so
    that a chain of experiments, each overwriting its stored result, stays clean."""
    excludes = [f":(exclude){d}" for d in OUTPUT_DIRS]
    out = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *excludes)
    return None if out is None else bool(out)


def host() -> str:
    """This machine's network name (``platform.node()``)."""
    return platform.node()


#: Instruction-set extensions that decide this project's CPU fast path (bf16 convolutions).
CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU as ``/proc/cpuinfo`` names it, with its family/model numbers and the
    extensions of :data:`CPU_FLAGS_OF_INTEREST` it has, e.g. ``"AMD EPYC (family 25 model 1;
    avx2)"``; the platform string where ``cpuinfo`` is unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # the first processor's block is enough
            continue
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    isa = ", ".join(f for f in CPU_FLAGS_OF_INTEREST if f in flags) or "none of " + "/".join(
        CPU_FLAGS_OF_INTEREST)
    name = fields.get("model name") or platform.processor() or platform.machine()
    family, model = fields.get("cpu family"), fields.get("model")
    ident = f"family {family} model {model}; " if family and model else ""
    return f"{name} ({ident}{isa})"


def python_version() -> str:
    """The running Python's version, e.g. ``"3.11.9"``."""
    return platform.python_version()


def utc_stamp() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def utc_isoformat() -> str:
    """The current UTC time as ISO 8601 with an offset, ``YYYY-MM-DDTHH:MM:SS+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def portable_path(arg: str) -> str:
    """``arg`` with this machine's absolute prefixes removed: the repository root becomes a
    relative path, the home directory ``~``; anything else is returned unchanged."""
    if not arg.startswith("/"):
        return arg
    path = Path(arg)
    for root, prefix in ((REPO_ROOT, ""), (Path.home(), "~")):
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        text = rel.as_posix()
        return (f"{prefix}/{text}" if text != "." else prefix) if prefix else (text or ".")
    return arg


def portable_command(module: str, argv: list[str]) -> str:
    """``python -m module argv...`` as a shell line, paths made portable (:func:`portable_path`);
    ``--opt=/abs/path`` forms included."""
    parts = []
    for a in argv:
        if a.startswith("--") and "=" in a:
            opt, val = a.split("=", 1)
            parts.append(f"{opt}={portable_path(val)}")
        else:
            parts.append(portable_path(a))
    def quote(a: str) -> str:  # keep a leading ~/ unquoted so that a shell still expands it
        return "~/" + shlex.quote(a[2:]) if a.startswith("~/") else shlex.quote(a)

    return " ".join(["python", "-m", module, *(quote(a) for a in parts)])

