"""The project arm of ``../shared/peer/peer_quality.py`` alone (no y0ast arm beside it).

    python benchmarks/peer_project_arm.py DATA_DIR WORKDIR SECONDS DATASET PRESET HIDDEN K [N_TEST]

Same arguments as the harness (HIDDEN and K are y0ast's; it parses them itself). Runs its
``run_project`` (a probe sizes the epochs to SECONDS, then ``flows.train --objective base`` and
``flows.evaluate``, all from the current directory, so run it from the checkout being measured)
and prints one JSON line: test bits/dim, images seen, training wall seconds, probe images/s. For
screens of the training recipe, two arms at a time on one core each, as the harness runs its
two arms. Not a test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

PEER = Path(__file__).resolve().parent.parent.parent / "shared" / "peer"  # ../shared/peer

if __name__ == "__main__":
    if len(sys.argv) not in (8, 9):
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        sys.exit(2)
    if not (PEER / "peer_quality.py").is_file():
        sys.exit(f"peer_project_arm: {PEER / 'peer_quality.py'} not found (../shared/peer)")
    sys.path.insert(0, str(PEER))
    import peer_quality as pq  # parses sys.argv as the harness does

    os.makedirs(pq.work, exist_ok=True)
    bpd, images, wall, ips = pq.run_project(pq.seconds)
    print(json.dumps({"bpd": bpd, "images": images, "wall": wall, "probe_ips": ips}))
