"""The one run-folder layout: the file names of a training run and of a shipped model folder.

A *run directory* (``python -m flows.train --out RUN``) holds :data:`CONFIG_NAME`,
:data:`CHECKPOINT_NAME` (the latest per-epoch state), :data:`LAST_GOOD_NAME` (the last good state
after a failed update), :data:`SUMMARY_NAME` (one entry per invocation) and, once evaluated,
:data:`EVAL_NAME`. A *model folder* (``python -m flows.package``, ``models/<name>/``) holds
:data:`WEIGHTS_NAME` with its checksum :data:`SHA_NAME` (:mod:`flows.weights`), the run's
:data:`CONFIG_NAME` and :data:`SUMMARY_NAME`, :data:`REFERENCE_NAME` (reference scores,
:mod:`flows.package`), :data:`LINEAGE_NAME` (the training phases before the run's own,
:mod:`flows.lineage`) and :data:`EVAL_NAME`. Every module names these files through the
constants here (torch-free, so any driver can import them).
"""

from __future__ import annotations

from pathlib import Path

from foundation.runlock import LOCK_NAME

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"
LAST_GOOD_NAME = "last_good.pt"
EVAL_NAME = "eval.json"
SUMMARY_NAME = "train_summary.json"
WEIGHTS_NAME = "model.safetensors"
SHA_NAME = "model.sha256"
REFERENCE_NAME = "reference.json"
LINEAGE_NAME = "lineage.json"
RESUME_TENSORS_NAME = "resume.safetensors"  # a resume folder (flows.resume_state) holds these
RESUME_STATE_NAME = "resume.json"

# Every file name a run directory or a model folder holds: no tool writes a result over one.
RUN_FILE_NAMES = frozenset({CONFIG_NAME, CHECKPOINT_NAME, LAST_GOOD_NAME, EVAL_NAME,
                            SUMMARY_NAME, WEIGHTS_NAME, SHA_NAME, REFERENCE_NAME, LINEAGE_NAME})
RUN_MARKERS = (CHECKPOINT_NAME, LAST_GOOD_NAME, LOCK_NAME)  # flows.train made this directory


def folder_kind(directory: Path) -> str | None:
    """``"run"`` (a ``flows.train`` run directory: it holds a checkpoint or the run lock, which
    a run has from its start), ``"model"`` (a model folder: ``model.safetensors``) or ``None``
    (e.g. a results folder holding copies of a run's JSON files)."""
    if any((directory / n).exists() for n in RUN_MARKERS):
        return "run"
    return "model" if (directory / WEIGHTS_NAME).exists() else None


def holds_run_files(directory: Path) -> list[str]:
    """The names of :data:`RUN_FILE_NAMES` present in ``directory`` (sorted; ``[]`` if none)."""
    return sorted(n for n in RUN_FILE_NAMES if (directory / n).exists())


def is_run_file(path: Path, run_dir: Path | None = None) -> bool:
    """Whether ``path`` names one of the files (:data:`RUN_FILE_NAMES`) of ``run_dir`` or of any
    run directory or model folder (:func:`folder_kind`)."""
    if path.name not in RUN_FILE_NAMES:
        return False
    parent = path.absolute().parent
    return (run_dir is not None and parent.resolve() == run_dir.absolute().resolve()) \
        or folder_kind(parent) is not None
