"""Provenance of every JSON output of ``flows`` and ``flows.experiments``: the torch device and
versions on top of :mod:`foundation.provenance` (git commit and dirty flag, host, time, paths).

Two forms, both stored as the result's ``"provenance"``:

* :func:`provenance` (``flows.train``, ``flows.evaluate``, ``flows.baselines``): commit, dirty
  flag, device, torch and python versions, host, UTC time;
* :class:`Provenance` (``flows.experiments.*``), a clock started at construction whose
  :meth:`~Provenance.finish` gives

  ``command``      ``python -m MODULE ARGS`` as given (paths inside the repository repo-relative,
                   the data dir as given),
  ``git_commit``   ``git rev-parse HEAD`` of the source tree (``"unknown"`` outside git),
  ``git_dirty``    whether tracked code files had uncommitted changes,
  ``seed``         the experiment's random seed,
  ``run_dir``      the trained run that was evaluated, as given (or ``null``),
  ``run_config``   that run's stored training config,
  ``device``       torch device, CPU/platform string, torch and python versions, thread count,
  ``started_utc`` / ``finished_utc`` ISO timestamps, ``wall_time_s`` seconds.

:func:`write_result` writes an experiment's result (made JSON-safe by :func:`to_jsonable`).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foundation import atomic
from foundation.provenance import (
    cpu_model,
    git_commit,
    git_dirty,
    host,
    portable_command,
    portable_path,
    python_version,
    utc_isoformat,
    utc_stamp,
)


def device_description(device: torch.device) -> str:
    """Human-readable device name (GPU model on CUDA, CPU model and thread count otherwise)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_model()} threads={torch.get_num_threads()}"


def provenance(device: torch.device) -> dict:
    """A dict of commit, device, versions and UTC timestamp."""
    return {
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "device": device_description(device),
        "torch": torch.__version__,
        "python": python_version(),
        "host": host(),
        "utc": utc_stamp(),
    }


def device_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Where the numbers were computed."""
    return {
        "torch_device": str(device),
        "cuda_name": torch.cuda.get_device_name(device) if str(device).startswith("cuda") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


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
        self.seed = seed
        self.run_dir = None if run_dir is None else portable_path(str(run_dir))
        self.run_config = run_config
        self.device = device
        self.argv = list(sys.argv if argv is None else argv)
        self.command = (portable_command(module, list(sys.argv[1:] if argv is None else argv))
                        if module is not None
                        else " ".join(self.argv))
        self.started = utc_isoformat()
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
            "finished_utc": utc_isoformat(),
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


def write_result(path: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """Write an experiment's ``result`` (made JSON-safe, non-finite -> null) to ``path``
    atomically, keys in insertion order (:func:`foundation.atomic.write_json`, the one JSON
    writer; same argument order)."""
    return atomic.write_json(path, to_jsonable(result), indent=1, sort_keys=False)
