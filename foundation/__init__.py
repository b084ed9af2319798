"""The project's torch-free foundation, shared by ``annulus``, ``flows`` and ``paper_figures``.

One job per module: :mod:`~foundation.atomic` (atomic file writes), :mod:`~foundation.errors`
(error types, exit statuses, the one-line error guard), :mod:`~foundation.cli` (argument parser
and argument types), :mod:`~foundation.intervals` (Wilson intervals, log-mean-exp),
:mod:`~foundation.runlock` (one writer per run or output file: an ``flock`` released when its
holder dies), :mod:`~foundation.provenance` (git commit and dirty flag, host, time, portable
paths) and
:mod:`~foundation.paper_numbers` (the numbers published in the paper).

It imports only the standard library and numpy: never torch, mpmath, sympy, nor the packages
built on it (``annulus``, ``flows``, ``paper_figures``).
"""
