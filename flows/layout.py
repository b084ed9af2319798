"""The one run-folder layout: the file names of a training run and of a shipped model folder.

A *run directory* (``python -m flows.train --out RUN``) holds :data:`CONFIG_NAME`,
:data:`CHECKPOINT_NAME` (the latest per-epoch state), :data:`LAST_GOOD_NAME` (the last good state
after a failed update), :data:`SUMMARY_NAME` (one entry per invocation) and, once evaluated,
:data:`EVAL_NAME`. A *model folder* (``python -m flows.package``, ``models/<name>/``) holds
:data:`WEIGHTS_NAME` with its checksum :data:`SHA_NAME` (:mod:`flows.weights`), the run's
:data:`CONFIG_NAME` and :data:`SUMMARY_NAME`, :data:`REFERENCE_NAME` (reference scores,
:mod:`flows.package`) and :data:`EVAL_NAME`. Every module names these files through the
constants here (torch-free, so any driver can import them).
"""

from __future__ import annotations

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "checkpoint.pt"
LAST_GOOD_NAME = "last_good.pt"
EVAL_NAME = "eval.json"
SUMMARY_NAME = "train_summary.json"
WEIGHTS_NAME = "model.safetensors"
SHA_NAME = "model.sha256"
REFERENCE_NAME = "reference.json"
