"""Run directories: ``config.json``, ``checkpoint.pt`` (atomic), ``eval.json``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from flows.config import ModelConfig
from flows.model import GlowClassifier

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"
LAST_GOOD_NAME = "last_good.pt"
EVAL_NAME = "eval.json"


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(file_object)`` on a temp file beside ``path``, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: Path, state: dict) -> None:
    """``torch.save(state)`` atomically."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as indented JSON atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    atomic_write_bytes(path, lambda f: f.write(data))


def read_config(run_dir: str | Path) -> dict:
    """The run's ``config.json`` as a dict."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (is {run_dir} a flows run directory?)")
    return json.loads(path.read_text())


def build_model(config: dict) -> GlowClassifier:
    """A fresh :class:`GlowClassifier` from a run config's ``model`` section."""
    return GlowClassifier(ModelConfig(**config["model"]))


def load_run(run_dir: str | Path, map_location: str | torch.device = "cpu"
             ) -> tuple[GlowClassifier, dict]:
    """Load the latest checkpoint of a run: ``(model in eval mode, config dict)``."""
    config = read_config(run_dir)
    ckpt_path = Path(run_dir) / CHECKPOINT_NAME
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path}: no checkpoint in run directory")
    state = torch.load(ckpt_path, map_location=map_location, weights_only=False)
    model = build_model(config)
    model.load_state_dict(state["model"])
    model.to(map_location)
    model.eval()
    return model, config
