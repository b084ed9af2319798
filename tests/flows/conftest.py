"""Shared fixtures for the flows tests: small threads, tiny data files in the real formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from flows_testutils import write_cifar, write_idx_images, write_idx_labels


@pytest.fixture(autouse=True)
def _one_thread():
    """Run the flows tests single-threaded (fast on shared 2-core machines); restore afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
