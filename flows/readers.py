"""Readers for the raw dataset files (no downloads, no unpickling).

* MNIST: IDX files (big-endian): images magic 2051, uint32 count, rows, cols, then count*rows*cols
  bytes; labels magic 2049, uint32 count, then count bytes.
* CIFAR-10 binary version: records of ``1 label byte + 3072 pixel bytes`` (R, G, B planes of a
  32x32 image, each row-major), no header.

Files may be plain or gzip-compressed (detected from the gzip magic bytes ``1f 8b``). Every
problem (missing, truncated, corrupt, wrong header) raises :class:`DataFileError` whose message
names the file and what was expected.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10


class DataFileError(RuntimeError):
    """A dataset file is missing, truncated or corrupt (the message says which and why)."""


def read_bytes(path: str | Path) -> bytes:
    """Return the (decompressed) bytes of ``path``; gzip is detected from the magic bytes."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataFileError(
            f"{path}: corrupt or truncated gzip stream ({len(raw)} bytes on disk): {exc}"
        ) from exc


def read_idx_images(path: str | Path) -> torch.Tensor:
    """Read an IDX3 image file into a uint8 tensor ``[N, 1, rows, cols]``."""
    data = read_bytes(path)
    if len(data) < 16:
        raise DataFileError(f"{path}: {len(data)} bytes, expected a 16-byte IDX3 header")
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != IDX_IMAGES_MAGIC:
        raise DataFileError(f"{path}: header magic {magic}, expected {IDX_IMAGES_MAGIC} (IDX3)")
    expected = 16 + count * rows * cols
    if len(data) != expected:
        raise DataFileError(
            f"{path}: {len(data)} bytes after decompression, expected {expected} "
            f"(16-byte header + {count}x{rows}x{cols} pixels)"
        )
    arr = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, 1, rows, cols)
    return torch.from_numpy(arr.copy())


def read_idx_labels(path: str | Path) -> torch.Tensor:
    """Read an IDX1 label file into an int64 tensor ``[N]`` (values checked to be 0..9)."""
    data = read_bytes(path)
    if len(data) < 8:
        raise DataFileError(f"{path}: {len(data)} bytes, expected an 8-byte IDX1 header")
    magic, count = struct.unpack(">II", data[:8])
    if magic != IDX_LABELS_MAGIC:
        raise DataFileError(f"{path}: header magic {magic}, expected {IDX_LABELS_MAGIC} (IDX1)")
    if len(data) != 8 + count:
        raise DataFileError(
            f"{path}: {len(data)} bytes after decompression, expected {8 + count} "
            f"(8-byte header + {count} labels)"
        )
    labels = np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataFileError(f"{path}: label {labels.max()} found, expected labels 0..9")
    return torch.from_numpy(labels)


def read_cifar_batch(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a CIFAR-10 binary batch: uint8 images ``[N, 3, 32, 32]`` and int64 labels ``[N]``."""
    data = read_bytes(path)
    if len(data) == 0 or len(data) % CIFAR_RECORD_BYTES != 0:
        raise DataFileError(
            f"{path}: {len(data)} bytes, expected a positive multiple of {CIFAR_RECORD_BYTES} "
            "(records of 1 label byte + 3072 pixel bytes; official batches are 30730000 bytes)"
        )
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        raise DataFileError(f"{path}: label byte {labels.max()} found, expected 0..9")
    images = rec[:, 1:].reshape(-1, 3, 32, 32)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def find_file(directory: Path, stem: str) -> Path:
    """Return ``directory/stem`` or ``directory/stem.gz``, whichever exists (plain first)."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataFileError(f"{directory / stem}[.gz]: file not found")
