"""The project arm of ``../shared/peer/peer_quality.py`` alone (no y0ast arm beside it).

    python benchmarks/peer_project_arm.py DATA WORK SECS DATASET PRESET HIDDEN K [N_TEST]
        [--seed N] [--train-flags "FLAGS"]

Same arguments as the harness (HIDDEN and K are y0ast's; it parses them itself). Runs its
``run_project`` (a probe sizes the epochs to SECONDS, then ``flows.train --objective base`` and
``flows.evaluate``, all from the current directory, so run it from the checkout being measured)
and prints one JSON line: test bits/dim, images seen, training wall seconds, probe images/s. For
screens of the training recipe, two arms at a time on one core each, as the harness runs its
two arms. ``--seed N`` (default 0, the harness's) trains the probe and the run with seed N: the
harness's ``flows.train`` commands get ``--seed N`` in place of its ``--seed 0``, so the recorded
command and config say N. ``--train-flags "FLAGS"`` appends FLAGS (e.g. ``--first-level-steps 1
--steps-per-level 8``) to both ``flows.train`` commands, so a screen can change the preset's
architecture without a scratch preset (a dirty tree). Not a test.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

PEER = Path(__file__).resolve().parent.parent.parent / "shared" / "peer"  # ../shared/peer


def _usage_error(message: str) -> NoReturn:
    print(f"peer_project_arm: {message}", file=sys.stderr)
    sys.exit(2)


def _pop_option(argv: list[str], name: str) -> str | None:
    """Remove ``name VALUE`` from ``argv`` (the harness parses the rest positionally)."""
    if name not in argv:
        return None
    i = argv.index(name)
    if i + 1 >= len(argv):
        _usage_error(f"{name} needs a value")
    value = argv[i + 1]
    del argv[i:i + 2]
    return value


def _pop_seed(argv: list[str]) -> int:
    """Remove ``--seed N`` from ``argv``; 0 (the harness's seed) when absent."""
    value = _pop_option(argv, "--seed")
    if value is None:
        return 0
    if not value.isdigit():
        _usage_error(f"--seed needs a non-negative integer, got {value!r}")
    return int(value)


def _pop_train_flags(argv: list[str]) -> list[str]:
    """Remove ``--train-flags "FLAGS"`` from ``argv``; FLAGS split as a shell would."""
    value = _pop_option(argv, "--train-flags")
    if value is None:
        return []
    try:
        flags = shlex.split(value)
    except ValueError as e:
        _usage_error(f"--train-flags: {e}")
    if flags and not flags[0].startswith("--"):
        _usage_error(f"--train-flags must hold flows.train options, got {value!r}")
    return flags


def _with_train_args(seed: int, flags: list[str]) -> Callable[..., subprocess.CompletedProcess]:
    """``subprocess.run`` with the harness's ``flows.train`` commands changed: its ``--seed 0``
    replaced by ``seed`` and ``flags`` appended."""
    run = subprocess.run

    def changed_run(cmd: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        if "flows.train" in cmd:
            cmd = list(cmd)
            if "--seed" in cmd:
                cmd[cmd.index("--seed") + 1] = str(seed)
            cmd += flags
        return run(cmd, *args, **kwargs)

    return changed_run


if __name__ == "__main__":
    seed = _pop_seed(sys.argv)
    train_flags = _pop_train_flags(sys.argv)
    if len(sys.argv) not in (8, 9):
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    if not (PEER / "peer_quality.py").is_file():
        sys.exit(f"peer_project_arm: {PEER / 'peer_quality.py'} not found (../shared/peer)")
    sys.path.insert(0, str(PEER))
    import peer_quality as pq  # parses sys.argv as the harness does

    if seed or train_flags:  # the harness calls subprocess.run; this process runs nothing else
        pq.subprocess.run = _with_train_args(seed, train_flags)  # type: ignore[attr-defined]
    os.makedirs(pq.work, exist_ok=True)
    bpd, images, wall, ips = pq.run_project(pq.seconds)
    print(json.dumps({"bpd": bpd, "images": images, "wall": wall, "probe_ips": ips}))
