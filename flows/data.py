"""Datasets: MNIST, CIFAR-10 and BG-MNIST-{0,1,5} from local files (see :mod:`flows.readers`).

The data directory is resolved as: explicit argument / ``--data-dir`` flag > environment variable
``ANNULUS_DATA_DIR`` > ``../shared/data`` relative to the repository root. It must contain
``mnist/`` (the four IDX files, gzipped or not) and ``cifar10/`` (``data_batch_1..5.bin`` and
``test_batch.bin``, gzipped or not). What is checked when reading: :mod:`flows.readers`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Literal

import torch

from flows.bgmnist import make_bg_mnist
from flows.pixels import dequantize, to_model_input
from flows.preprocess import augment
from flows.readers import (
    DataFileError,
    find_file,
    is_published_dir,
    read_cifar_batch,
    read_idx_images,
    read_idx_labels,
)

__all__ = [
    "DATASETS",
    "DataFileError",
    "augment",
    "dequantize",
    "load_split",
    "num_channels",
    "resolve_data_dir",
    "to_model_input",
]

DATASETS = ("mnist", "cifar10", "bg-mnist-0", "bg-mnist-1", "bg-mnist-5")
REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "ANNULUS_DATA_DIR"
DEFAULT_BG_SEED = 0
MNIST_SHAPE = (28, 28)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Data directory: ``data_dir`` > ``$ANNULUS_DATA_DIR`` > ``<repo>/../shared/data``."""
    if data_dir is not None:
        path, source = Path(data_dir), "--data-dir"
    elif os.environ.get(ENV_VAR):
        path, source = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        path, source = REPO_ROOT.parent / "shared" / "data", "default ../shared/data"
    if not path.exists():
        what = ("is a dangling symbolic link or a link loop" if path.is_symlink()
                else "does not exist")
        raise DataFileError(
            f"data directory {path} (from {source}) {what}; pass --data-dir or set {ENV_VAR}"
        )
    if not path.is_dir():
        raise DataFileError(f"data directory {path} (from {source}) is not a directory")
    return path


def num_channels(name: str) -> int:
    """Image channels of dataset ``name`` (3 for CIFAR-10, else 1)."""
    _check_name(name)
    return 3 if name == "cifar10" else 1


def is_cifar(name: str) -> bool:
    """True for CIFAR-10 (the only dataset that is flipped during augmentation)."""
    return name == "cifar10"


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")


@functools.lru_cache(maxsize=4)
def _mnist(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if split == "train" else "t10k"
    d = root / "mnist"
    strict = is_published_dir(root)
    images = read_idx_images(find_file(d, f"{prefix}-images-idx3-ubyte"), MNIST_SHAPE, strict)
    labels = read_idx_labels(find_file(d, f"{prefix}-labels-idx1-ubyte"), strict)
    if images.shape[0] != labels.shape[0]:
        raise DataFileError(f"{d}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels")
    return images, labels


@functools.lru_cache(maxsize=2)
def _cifar(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    d = root / "cifar10"
    stems = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    strict = is_published_dir(root)
    parts = [read_cifar_batch(find_file(d, s), strict) for s in stems]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


@functools.lru_cache(maxsize=2)
def _bg_mnist(root: Path, split: str, blur: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    digits, labels = _mnist(root, split)
    cifar, _ = _cifar(root, split)
    images = make_bg_mnist(digits, cifar, blur=blur, seed=seed if split == "train" else seed + 1)
    return images, labels


def load_split(
    name: str,
    split: Literal["train", "test"],
    data_dir: str | Path | None = None,
    bg_seed: int = DEFAULT_BG_SEED,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw uint8 images ``[N, C, H, W]`` and int64 labels ``[N]`` of one split.

    MNIST / BG-MNIST: C=1, 28x28; CIFAR-10: C=3, 32x32. BG-MNIST is built on the fly,
    deterministically from ``bg_seed`` (see :mod:`flows.bgmnist`). Results are cached in memory;
    callers must not modify the returned tensors in place.
    """
    _check_name(name)
    _check_split(split)
    root = resolve_data_dir(data_dir).resolve()
    if name == "mnist":
        images, labels = _mnist(root, split)
    elif name == "cifar10":
        images, labels = _cifar(root, split)
    else:
        images, labels = _bg_mnist(root, split, int(name.rsplit("-", 1)[1]), bg_seed)
    if images.shape[0] == 0:
        raise DataFileError(f"{root}: the {name} {split} split holds no images")
    return images, labels
