"""Provenance block stored with every experiment result.

Every JSON written by ``flows.experiments.*`` has a top-level ``"provenance"`` object:

``command``      ``python -m MODULE ARGS`` as given (paths inside the repository repo-relative,
                 the data dir as given),
``git_commit``   ``git rev-parse HEAD`` of the source tree (``"unknown"`` outside git),
``git_dirty``    whether tracked files had uncommitted changes,
``seed``         the experiment's random seed,
``run_dir``      the trained run that was evaluated, as given (or ``null``),
``run_config``   that run's stored training config,
``device``       torch device, CPU/platform string, torch and python versions, thread count,
``started_utc`` / ``finished_utc`` ISO timestamps, ``wall_time_s`` seconds.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flows import atomic
from flows.provenance import git_commit, git_dirty


def device_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Where the numbers were computed."""
    return {
        "torch_device": str(device),
        "cuda_name": torch.cuda.get_device_name(device) if str(device).startswith("cuda") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Provenance:
    """Start a clock at construction; :meth:`finish` returns the provenance dict."""

    def __init__(
        self,
        *,
        seed: int | None,
        run_dir: str | os.PathLike[str] | None,
        run_config: dict[str, Any] | None,
        device: torch.device | str = "cpu",
        argv: list[str] | None = None,
        module: str | None = None,
    ) -> None:
        from flows.provenance import portable_command, portable_path

        self.seed = seed
        self.run_dir = None if run_dir is None else portable_path(str(run_dir))
        self.run_config = run_config
        self.device = device
        self.argv = list(sys.argv if argv is None else argv)
        self.command = (portable_command(module, list(sys.argv[1:] if argv is None else argv))
                        if module is not None
                        else " ".join(self.argv))
        self.started = _utc_now()
        self._t0 = time.perf_counter()
        # the code state when the experiment starts (later edits do not affect a running process)
        self.git_commit = git_commit()
        self.git_dirty = git_dirty()

    def finish(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "seed": self.seed,
            "run_dir": self.run_dir,
            "run_config": self.run_config,
            "device": device_info(self.device),
            "started_utc": self.started,
            "finished_utc": _utc_now(),
            "wall_time_s": round(time.perf_counter() - self._t0, 3),
        }


def to_jsonable(obj: Any) -> Any:
    """Recursively turn numpy/torch scalars and arrays into JSON types (non-finite -> None)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().numpy())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``result`` (made JSON-safe, non-finite -> null) to ``path`` atomically
    (:func:`flows.atomic.write_json`, the one JSON writer)."""
    return atomic.write_json(path, to_jsonable(result), indent=1, sort_keys=False)
