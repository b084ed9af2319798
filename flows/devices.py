"""Device argument types (they need torch, so they are not in :mod:`foundation.cli`)."""

from __future__ import annotations

import argparse

import torch


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def device(value: str) -> str:
    """Argument type: ``cpu`` or ``cuda[:i]`` that exists on this machine (normalised string)."""
    text = str(value).strip()
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"unknown device {value!r}; expected cpu or cuda[:INDEX]") from None
    if dev.type == "cpu":
        if dev.index not in (None, 0):
            raise argparse.ArgumentTypeError(f"device {value!r} does not exist; use cpu")
        return "cpu"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"device {value!r}: CUDA is not available on this machine; use cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and not 0 <= dev.index < count:
            raise argparse.ArgumentTypeError(
                f"device {value!r} does not exist ({count} CUDA device(s): cuda:0..{count - 1})")
        return "cuda" if dev.index is None else f"cuda:{dev.index}"
    raise argparse.ArgumentTypeError(f"device {value!r} is not supported; use cpu or cuda[:INDEX]")


