"""Fixtures for the experiment tests: tiny synthetic datasets and a tiny trained GlowClassifier.

The data are written in the real on-disk formats (gzipped IDX for MNIST, CIFAR-10 binary) so the
experiments' CLIs go through ``flows.data.load_split`` exactly as on the real data.  The model is
the real :class:`flows.model.GlowClassifier` with a tiny config, trained for a few seconds with
the Reweighted objective so that its classes are separated.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

N_PER_CLASS = 8
NUM_CLASSES = 10
torch.set_num_threads(1)  # one thread is much faster than two on a shared 2-core machine


def _digit_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 uint8 'digits': class k is a bright 8x8 square at a class-specific position."""
    imgs = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + 6 * (k // 4), 2 + 6 * (k % 4)
        imgs[i, r : r + 8, c : c + 8] = 200
        imgs[i] = np.clip(imgs[i].astype(int) + rng.integers(0, 40, (28, 28)), 0, 255)
    return imgs


def _write_idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic MNIST (80 train / 80 test) and CIFAR-10 test batch (40) in the real formats."""
    return write_synthetic_data(tmp_path_factory.mktemp("data"))


def write_synthetic_data(root: Path) -> Path:
    """Write the synthetic MNIST / CIFAR-10 files under ``root``; returns ``root``."""
    rng = np.random.default_rng(0)
    (root / "mnist").mkdir()
    for prefix in ("train", "t10k"):
        labels = np.repeat(np.arange(NUM_CLASSES), N_PER_CLASS)
        rng.shuffle(labels)
        _write_idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", _digit_images(labels, rng),
                   2051)  # fmt: skip
        _write_idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
    (root / "cifar10").mkdir()
    lab = np.repeat(np.arange(NUM_CLASSES), 4).astype(np.uint8)
    pix = rng.integers(0, 256, (len(lab), 3072), dtype=np.uint8)
    records = np.concatenate([lab[:, None], pix], 1)
    (root / "cifar10" / "test_batch.bin").write_bytes(records.tobytes())
    return root


def _fit_tiny(data_dir: Path) -> torch.nn.Module:
    """Tiny GlowClassifier (random flow) whose Gaussian-mixture prior is fitted in closed form.

    The class means and (pooled, floored) standard deviations of the latent ``z`` of the training
    images are the maximum-likelihood prior for the fixed flow: a class-separated model in
    well under a second, with no gradient training.
    """
    from flows.config import ModelConfig
    from flows.data import load_split, to_model_input
    from flows.model import GlowClassifier

    torch.manual_seed(0)
    model = GlowClassifier(ModelConfig(in_channels=1, hidden=8, steps_per_level=1, levels=2))
    images, labels = load_split("mnist", "train", data_dir=data_dir)
    x = to_model_input(images).float()
    model.eval()
    with torch.no_grad():
        z, _ = model.encode(x)
        means = torch.stack([z[labels == k].mean(0) for k in range(NUM_CLASSES)])
        resid = z - means[labels]
        std = resid.std(0).clamp_min(0.5)
        model.prior.mean.copy_(means)
        model.prior.log_std.copy_(std.log().expand_as(means))
    return model


@pytest.fixture(scope="session")
def tiny_model_state(data_dir: Path) -> tuple[dict, dict]:
    model = _fit_tiny(data_dir)
    return model.config.to_dict(), model.state_dict()


def make_run(root: Path, name: str, dataset: str, model_cfg: dict, state: dict) -> Path:
    """A run directory in the ``flows.runs`` layout (config.json, checkpoint.pt, eval.json)."""
    run = root / name
    run.mkdir(parents=True, exist_ok=True)
    cfg = {"dataset": dataset, "objective": "reweighted", "preset": "tiny", "bg_seed": 0,
           "model": model_cfg}  # fmt: skip
    (run / "config.json").write_text(json.dumps(cfg))
    torch.save({"model": state}, run / "checkpoint.pt")
    (run / "eval.json").write_text(json.dumps({"note": "synthetic"}))
    return run


@pytest.fixture(scope="session")
def make_run_dir():
    """The :func:`make_run` helper as a fixture (test modules do not import conftest)."""
    return make_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_state) -> Path:
    cfg, state = tiny_model_state
    return make_run(tmp_path_factory.mktemp("runs"), "mnist-tiny", "mnist", cfg, state)


@pytest.fixture(scope="session")
def tiny_model(tiny_run: Path):  # noqa: D103
    from flows.experiments.scored_runs import load_run_checked

    model, _ = load_run_checked(tiny_run)
    return model


def _run_cli(main, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Run an experiment ``main``; return (exit status, stderr lines); ``SystemExit`` -> status."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = int(exc.code) if isinstance(exc.code, int) else 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return rc, err


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """``run_cli(main, argv) -> (status, stderr lines)``."""
    return lambda main, argv: _run_cli(main, argv, capsys)
