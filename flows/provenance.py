"""Provenance for JSON outputs: git commit (the one implementation), host, versions, time."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


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


#: Folders that hold what runs write (results) and read as data (shipped weights, identified by
#: their sha256 in every result). A change there does not change the code that ran.
OUTPUT_DIRS = ("results", "models")


def git_dirty() -> bool | None:
    """True when tracked files outside :data:`OUTPUT_DIRS` differ from HEAD, i.e. the code that
    ran is not the recorded commit (``None`` when git is unavailable). Outputs are left out so
    that a chain of experiments, each overwriting its stored result, stays clean."""
    excludes = [f":(exclude){d}" for d in OUTPUT_DIRS]
    out = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *excludes)
    return None if out is None else bool(out)


def device_description(device: torch.device) -> str:
    """Human-readable device name (GPU model on CUDA, CPU model and thread count otherwise)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} threads={torch.get_num_threads()}"


def provenance(device: torch.device) -> dict:
    """A dict of commit, device, versions and UTC timestamp."""
    return {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "device": device_description(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


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
