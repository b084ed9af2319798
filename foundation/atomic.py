"""The one way this project writes files: atomically (temporary file, fsync, ``os.replace``).

Every file written by ``annulus``, ``flows`` and ``paper_figures`` (result JSON, caches,
checkpoints, tables, figures, saved attack vectors) goes through :func:`atomic_write_bytes`, so a
reader sees either the old complete file or the new complete file, never a partial one -- also on
a full disk (the write fails, the old file stays) and after ``kill -9`` (at most a temporary file
is left behind).

Temporary files are named ``.NAME.PID.RANDOM.tmp`` beside the target. A writer removes the stale
ones of its target before writing (those whose PID is no longer running on this host, and
temporaries of the older ``.NAME.RANDOM.tmp`` form that are more than an hour old);
:func:`clean_stale_tmp` does the same for a whole directory.

Written files have the mode ``open()`` would give them, ``0o666 & ~umask`` (e.g. ``0644`` under
umask ``022``), not the ``0600`` of :func:`tempfile.mkstemp`.

Only the standard library is imported here (no torch), so every package can use it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"
LEGACY_MAX_AGE_S = 3600.0
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _is_stale(tmp: Path, target_name: str | None) -> bool:
    m = _TMP_RE.match(tmp.name)
    if m is not None and (target_name is None or m["name"] == target_name):
        return not _pid_alive(int(m["pid"]))
    prefix = f".{target_name}." if target_name is not None else "."
    if tmp.name.startswith(prefix) and tmp.name.endswith(TMP_SUFFIX):
        try:
            return time.time() - tmp.lstat().st_mtime > LEGACY_MAX_AGE_S
        except OSError:
            return False
    return False


def clean_stale_tmp(directory: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove stale temporary files left by killed writers in ``directory``; return them.

    ``name`` restricts the cleaning to the temporaries of one target file. Missing or
    unreadable directories are ignored (nothing to clean).
    """
    d = Path(directory)
    pattern = f".{name}.*{TMP_SUFFIX}" if name is not None else f".*{TMP_SUFFIX}"
    removed = []
    try:
        candidates = list(d.glob(pattern))
    except OSError:
        return removed
    for tmp in candidates:
        if _is_stale(tmp, name):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where possible (Linux
    ``/proc/self/status``); elsewhere set and restored at once under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8) & 0o777
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)  # the most private value for the instant it is in effect
        os.umask(mask)
    return mask & 0o777


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, then rename it to ``path``.

    Parent folders are created. A symbolic link or a file that is not regular (a device, a FIFO)
    at ``path`` is refused, not replaced. On any error the temporary file is removed, ``path``
    keeps its old content, and the error propagates (an ``OSError`` names the file).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory, expected a file path", str(path))
    if path.is_symlink() or (path.exists() and not path.is_file()):  # os.replace would swap
        raise OSError(errno.EINVAL, "is a symbolic link or not a regular file; not replaced",
                      str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())  # as open() would, not 0600
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write_bytes(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def _check_finite(obj: Any, where: str = "") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"non-finite number {obj!r} at {where or 'top level'}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite(v, f"{where}[{i}]")


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int = 2,
               sort_keys: bool = True) -> Path:
    """Write ``obj`` as JSON atomically. Non-finite floats are refused (``ValueError`` naming the
    file and the key), because JSON has no NaN or infinity."""
    try:
        _check_finite(obj)
        text = json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot write as JSON: {exc}") from None
    return write_text(path, text)


def savefig(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """``fig.savefig`` into a temporary file, then rename (the format comes from the suffix)."""
    path = Path(path)
    fmt = kwargs.pop("format", None) or path.suffix.lstrip(".") or None
    return atomic_write_bytes(path, lambda f: fig.savefig(f, format=fmt, **kwargs))
