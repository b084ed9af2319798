"""Provenance for JSON outputs: git commit, host, versions, time."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """``git rev-parse HEAD`` (+ ``-dirty`` if modified); else ``$ANNULUS_GIT_COMMIT`` or unknown.

    ``ANNULUS_GIT_COMMIT`` is set by ``scripts/flows_cpu_runs.sh``, which runs an exported copy
    (``git archive``) of a commit so that later edits of the worktree cannot affect the runs.
    """
    if not (REPO_ROOT / ".git").exists():
        return os.environ.get("ANNULUS_GIT_COMMIT", "unknown")
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
        return head + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("ANNULUS_GIT_COMMIT", "unknown")


def device_description(device: torch.device) -> str:
    """Human-readable device name (GPU model on CUDA, CPU model and thread count otherwise)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} threads={torch.get_num_threads()}"


def provenance(device: torch.device) -> dict:
    """A dict of commit, device, versions and UTC timestamp."""
    return {
        "git_commit": git_commit(),
        "device": device_description(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
