"""Helpers for the flows tests: write tiny files in the real MNIST / CIFAR-10 formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_DATA = REPO_ROOT.parent / "shared" / "data"


def write_idx_images(path: Path, images: np.ndarray, compress: bool = True) -> None:
    n, r, c = images.shape
    payload = struct.pack(">IIII", 2051, n, r, c) + images.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_idx_labels(path: Path, labels: np.ndarray, compress: bool = True) -> None:
    payload = struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def write_cifar(path: Path, images: np.ndarray, labels: np.ndarray, compress: bool) -> None:
    rec = np.concatenate([labels.astype(np.uint8)[:, None],
                          images.astype(np.uint8).reshape(len(labels), -1)], axis=1)
    payload = rec.tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
