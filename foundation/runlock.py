"""One writer per run: an exclusive ``flock`` on a lock file, released when its holder dies.

``flows.train`` holds ``OUT/.lock`` while it trains; an experiment holds ``.NAME.lock`` beside its
output file ``NAME``. A second writer of the same run or file is refused at start with one line
naming the holder (:class:`LockHeld`, a :class:`foundation.errors.CommandError`: exit status 1)::

    from foundation import runlock

    with runlock.hold(runlock.dir_lock_path(out), out):   # released on leaving the block
        ...
    runlock.acquire(runlock.file_lock_path(out_json), out_json)  # until release() or exit

The lock is the operating system's (``fcntl.flock`` on an open file kept for the holder's
lifetime), so it is released the moment the holder exits, also on ``kill -9``: no stale lock ever
blocks a run. The file holds the holder's PID and command line (what the refusal names); a
holder that ends normally removes it, one that was killed leaves it behind, unlocked, and the
next writer takes it over. :func:`holder` asks, without taking the lock, who holds it (e.g.
whether a run directory is being trained now). Locks are per process: acquiring a lock this
process already holds is allowed (counted; released when every acquisition was released).

Only the standard library is imported here (no torch).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from foundation.errors import CommandError

LOCK_NAME = ".lock"
"""The lock file of a run directory."""

_RETRIES = 50


class LockHeld(CommandError):
    """Another live process holds the lock (the message names it and its PID)."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


def dir_lock_path(directory: str | os.PathLike[str]) -> Path:
    """The lock file of a run directory: ``DIR/.lock``."""
    return Path(directory) / LOCK_NAME


