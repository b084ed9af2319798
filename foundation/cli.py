"""Command-line parsing shared by every entry point: a one-line-error ``ArgumentParser`` and
torch-free argument types (numbers, seeds, paths).

Usage::

    from foundation import cli, errors

    def build_parser() -> cli.ArgumentParser:
        p = cli.ArgumentParser(prog="python -m flows.thing")
        p.add_argument("--lr", type=cli.positive_float, default=1e-3)
        p.add_argument("--steps", type=cli.positive_int, default=100)
        p.add_argument("--seed", type=cli.seed, default=0)
        p.add_argument("--eps", type=cli.float_range(0.0, None, lo_open=True), required=True)
        p.add_argument("--run", type=cli.existing_dir, required=True)
        p.add_argument("--out", type=cli.output_file, required=True)
        return p

    @errors.guard("python -m flows.thing")
    def main(argv=None) -> int:
        args = build_parser().parse_args(argv)
        if args.a and args.b:
            raise errors.UsageError("--a and --b exclude each other")     # exit 2
        ...  # raise errors.CommandError("x.json: ...") for runtime failures  (exit 1)
        return 0

:class:`ArgumentParser` prints argparse's errors as one line (exit 2, no usage dump). The device
argument types need torch and live in ``flows.devices``; exit statuses and the error types in
:mod:`foundation.errors`. Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from foundation.errors import USAGE_STATUS, UsageError, exit_with

MAX_INT = 2**63 - 1
"""Largest integer accepted by the integer types (torch's int64)."""

MAX_SEED = 2**32 - 1
"""Seeds are in ``[0, 2**32 - 1]`` (numpy's limit; derived per-epoch seeds stay in int64)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors are one line (no usage dump), exit status 2.

    The line ends in :attr:`error_hint` (``" (see --help)"``; a subclass may change it)."""

    error_hint = " (see --help)"

    def error(self, message: str) -> NoReturn:
        exit_with(self.prog, f"{message}{self.error_hint}", USAGE_STATUS)


# -- numbers ---------------------------------------------------------------------------------
def _parse_int(value: str) -> int:
    try:
        n = int(str(value).strip(), 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if abs(n) > MAX_INT:
        raise argparse.ArgumentTypeError(f"{value!r} is out of range (|n| <= 2**63 - 1)")
    return n


def _parse_float(value: str) -> float:
    try:
        x = float(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value!r}")
    return x


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    """``">= 1"``, ``"> 0"``, ``"in [0, 1]"``, ... as used in the error messages."""
    def num(v: float) -> str:
        return str(v) if isinstance(v, int) else f"{v:g}"

    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {num(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {num(hi)}"
    return ""


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """Argument type: an integer with ``lo <= n <= hi`` (``None``: unbounded, within int64)."""
    def parse(value: str) -> int:
        n = _parse_int(value)
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(
                f"expected an integer {_interval(lo, hi, False, False)}, got {value!r}")
        return n

    parse.__name__ = f"int_range({lo}, {hi})"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """Argument type: a finite float in the interval ``[lo, hi]`` (``lo_open``/``hi_open``:
    exclude that end; ``None``: unbounded)."""
    def parse(value: str) -> float:
        x = _parse_float(value)
        bad_lo = lo is not None and (x <= lo if lo_open else x < lo)
        bad_hi = hi is not None and (x >= hi if hi_open else x > hi)
        if bad_lo or bad_hi:
            raise argparse.ArgumentTypeError(
                f"expected a finite number {_interval(lo, hi, lo_open, hi_open)}, got {value!r}")
        return x

    parse.__name__ = f"float_range({lo}, {hi})"
    return parse


positive_int = int_range(1)
positive_int.__doc__ = "Argument type: an integer >= 1."
non_negative_int = int_range(0)
non_negative_int.__doc__ = "Argument type: an integer >= 0."
seed = int_range(0, MAX_SEED)
seed.__doc__ = "Argument type: a random seed in [0, 2**32 - 1]."
threads = int_range(0, 4096)
threads.__doc__ = "Argument type: a thread count in [0, 4096] (0: leave torch's default)."
positive_float = float_range(0.0, lo_open=True)
positive_float.__doc__ = "Argument type: a finite float > 0."
non_negative_float = float_range(0.0)
non_negative_float.__doc__ = "Argument type: a finite float >= 0."
finite_float = float_range()
finite_float.__doc__ = "Argument type: any finite float (no nan, no inf)."
probability = float_range(0.0, 1.0)
probability.__doc__ = "Argument type: a float in [0, 1]."


# -- paths -----------------------------------------------------------------------------------
def _nonempty(value: str) -> Path:
    if not str(value).strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(value)


def _probe_writable(directory: Path) -> None:
    """Create (and at once delete) a temporary file in ``directory``; explain any failure."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno == errno.ENOENT and directory.is_dir():  # e.g. /proc: the folder is there
            why = "its file system does not accept new files"
        raise argparse.ArgumentTypeError(f"cannot write in {directory}: {why}") from None


def _nearest_existing(path: Path, target: Path) -> Path:
    """The nearest ancestor of ``path`` (or ``path``) that exists; it must be a directory
    (``target``: the path being checked, for the message)."""
    p = path.absolute()
    for a in (p, *p.parents):
        try:
            exists = a.exists()
        except OSError as exc:  # e.g. a symlink loop
            raise argparse.ArgumentTypeError(f"{a}: {exc.strerror or exc}") from None
        if exists:
            if not a.is_dir():
                raise argparse.ArgumentTypeError(f"{a} is not a directory (cannot write {target})")
            return a
        if a.is_symlink():
            raise argparse.ArgumentTypeError(f"{a} is {_why_missing(a)}")
    return Path("/")


def output_file(value: str) -> Path:
    """Argument type: a file path to be written (not a directory, a symbolic link, a device or a
    FIFO, which an atomic write would replace; its folder creatable and writable). Nothing is
    created."""
    path = _nonempty(value)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory, expected a file path")
    if path.is_symlink():  # an atomic write would replace the link, not the file it names
        raise argparse.ArgumentTypeError(f"{path} is a symbolic link; give the path of the file "
                                         "itself")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a regular file")
    if str(value).endswith(os.sep):
        raise argparse.ArgumentTypeError(f"{value!r} ends with {os.sep!r}, expected a file path")
    _probe_writable(_nearest_existing(path.parent, path))
    return path


def output_dir(value: str) -> Path:
    """Argument type: a directory to be written into (existing or creatable, writable)."""
    path = _nonempty(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a directory")
    _probe_writable(_nearest_existing(path, path))
    return path


def _why_missing(path: Path) -> str:
    """Why ``path`` does not exist: not found, a dangling symbolic link, or a link loop."""
    if not path.is_symlink():
        return "not found"
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
    return "a dangling symbolic link"


def existing_dir_of(what: str) -> Callable[[str], Path]:
    """Argument type factory: an existing, readable directory; messages call it ``what``
    (e.g. ``"run directory"``)."""
    def parse(value: str) -> Path:
        path = _nonempty(value)
        try:
            exists, is_dir = path.exists(), path.is_dir()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"{what} {path}: {exc.strerror or exc}") from None
        if not exists:
            raise argparse.ArgumentTypeError(f"{what} {path} does not exist "
                                             f"({_why_missing(path)})")
        if not is_dir:
            raise argparse.ArgumentTypeError(f"{what} {path} is not a directory")
        if not os.access(path, os.R_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"{what} {path} is not readable")
        return path

    parse.__name__ = "existing_dir"
    return parse


existing_dir = existing_dir_of("directory")
existing_dir.__doc__ = "Argument type: an existing, readable directory."


def existing_file(value: str) -> Path:
    """Argument type: an existing, readable regular file."""
    path = _nonempty(value)
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc.strerror or exc}") from None
    if not exists:
        raise argparse.ArgumentTypeError(f"{path}: file not found")
    if not is_file:
        raise argparse.ArgumentTypeError(f"{path} is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{path}: {exc.strerror or exc}") from None
    return path


def refuse_out_inside(out: str, args: argparse.Namespace, flags: Sequence[str]) -> None:
    """``--out`` must not lie inside a directory the command reads or draws into (the data,
    the score cache, the images): a result written there replaced a dataset file, the cache
    just read or a figure. A usage error naming the flag."""
    where = Path(out).absolute().resolve()
    for flag in flags:
        d = getattr(args, flag, None)
        if d is not None and where.is_relative_to(Path(d).absolute().resolve()):
            raise UsageError(f"--out {out} is inside --{flag.replace('_', '-')} {d}; "
                             "write the result elsewhere")
