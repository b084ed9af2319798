"""The project's error types and exit statuses, and the guard that maps one to the other.

Conventions of every entry point (``annulus.verify``, ``flows.*``, ``flows.experiments.*``,
``paper_figures``):

* bad usage (an invalid number, device or path, contradictory flags) is answered **before any
  work** with one stderr line ``PROG: error: ...`` naming the argument, and exit status
  :data:`USAGE_STATUS` (2), raised as :class:`UsageError`;
* an expected runtime failure (a corrupt or missing data file, an unreadable run directory, a
  full disk) gives one line ``PROG: error: ...`` naming the file, and exit status
  :data:`RUNTIME_STATUS` (1), raised as :class:`CommandError` (the base of
  ``flows.readers.DataFileError`` and ``flows.runs.RunError``) or ``OSError``;
* never a traceback for either.

:func:`guard` turns those exceptions into the line and the status. Both exits are
:class:`CLIExit`, a ``SystemExit`` whose ``str()`` is the printed line (so
``pytest.raises(SystemExit, match=...)`` sees it). Only the standard library is imported here.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

SUCCESS_STATUS = 0
"""Exit status of a command that did its work."""

RUNTIME_STATUS = 1
"""Exit status of an expected runtime failure (bad file, unreadable run, full disk)."""

USAGE_STATUS = 2
"""Exit status of bad command-line input (argparse's own status for usage errors)."""

INTERRUPTED_STATUS = 130
"""Interrupted (Ctrl-C, SIGINT): the shell's 128 + 2; ``PROG: interrupted`` on stderr."""


class UsageError(Exception):
    """Bad command-line input found after parsing (e.g. two flags that exclude each other)."""


class CommandError(RuntimeError):
    """An expected runtime failure (bad file, unreadable run); the message names the file."""


class CLIExit(SystemExit):
    """``SystemExit`` with an int status whose ``str()`` is the one line already printed."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(status)
        self.message = message

    def __str__(self) -> str:
        return self.message


def one_line(exc: BaseException | str) -> str:
    """The message of ``exc`` on one line (``OSError``: ``file: reason``)."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [n for n in (exc.filename, exc.filename2) if n is not None]
        text = f"{' -> '.join(str(n) for n in names)}: {exc.strerror}" if names else exc.strerror
    elif isinstance(exc, KeyError) and exc.args:
        text = f"missing key {exc.args[0]!r}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def reason(exc: BaseException) -> str:
    """:func:`one_line` without an ``OSError``'s file names, for a message that names the file
    already (``PATH: cannot read: No such file or directory``)."""
    if isinstance(exc, OSError) and exc.strerror:
        return " ".join(exc.strerror.split())
    return one_line(exc)


def exit_with(prog: str, message: BaseException | str, status: int) -> NoReturn:
    """Print ``PROG: error: MESSAGE`` (one line) to stderr and exit with ``status``."""
    line = f"{prog}: error: {one_line(message)}"
    print(line, file=sys.stderr, flush=True)
    raise CLIExit(line, status)


F = TypeVar("F", bound=Callable[..., int])


def guard(prog: str, *, usage: tuple[type[BaseException], ...] = (),
          runtime: tuple[type[BaseException], ...] = ()) -> Callable[[F], F]:
    """Decorate ``main(argv) -> int``: expected errors become one line and an exit status.

    :class:`UsageError` and ``usage`` types exit 2; :class:`CommandError`, ``OSError`` and
    ``runtime`` types exit 1; Ctrl-C (``KeyboardInterrupt``) exits 130 with ``PROG: interrupted``.
    ``SystemExit`` (argparse, ``--help``) passes through.
    """
    usage_types = (UsageError, *usage)
    runtime_types = (CommandError, OSError, *runtime)

    def decorate(main: F) -> F:
        @functools.wraps(main)
        def wrapped(*args: Any, **kwargs: Any) -> int:
            try:
                return main(*args, **kwargs)
            except usage_types as exc:
                exit_with(prog, exc, USAGE_STATUS)
            except runtime_types as exc:
                exit_with(prog, exc, RUNTIME_STATUS)
            except KeyboardInterrupt:  # Ctrl-C: one line, not the traceback of wherever it hit
                print(f"{prog}: interrupted", file=sys.stderr, flush=True)
                raise CLIExit(f"{prog}: interrupted", INTERRUPTED_STATUS) from None

        return wrapped  # type: ignore[return-value]

    return decorate
