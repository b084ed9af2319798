"""Shipped weights: ``model.safetensors`` with its sha256, verified at every load.

A *model folder* (``models/<name>/``) holds ``config.json`` (the run's config),
``model.safetensors`` (the state dict: parameters and persistent buffers, float32, no pickle),
``model.sha256`` (one line in ``sha256sum`` format, so ``sha256sum -c model.sha256`` checks it
by hand),
``train_summary.json`` and the full-test evaluation ``eval.json``.

:func:`load_weights` refuses, before any work, a file whose sha256 differs from the recorded one
(a flipped byte), an unreadable file and any non-finite tensor, each with a :class:`RunError`
naming the file. :func:`sha256_file` is also the identity of a training checkpoint: every result
made from a model records the sha256 of the file its weights came from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from flows.layout import SHA_NAME, WEIGHTS_NAME
from foundation.atomic import write_bytes, write_text
from foundation.errors import CommandError, one_line, reason


class WeightsError(CommandError):
    """Weights that must not be used (checksum mismatch, unreadable, non-finite)."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold a NaN or an infinity."""
    return [k for k, v in state.items()
            if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def weights_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """The safetensors bytes of ``state`` (what :func:`save_weights` writes).

    Non-finite tensors are refused (:class:`WeightsError`): shipped weights are always usable.
    """
    bad = non_finite_tensors(state)
    if bad:
        raise WeightsError(f"refusing to save non-finite weights: {', '.join(bad[:5])}")
    return save({k: v.detach().cpu().contiguous() for k, v in state.items()})


def save_weights(state: dict[str, torch.Tensor] | bytes, folder: str | Path) -> str:
    """Write ``folder/model.safetensors`` and ``folder/model.sha256`` atomically; return the
    sha256. ``state``: tensors (checked by :func:`weights_bytes`) or bytes it made."""
    folder = Path(folder)
    data = state if isinstance(state, bytes) else weights_bytes(state)
    write_bytes(folder / WEIGHTS_NAME, data)
    digest = hashlib.sha256(data).hexdigest()
    write_text(folder / SHA_NAME, f"{digest}  {WEIGHTS_NAME}\n")
    return digest


def recorded_sha256(folder: str | Path) -> str:
    """The sha256 recorded in ``folder/model.sha256`` (checked to be 64 hex digits)."""
    path = Path(folder) / SHA_NAME
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: cannot read the recorded checksum: {reason(exc)}"
                           ) from None
    fields = text.split()
    digest = fields[0].lower() if fields else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise WeightsError(f"{path}: not a sha256 line ('<64 hex digits>  {WEIGHTS_NAME}')")
    return digest


def load_weights(folder: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """``(state dict, sha256)`` of ``folder/model.safetensors``, verified against ``model.sha256``
    and checked finite; any problem is a :class:`WeightsError` naming the file."""
    path = Path(folder) / WEIGHTS_NAME
    expected = recorded_sha256(folder)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read: {reason(exc)}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise WeightsError(f"{path}: sha256 {digest[:12]}... does not match the recorded "
                           f"{expected[:12]}... in {SHA_NAME} (corrupted or replaced weights)")
    try:
        state = load(data)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file: {one_line(exc)[:200]}"
                           ) from None
    bad = non_finite_tensors(state)
    if bad:
        raise WeightsError(f"{path}: non-finite values in {', '.join(bad[:5])}")
    return state, digest
