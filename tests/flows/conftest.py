"""Shared fixtures for the flows tests: small threads, tiny data files in the real formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

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


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with 200/60 MNIST and 5x40/30 CIFAR-10 images (random pixels)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "mnist").mkdir()
    (root / "cifar10").mkdir()
    for prefix, n in (("train", 200), ("t10k", 60)):
        digits = rng.integers(0, 256, (n, 28, 28))
        digits[:, :4] = 0  # a black band so the background shows
        write_idx_images(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", digits)
        write_idx_labels(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    for i in range(1, 6):  # mix plain and gzipped batches
        write_cifar(root / "cifar10" / (f"data_batch_{i}.bin" + (".gz" if i % 2 else "")),
                    rng.integers(0, 256, (40, 3, 32, 32)), rng.integers(0, 10, 40), i % 2 == 1)
    write_cifar(root / "cifar10" / "test_batch.bin.gz", rng.integers(0, 256, (30, 3, 32, 32)),
                np.arange(30) % 10, True)
    return root
