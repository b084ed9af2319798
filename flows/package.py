"""Ship a trained run as a model folder: ``python -m flows.package --run RUN --out models/NAME``.

The folder (:mod:`flows.weights`) holds ``model.safetensors`` and its ``model.sha256``, the run's
``config.json`` (its machine-specific ``data_dir`` dropped, so the data directory is resolved as
for any run: ``--data-dir``, ``$ANNULUS_DATA_DIR``, ``../shared/data``), ``train_summary.json``
and ``lineage.json``, the training phases before the run's own (its warm starts, each verified by
sha256; :mod:`flows.lineage`). Only a finished run is packaged (every epoch of its config done).
``reference.json`` holds the scores ``log q_S(k|y)`` (:mod:`flows.scoring`, every class) of the
first ``REFERENCE_IMAGES`` test images, so that a test can catch any later change of the model
code, the preprocessing or the scoring that moves a likelihood
(``tests/flows/test_shipped_models.py``). Evaluate the folder afterwards (``python -m
flows.evaluate --run models/NAME``) so that its ``eval.json`` is made from, and records the
sha256 of, the shipped weights; an existing ``eval.json`` is kept only when it was made from
byte-identical weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from flows import data as fdata
from flows import scoring
from flows.layout import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    LINEAGE_NAME,
    REFERENCE_NAME,
    RESUME_STATE_NAME,
    SHA_NAME,
    SUMMARY_NAME,
    WEIGHTS_NAME,
    folder_kind,
)
from flows.lineage import lineage_record, phases_of
from flows.runs import (
    RunError,
    load_run_state,
    read_summary,
)
from flows.weights import save_weights, weights_bytes
from foundation import cli, errors
from foundation.atomic import write_json

PROG = "python -m flows.package"
REFERENCE_IMAGES = 200
REFERENCE_DRAWS = 2
REFERENCE_BATCH = 100


def reference_scores(model: torch.nn.Module, config: dict, data_dir: str | Path | None,
                     n: int = REFERENCE_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """``(log q_S(k|y) [n, K] in nats, labels [n])`` of the first ``n`` test images (seed 0)."""
    images, labels = fdata.load_split(config["dataset"], "test", data_dir,
                                      bg_seed=config.get("bg_seed", fdata.DEFAULT_BG_SEED))
    scores = scoring.score_images(model, images[:n], draws=REFERENCE_DRAWS, seed=0,
                                  batch_size=REFERENCE_BATCH)
    return scores.log_px_given_y, labels[:n].numpy()


def _evaluated_sha256(path: Path) -> str | None:
    """The weights' sha256 an ``eval.json`` was made from (``None`` if unreadable)."""
    try:
        weights = json.loads(path.read_text()).get("weights")
        return weights.get("sha256") if isinstance(weights, dict) else None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--run", type=cli.existing_dir_of("run directory"), required=True,
                   help="a finished run directory of flows.train")
    p.add_argument("--out", type=cli.output_dir, required=True, help="model folder to write")
    p.add_argument("--data-dir", type=cli.existing_dir_of("data directory"), default=None,
                   help="for reference.json (default: $ANNULUS_DATA_DIR or ../shared/data)")
    return p


def package(run: Path, out: Path, data_dir: Path | None = None) -> str:
    """Write the model folder ``out`` from the finished run ``run``; return the weights' sha256.

    Everything that can fail on the run or the data (loading, the reference scores) happens
    before ``out`` is touched, so a failed call leaves an existing model folder as it was.
    ``out`` may be a model folder (replaced), never a run directory (:func:`layout.folder_kind`).
    """
    if folder_kind(out) == "run":
        raise errors.UsageError(f"--out {out} is a run directory of flows.train; choose a new "
                                "folder or a model folder")
    if (kind := folder_kind(run)) != "run":
        also = "; it is a model folder already" if kind == "model" else ""
        raise errors.UsageError(f"--run {run} is not a run directory of flows.train (it holds no "
                                f"{CHECKPOINT_NAME}{also})")
    if (out / RESUME_STATE_NAME).exists():
        raise errors.UsageError(f"--out {out} is a resume folder of flows.resume_state; choose "
                                "a new folder or a model folder")
    model, config, state = load_run_state(run, keys=("epoch",))
    if state["epoch"] != config.get("epochs"):
        raise RunError(f"{run / CHECKPOINT_NAME}: training not finished (epoch {state['epoch']} "
                       f"of {config.get('epochs')}); resume it first")
    summary_obj = read_summary(run / SUMMARY_NAME)
    log_p, labels = reference_scores(model, config, data_dir)  # before out is touched
    data = weights_bytes(model.state_dict())
    digest = hashlib.sha256(data).hexdigest()
    earlier = lineage_record(phases_of(run))
    if (out / EVAL_NAME).exists() and _evaluated_sha256(out / EVAL_NAME) != digest:
        (out / EVAL_NAME).unlink()  # it described other weights
    save_weights(data, out)
    write_json(out / CONFIG_NAME, {**config, "data_dir": None})
    write_json(out / SUMMARY_NAME, summary_obj)
    write_json(out / LINEAGE_NAME, earlier)
    write_json(out / REFERENCE_NAME, {
        "images": "the first n test images", "n": len(labels), "draws": REFERENCE_DRAWS,
        "seed": 0, "batch_size": REFERENCE_BATCH, "labels": labels.tolist(),
        "weights_sha256": digest,
        "log_px_given_y": np.round(log_p, 4).tolist(),
    })
    return digest


@errors.guard(PROG)
def main(argv: list[str] | None = None) -> int:
    """Package; bad usage: one line, exit 2; an unusable or unfinished run: one line, exit 1."""
    args = build_parser().parse_args(argv)
    if Path(args.run).resolve() == Path(args.out).resolve():
        raise errors.UsageError("--out must differ from --run")
    digest = package(Path(args.run), Path(args.out), args.data_dir)
    size = (Path(args.out) / WEIGHTS_NAME).stat().st_size
    print(f"{args.out}: {WEIGHTS_NAME} ({size / 1e6:.2f} MB, sha256 {digest[:12]}..., "
          f"{SHA_NAME}), {CONFIG_NAME}, {SUMMARY_NAME}, {REFERENCE_NAME}, {LINEAGE_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
