"""Readers for the raw dataset files (no downloads, no unpickling).

* MNIST: IDX files (big-endian): images magic 2051, uint32 count, rows, cols, then count*rows*cols
  bytes; labels magic 2049, uint32 count, then count bytes.
* CIFAR-10 binary version: records of ``1 label byte + 3072 pixel bytes`` (R, G, B planes of a
  32x32 image, each row-major), no header.

Files may be plain or gzip-compressed (detected from the gzip magic bytes ``1f 8b``). Every
problem raises :class:`DataFileError` whose one-line message names the file and what was expected:
missing, a directory, a dangling symbolic link or a loop, unreadable, corrupt gzip, wrong header
magic, header dimensions other than the dataset's (28x28 for MNIST), a size that does not match
the header or the record length, labels outside 0..9.

**Published files.** :data:`PUBLISHED` holds the size and sha256 of the *decompressed* bytes of
the ten official files (from ``shared/data/README.md``). Whenever a file with an official name
decompresses to the official size, its sha256 is checked too (about 25 ms per 30 MB, against
about 400 ms for the gzip decompression itself, so it is always done). When the data directory
is the published one -- it holds ``SHA256SUMS``, or ``$ANNULUS_DATA_STRICT=1`` -- a file with an
official name must also *have* the official size, so a batch cut at a record boundary (a valid
but shorter file) is refused. Elsewhere (e.g. the tiny test fixtures) smaller files with the
official names are accepted as they are.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from foundation.errors import CommandError

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32
NUM_CLASSES = 10
MANIFEST_NAME = "SHA256SUMS"
STRICT_ENV = "ANNULUS_DATA_STRICT"

#: ``"folder/name"`` (without ``.gz``) -> (decompressed bytes, sha256 of the decompressed bytes).
PUBLISHED: dict[str, tuple[int, str]] = {
    "mnist/train-images-idx3-ubyte":
        (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "mnist/train-labels-idx1-ubyte":
        (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "mnist/t10k-images-idx3-ubyte":
        (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "mnist/t10k-labels-idx1-ubyte":
        (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    "cifar10/data_batch_1.bin":
        (30730000, "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5"),
    "cifar10/data_batch_2.bin":
        (30730000, "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed"),
    "cifar10/data_batch_3.bin":
        (30730000, "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67"),
    "cifar10/data_batch_4.bin":
        (30730000, "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48"),
    "cifar10/data_batch_5.bin":
        (30730000, "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add"),
    "cifar10/test_batch.bin":
        (30730000, "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"),
}


class DataFileError(CommandError):
    """A dataset file is missing, truncated or corrupt (the message says which and why)."""


def is_published_dir(root: str | Path) -> bool:
    """True when ``root`` claims to be the published dataset (``SHA256SUMS`` present, or
    ``$ANNULUS_DATA_STRICT=1``): official file names must then have the official sizes."""
    return os.environ.get(STRICT_ENV) == "1" or (Path(root) / MANIFEST_NAME).is_file()


def check_published(path: str | Path, data: bytes, strict: bool = False) -> None:
    """Compare decompressed ``data`` of ``path`` with the published size and sha256 (if any)."""
    path = Path(path)
    key = f"{path.parent.name}/{path.name.removesuffix('.gz')}"
    if key not in PUBLISHED:
        return
    size, digest = PUBLISHED[key]
    if len(data) == size:
        got = hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DataFileError(f"{path}: decompressed content differs from the published file "
                                f"(sha256 {got[:16]}..., expected {digest[:16]}...)")
    elif strict:
        marked = (f"${STRICT_ENV}=1 asks for the published dataset"
                  if os.environ.get(STRICT_ENV) == "1"
                  else f"{MANIFEST_NAME} marks this directory as the published dataset")
        raise DataFileError(f"{path}: {len(data)} bytes after decompression, the published file "
                            f"has {size} (truncated or not the official file; {marked})")


def _stat_regular(path: Path) -> None:
    """Raise :class:`DataFileError` unless ``path`` is an existing regular file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise DataFileError(f"{path}: dangling symbolic link "
                                f"(points to {os.readlink(path)})") from None
        raise DataFileError(f"{path}: file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataFileError(f"{path}: symbolic link loop") from None
        raise DataFileError(f"{path}: cannot access: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataFileError(f"{path}: is a directory, expected a data file")
    if not stat.S_ISREG(st.st_mode):
        raise DataFileError(f"{path}: not a regular file")


def read_bytes(path: str | Path) -> bytes:
    """Return the (decompressed) bytes of ``path``; gzip is detected from the magic bytes."""
    path = Path(path)
    _stat_regular(path)
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise DataFileError(f"{path}: not readable (permission denied)") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataFileError(
            f"{path}: corrupt or truncated gzip stream ({len(raw)} bytes on disk): {exc}"
        ) from exc


def read_idx_images(path: str | Path, shape: tuple[int, int] | None = None,
                    strict: bool = False) -> torch.Tensor:
    """Read an IDX3 image file into a uint8 tensor ``[N, 1, rows, cols]``.

    ``shape``: the ``(rows, cols)`` the dataset has (MNIST: 28x28); other header dimensions are
    refused. ``strict``: see :func:`check_published`.
    """
    data = read_bytes(path)
    if len(data) < 16:
        raise DataFileError(f"{path}: {len(data)} bytes, expected a 16-byte IDX3 header")
    magic, count, rows, cols = struct.unpack(">IIII", data[:16])
    if magic != IDX_IMAGES_MAGIC:
        raise DataFileError(f"{path}: header magic {magic}, expected {IDX_IMAGES_MAGIC} (IDX3)")
    if shape is not None and (rows, cols) != tuple(shape):
        raise DataFileError(f"{path}: header says {rows}x{cols} images, expected "
                            f"{shape[0]}x{shape[1]}")
    expected = 16 + count * rows * cols
    if len(data) != expected:
        raise DataFileError(
            f"{path}: {len(data)} bytes after decompression, expected {expected} "
            f"(16-byte header + {count}x{rows}x{cols} pixels)"
        )
    check_published(path, data, strict)
    arr = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, 1, rows, cols)
    return torch.from_numpy(arr.copy())


def read_idx_labels(path: str | Path, strict: bool = False) -> torch.Tensor:
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
    check_published(path, data, strict)
    labels = np.frombuffer(data, dtype=np.uint8, offset=8).astype(np.int64)
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataFileError(f"{path}: label {labels.max()} found, expected labels 0..9")
    return torch.from_numpy(labels)


def read_cifar_batch(path: str | Path, strict: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a CIFAR-10 binary batch: uint8 images ``[N, 3, 32, 32]`` and int64 labels ``[N]``.

    ``strict``: see :func:`check_published` (the official batches hold 10000 records).
    """
    data = read_bytes(path)
    if len(data) == 0 or len(data) % CIFAR_RECORD_BYTES != 0:
        raise DataFileError(
            f"{path}: {len(data)} bytes, expected a positive multiple of {CIFAR_RECORD_BYTES} "
            "(records of 1 label byte + 3072 pixel bytes; official batches are 30730000 bytes)"
        )
    check_published(path, data, strict)
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() >= NUM_CLASSES:
        raise DataFileError(f"{path}: label byte {labels.max()} found, expected 0..9")
    images = rec[:, 1:].reshape(-1, 3, 32, 32)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels)


def find_file(directory: Path, stem: str) -> Path:
    """Return ``directory/stem`` or ``directory/stem.gz``, whichever exists (plain first).

    A candidate that exists but is no regular file (a directory, a dangling link, a loop) is
    returned as well, so that reading it says what is wrong instead of "not found".
    """
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if os.path.lexists(candidate):
            return candidate
    raise DataFileError(f"{directory / stem}[.gz]: file not found")