def file_lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of an output file: ``.NAME.lock`` beside it."""
    t = Path(target)
    return t.parent / f".{t.name}.lock"


@dataclass
class _Held:
    fd: int
    count: int
    created_dir: Path | None
    pid: int  # the acquiring process (a forked child that exits must not remove the file)
    anchor: tuple[Path, int, int, int] | None = None  # (dir, atime, mtime before, mtime after)


_HELD: dict[str, _Held] = {}


def _key(path: Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def _read_holder(fd: int) -> tuple[int | None, str]:
    """(PID, command) written in an open lock file (the holder may still be writing them)."""
    for _ in range(20):
        try:
            text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        except OSError:
            return None, ""
        first, _, rest = text.partition("\n")
        if first.strip().isdigit():
            return int(first.strip()), rest.strip()
        time.sleep(0.01)
    return None, ""


def _describe(pid: int | None, command: str) -> str:
    who = f"pid {pid}" if pid is not None else "another process (pid unknown)"
    if command:
        short = command if len(command) <= 120 else command[:117] + "..."
        who += f": {short}"
    return who


_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def _flock_nb(fd: int) -> None:
    """``flock(LOCK_EX | LOCK_NB)``, tried a few times over 0.1 s (rides over the instant a
    :func:`holder` probe holds the lock shared)."""
    for attempt in range(5):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in _BUSY or attempt == 4:
                raise
            time.sleep(0.02)


def acquire(lock: str | os.PathLike[str], target: str | os.PathLike[str] | None = None) -> Path:
    """Take the exclusive lock ``lock`` (created, with its folder, when missing) or raise
    :class:`LockHeld` naming the holder. ``target`` (the run directory or output file) is what
    the message says is being written. Held until :func:`release` or the process ends."""
    lock = Path(lock)
    key = _key(lock)
    if key in _HELD and _HELD[key].pid == os.getpid():
        _HELD[key].count += 1
        return lock
    created = None
    parent = Path(key).parent
    if not parent.exists():
        created = [p for p in (parent, *parent.parents) if not p.exists()][-1]
    anchor = (created or Path(key)).parent  # the existing folder that the lock file changes
    try:
        before = None if os.path.lexists(key) else os.stat(anchor)
    except OSError:
        before = None
    for _ in range(_RETRIES):
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            _flock_nb(fd)
        except OSError as exc:
            if exc.errno not in _BUSY:
                os.close(fd)
                raise
            pid, command = _read_holder(fd)
            os.close(fd)
            what = target if target is not None else lock
            raise LockHeld(f"{what}: already being written by {_describe(pid, command)} "
                           f"(lock {lock}); wait for it to finish or stop it", pid) from None
        try:  # the file may have been removed by a holder that just released it: retry
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        info = f"{os.getpid()}\n{' '.join([sys.executable, *sys.argv])}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        held = _HELD[key] = _Held(fd, 1, created, os.getpid())
        if before is not None:
            with contextlib.suppress(OSError):
                held.anchor = (anchor, before.st_atime_ns, before.st_mtime_ns,
                               os.stat(anchor).st_mtime_ns)
        return lock
    raise CommandError(f"{lock}: could not take the lock (it keeps being replaced)")


def release(lock: str | os.PathLike[str]) -> None:
    """Give up one acquisition of ``lock``; the last one removes the file and unlocks it (and
    removes the folder :func:`acquire` created, when it is left empty)."""
    key = _key(Path(lock))
    held = _HELD.get(key)
    if held is None:
        return
    held.count -= 1
    if held.count > 0:
        return
    del _HELD[key]
    if held.pid != os.getpid():  # inherited through fork: the parent still holds it
        os.close(held.fd)
        return
    untouched = False  # nothing but the lock (and its folders) changed the anchor folder
    if held.anchor is not None:
        with contextlib.suppress(OSError):
            untouched = os.stat(held.anchor[0]).st_mtime_ns == held.anchor[3]
    with contextlib.suppress(OSError):
        os.unlink(key)  # while still locked: a waiting writer then sees another inode
    os.close(held.fd)
    gone = True
    if held.created_dir is not None:
        d, gone = Path(key).parent, False
        while True:
            try:
                d.rmdir()  # only when empty
            except OSError:
                break
            if d == held.created_dir or d.parent == d:
                gone = d == held.created_dir
                break
            d = d.parent
    if untouched and gone and held.anchor is not None:
        # the lock left no trace: the folder's times as they were (a failed command changes
        # nothing, not even a folder's mtime)
        with contextlib.suppress(OSError):
            os.utime(held.anchor[0], ns=(held.anchor[1], held.anchor[2]))


def held_locks() -> list[Path]:
    """The locks this process holds now."""
    return [Path(k) for k in _HELD]


def release_all(keep: list[Path] | None = None) -> None:
    """Release every lock of this process (but those in ``keep``) completely."""
    kept = {_key(p) for p in keep or []}
    for key in list(_HELD):
        if key not in kept:
            _HELD[key].count = 1
            release(key)


@contextlib.contextmanager
def hold(lock: str | os.PathLike[str], target: str | os.PathLike[str] | None = None
         ) -> Iterator[Path]:
    """:func:`acquire` for the duration of a ``with`` block."""
    path = acquire(lock, target)
    try:
        yield path
    finally:
        release(path)


F = TypeVar("F", bound=Callable[..., Any])


def releasing(main: F) -> F:
    """Decorate a command's ``main``: the locks it acquired are released when it returns or
    fails (in-process callers, e.g. tests, can run it again; a process exit releases anyway)."""
    @functools.wraps(main)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before = held_locks()
        try:
            return main(*args, **kwargs)
        finally:
            release_all(keep=before)

    return wrapped  # type: ignore[return-value]


def holder(lock: str | os.PathLike[str]) -> int | None:
    """PID of the live process holding ``lock`` (``-1`` when it cannot be told), or ``None`` when
    nobody holds it. Never creates the file; the lock is probed for an instant (shared)."""
    lock = Path(lock)
    mine = _HELD.get(_key(lock))
    if mine is not None and mine.pid == os.getpid():
        return os.getpid()
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _BUSY:
                pid, _ = _read_holder(fd)
                return pid if pid is not None else -1
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


atexit.register(release_all)
