"""The project arm of ``../shared/peer/peer_quality.py`` alone (no y0ast arm beside it).

    python benchmarks/peer_project_arm.py DATA WORK SECS DATASET PRESET HIDDEN K [N_TEST] [--seed N]

Same arguments as the harness (HIDDEN and K are y0ast's; it parses them itself). Runs its
``run_project`` (a probe sizes the epochs to SECONDS, then ``flows.train --objective base`` and
``flows.evaluate``, all from the current directory, so run it from the checkout being measured)
and prints one JSON line: test bits/dim, images seen, training wall seconds, probe images/s. For
screens of the training recipe, two arms at a time on one core each, as the harness runs its
two arms. ``--seed N`` (default 0, the harness's) trains the probe and the run with seed N: the
harness's ``flows.train`` commands get ``--seed N`` in place of its ``--seed 0``, so the recorded
command and config say N. Not a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEER = Path(__file__).resolve().parent.parent.parent / "shared" / "peer"  # ../shared/peer


def _pop_seed(argv: list[str]) -> int:
    """Remove ``--seed N`` from ``argv`` (the harness parses the rest positionally)."""
    if "--seed" not in argv:
        return 0
    i = argv.index("--seed")
    value = argv[i + 1] if i + 1 < len(argv) else ""
    if not value.isdigit():
        print(f"peer_project_arm: --seed needs a non-negative integer, got {value!r}",
              file=sys.stderr)
        sys.exit(2)
    del argv[i:i + 2]
    return int(value)


def _with_seed(seed: int) -> Callable[..., subprocess.CompletedProcess]:
    """``subprocess.run`` with the harness's ``--seed 0`` of ``flows.train`` replaced."""
    run = subprocess.run

    def seeded_run(cmd: list[str], *args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
        if "flows.train" in cmd and "--seed" in cmd:
            cmd = list(cmd)
            cmd[cmd.index("--seed") + 1] = str(seed)
        return run(cmd, *args, **kwargs)

    return seeded_run


if __name__ == "__main__":
    seed = _pop_seed(sys.argv)
    if len(sys.argv) not in (8, 9):
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    if not (PEER / "peer_quality.py").is_file():
        sys.exit(f"peer_project_arm: {PEER / 'peer_quality.py'} not found (../shared/peer)")
    sys.path.insert(0, str(PEER))
    import peer_quality as pq  # parses sys.argv as the harness does

    if seed:  # the harness calls subprocess.run; this process runs nothing else
        pq.subprocess.run = _with_seed(seed)  # type: ignore[attr-defined]
    os.makedirs(pq.work, exist_ok=True)
    bpd, images, wall, ips = pq.run_project(pq.seconds)
    print(json.dumps({"bpd": bpd, "images": images, "wall": wall, "probe_ips": ips}))
