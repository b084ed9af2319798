"""Training batches for the benchmarks: the preset's dataset (real files, or uniform noise images
where they are absent, said on stdout) through :func:`flows.train_step.training_batch`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from flows import data as fdata
from flows.train_step import training_batch

Batch = tuple[torch.Tensor, torch.Tensor]


def preset_dataset(preset: str) -> tuple[str, int]:
    """``(dataset, channels)`` a preset is benchmarked on: CIFAR-10 for ``*cifar*``, else MNIST."""
    return ("cifar10", 3) if "cifar" in preset else ("mnist", 1)


def batch_source(preset: str, data_dir: str | None, batch_size: int = 64, seed: int = 0,
                 memory_format: torch.memory_format = torch.contiguous_format
                 ) -> Callable[[], Batch]:
    """A function returning the next random training batch (augmented and dequantised as in
    training) of the preset's dataset, from a generator seeded with ``seed``."""
    dataset, channels = preset_dataset(preset)
    try:
        images, labels = fdata.load_split(dataset, "train", data_dir)
    except fdata.DataFileError:
        print(f"  ({dataset} not found: uniform noise images)")
        images = torch.randint(0, 256, (4096, channels, 32, 32), dtype=torch.uint8)
        labels = torch.randint(0, 10, (4096,))
    gen = torch.Generator().manual_seed(seed)

    def next_batch() -> Batch:
        idx = torch.randint(0, len(images), (batch_size,), generator=gen)
        return training_batch(images, labels, idx, augment_images=True, flip=channels == 3,
                              generator=gen, device=torch.device("cpu"),
                              memory_format=memory_format)

    return next_batch
