"""Data readers on tiny files in the real formats, corrupt files, BG-MNIST, preprocessing."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from flows_testutils import REAL_DATA, write_cifar, write_idx_images, write_idx_labels

from flows import data as fdata
from flows.bgmnist import compose, gaussian_blur, make_bg_mnist
from flows.pixels import to_model_input
from flows.preprocess import augment, pad_to_32
from flows.readers import DataFileError, read_cifar_batch, read_idx_images, read_idx_labels


@pytest.mark.parametrize("compress", [True, False])
def test_idx_roundtrip(tmp_path: Path, compress: bool) -> None:
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    write_idx_images(tmp_path / "im", imgs, compress)
    write_idx_labels(tmp_path / "lb", np.array([0, 1, 2, 9, 3]), compress)
    out = read_idx_images(tmp_path / "im")
    assert out.shape == (5, 1, 28, 28) and out.dtype == torch.uint8
    assert np.array_equal(out[:, 0].numpy(), imgs)
    assert read_idx_labels(tmp_path / "lb").tolist() == [0, 1, 2, 9, 3]


@pytest.mark.parametrize("compress", [True, False])
def test_cifar_roundtrip(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(1)
    imgs, labels = rng.integers(0, 256, (4, 3, 32, 32)), np.array([3, 8, 8, 0])
    write_cifar(tmp_path / "b.bin", imgs, labels, compress)
    x, y = read_cifar_batch(tmp_path / "b.bin")
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert np.array_equal(x.numpy(), imgs) and y.tolist() == [3, 8, 8, 0]
    # plane layout: the record's first 1024 pixel bytes are the red plane, row-major
    raw = (tmp_path / "b.bin").read_bytes()
    raw = gzip.decompress(raw) if compress else raw
    assert raw[1:33] == bytes(imgs[0, 0, 0].astype(np.uint8))


def test_truncated_and_corrupt_files_are_rejected(tmp_path: Path) -> None:
    imgs = np.zeros((3, 28, 28))
    write_idx_images(tmp_path / "ok.gz", imgs)
    payload = gzip.decompress((tmp_path / "ok.gz").read_bytes())
    (tmp_path / "short").write_bytes(payload[:-5])
    with pytest.raises(DataFileError, match=r"short: 2363 bytes .* expected 2368"):
        read_idx_images(tmp_path / "short")
    (tmp_path / "trunc.gz").write_bytes((tmp_path / "ok.gz").read_bytes()[:-20])
    with pytest.raises(DataFileError, match=r"trunc.gz: corrupt or truncated gzip"):
        read_idx_images(tmp_path / "trunc.gz")
    (tmp_path / "badmagic").write_bytes(b"\x00\x00\x08\x01" + payload[4:])
    with pytest.raises(DataFileError, match="expected 2051"):
        read_idx_images(tmp_path / "badmagic")
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(DataFileError, match="16-byte IDX3 header"):
        read_idx_images(tmp_path / "tiny")
    write_idx_labels(tmp_path / "lbl", np.array([1, 12]))
    with pytest.raises(DataFileError, match="expected labels 0..9"):
        read_idx_labels(tmp_path / "lbl")
    write_cifar(tmp_path / "c.bin", np.zeros((2, 3, 32, 32)), np.array([1, 2]), False)
    (tmp_path / "c_short.bin").write_bytes((tmp_path / "c.bin").read_bytes()[:-1])
    with pytest.raises(DataFileError, match=r"c_short.bin: 6145 bytes, expected a positive"):
        read_cifar_batch(tmp_path / "c_short.bin")
    with pytest.raises(DataFileError, match="file not found"):
        read_cifar_batch(tmp_path / "missing.bin")


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    monkeypatch.setenv("ANNULUS_DATA_DIR", str(b))
    assert fdata.resolve_data_dir(a) == a
    assert fdata.resolve_data_dir(None) == b
    monkeypatch.delenv("ANNULUS_DATA_DIR")
    default = fdata.REPO_ROOT.parent / "shared" / "data"
    if default.is_dir():
        assert fdata.resolve_data_dir(None) == default
    else:
        with pytest.raises(DataFileError, match="ANNULUS_DATA_DIR"):
            fdata.resolve_data_dir(None)
    with pytest.raises(DataFileError, match="does not exist"):
        fdata.resolve_data_dir(tmp_path / "nope")


def test_load_split_tiny(tiny_data_dir: Path) -> None:
    x, y = fdata.load_split("mnist", "train", tiny_data_dir)
    assert x.shape == (200, 1, 28, 28) and y.shape == (200,) and y.dtype == torch.int64
    x, y = fdata.load_split("cifar10", "train", tiny_data_dir)
    assert x.shape == (200, 3, 32, 32) and int(y.max()) <= 9
    x, y = fdata.load_split("cifar10", "test", tiny_data_dir)
    assert x.shape == (30, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown dataset"):
        fdata.load_split("svhn", "train", tiny_data_dir)


@pytest.mark.parametrize("blur", [0, 1, 5])
def test_bg_mnist(tiny_data_dir: Path, blur: int) -> None:
    name = f"bg-mnist-{blur}"
    digits, dlabels = fdata.load_split("mnist", "test", tiny_data_dir)
    x, y = fdata.load_split(name, "test", tiny_data_dir)
    assert x.shape == (60, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(y, dlabels)
    # full ink stays white; the result is never darker than the digit
    assert bool((x[digits == 255] == 255).all()) and bool((x >= digits).all())
    # deterministic given the seed, different for another seed
    x2, _ = fdata.load_split(name, "test", tiny_data_dir, bg_seed=0)
    assert torch.equal(x, x2)
    x3, _ = fdata.load_split(name, "test", tiny_data_dir, bg_seed=7)
    assert not torch.equal(x, x3)


def test_bg_mnist_uses_same_split_backgrounds() -> None:
    digits = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)  # pure background
    cifar_train = torch.full((5, 3, 32, 32), 200, dtype=torch.uint8)
    cifar_test = torch.full((5, 3, 32, 32), 50, dtype=torch.uint8)
    assert bool((make_bg_mnist(digits, cifar_train, 0, seed=0) == 200).all())
    assert bool((make_bg_mnist(digits, cifar_test, 5, seed=1) == 50).all())


def test_compose_rule_and_blur() -> None:
    d = torch.tensor([[[[0, 255, 128]]]], dtype=torch.uint8)
    out = compose(d, torch.full((1, 1, 1, 3), 0.4, dtype=torch.float64))
    expected = [round(0.4 * 255), 255, round(255 * (128 / 255 + (1 - 128 / 255) * 0.4))]
    assert out.flatten().tolist() == expected
    img = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(gaussian_blur(img, 0), img)
    blurred = gaussian_blur(img, 5)
    assert blurred.shape == img.shape and float(blurred.std()) < float(img.std())
    torch.testing.assert_close(blurred.mean(), img.mean(), atol=0.02, rtol=0)


def test_preprocessing_padding_and_augment() -> None:
    k = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    x = to_model_input(k)
    assert x.shape == (6, 1, 32, 32) and x.dtype == torch.float32
    assert float(x[:, :, :2].max()) == 0.5 / 256 - 0.5  # zero padding = pixel 0
    assert float(x.min()) >= -0.5 and float(x.max()) <= 0.5
    gen = torch.Generator().manual_seed(0)
    a = augment(pad_to_32(k), flip=False, generator=gen)
    assert a.shape == (6, 1, 32, 32) and a.dtype == torch.uint8
    # edge padding: a constant image stays constant under any crop
    const = torch.full((4, 3, 32, 32), 77, dtype=torch.uint8)
    assert bool((augment(const, flip=True, generator=gen) == 77).all())
    # a crop with zero offset (dy=dx=pad) is the identity; flips mirror
    ramp = torch.arange(32, dtype=torch.uint8).view(1, 1, 1, 32).expand(64, 1, 32, 32)
    out = augment(ramp, flip=True, generator=gen)
    rows = out[:, 0, 0]
    assert any(torch.equal(r, ramp[0, 0, 0].flip(0)) for r in rows)  # some flipped, uncropped


realdata = pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason="needs ../shared/data")


@realdata
@pytest.mark.realdata
def test_real_test_sets() -> None:
    x, y = fdata.load_split("mnist", "test", REAL_DATA)
    assert x.shape == (10000, 1, 28, 28) and y[:5].tolist() == [7, 2, 1, 0, 4]
    x, y = fdata.load_split("cifar10", "test", REAL_DATA)
    assert x.shape == (10000, 3, 32, 32)
    assert y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.bincount(y).tolist() == [1000] * 10


@realdata
@pytest.mark.realdata
def test_real_bg_mnist_test_split() -> None:
    x, y = fdata.load_split("bg-mnist-1", "test", REAL_DATA)
    digits, labels = fdata.load_split("mnist", "test", REAL_DATA)
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.equal(y, labels)
    assert bool((x >= digits).all())
    assert 40 < float(x.float().mean()) < 200  # backgrounds are not black


# -- what a data file must be (issue 12) -------------------------------------------------------
def test_idx_header_dimensions_must_be_the_datasets(tmp_path: Path) -> None:
    from flows.readers import read_idx_images

    write_idx_images(tmp_path / "im", np.zeros((4, 56, 14)))  # size-consistent, wrong shape
    assert read_idx_images(tmp_path / "im").shape == (4, 1, 56, 14)  # no expectation given
    with pytest.raises(DataFileError, match=r"im: header says 56x14 images, expected 28x28"):
        read_idx_images(tmp_path / "im", (28, 28))


def _mnist_dir(root: Path, n: int = 20) -> Path:
    (root / "mnist").mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx_images(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)))
        write_idx_labels(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def test_load_split_names_wrong_dims_dirs_loops_and_unreadable_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _mnist_dir(tmp_path / "d")
    images = root / "mnist" / "t10k-images-idx3-ubyte.gz"
    write_idx_images(images, np.zeros((20, 56, 14)))
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: header says 56x14"):
        fdata.load_split("mnist", "test", root)
    images.unlink()
    images.mkdir()
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: is a directory"):
        fdata.load_split("mnist", "test", root)
    images.rmdir()
    images.symlink_to(images)  # a loop
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: symbolic link loop"):
        fdata.load_split("mnist", "test", root)
    images.unlink()
    images.symlink_to(tmp_path / "nowhere")
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: dangling symbolic link"):
        fdata.load_split("mnist", "test", root)
    images.unlink()
    write_idx_images(images, np.zeros((20, 28, 28)))
    real_read = Path.read_bytes

    def denied(self: Path) -> bytes:  # tests run as root, so chmod 000 would not stop a read
        if self.name == images.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte.gz: not readable"):
        fdata.load_split("mnist", "test", root)
    monkeypatch.undo()
    assert fdata.load_split("mnist", "test", root)[0].shape == (20, 1, 28, 28)
    (root / "file").write_text("x")
    with pytest.raises(DataFileError, match="is not a directory"):
        fdata.resolve_data_dir(root / "file")


def test_published_directory_refuses_a_batch_cut_at_a_record_boundary(tmp_path: Path) -> None:
    from flows.readers import PUBLISHED, read_cifar_batch

    d = tmp_path / "cifar10"
    d.mkdir()
    write_cifar(d / "test_batch.bin", np.zeros((5, 3, 32, 32)), np.arange(5), False)
    assert read_cifar_batch(d / "test_batch.bin")[0].shape[0] == 5  # not the published dir
    (tmp_path / "SHA256SUMS").write_text("")
    assert fdata.is_published_dir(tmp_path)
    with pytest.raises(DataFileError, match=r"test_batch.bin: 15365 bytes after decompression, "
                                            r"the published file has 30730000.*SHA256SUMS marks"):
        read_cifar_batch(d / "test_batch.bin", strict=fdata.is_published_dir(tmp_path))
    (tmp_path / "SHA256SUMS").unlink()  # the environment variable asks instead: it is named
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANNULUS_DATA_STRICT", "1")
        assert fdata.is_published_dir(tmp_path)
        with pytest.raises(DataFileError, match=r"\$ANNULUS_DATA_STRICT=1 asks for the published"):
            read_cifar_batch(d / "test_batch.bin", strict=fdata.is_published_dir(tmp_path))
    # a file of the published size but other content is refused everywhere (sha256)
    size, _ = PUBLISHED["mnist/t10k-labels-idx1-ubyte"]
    (tmp_path / "mnist").mkdir()
    write_idx_labels(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(size - 8))
    with pytest.raises(DataFileError, match="differs from the published file"):
        read_idx_labels(tmp_path / "mnist" / "t10k-labels-idx1-ubyte")


@realdata
@pytest.mark.realdata
def test_real_files_match_the_published_checksums() -> None:
    from flows.readers import read_bytes

    assert fdata.is_published_dir(REAL_DATA)
    data = read_bytes(REAL_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz")
    read_idx_labels(REAL_DATA / "mnist" / "t10k-labels-idx1-ubyte.gz", strict=True)
    assert len(data) == 10008
