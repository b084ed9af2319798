"""Every shipped model (``models/<name>/``) scores its reference test images as recorded.

``reference.json`` (written by ``flows.package``) holds ``log q_S(k|y)`` of the first test
images for every class. A change of the model code, the preprocessing, the data reading or the
scoring that moves a likelihood fails here. The tolerance, 0.05 nats per image, is about 2e-5
bits/dim on MNIST: far above float32 noise between thread counts, far below any real change (half
a grey level of shift moves these scores by hundreds of nats). Needs the real data (skipped
without it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from flows import data as fdata
from flows.layout import LINEAGE_NAME
from flows.package import REFERENCE_NAME, reference_scores
from flows.runs import EVAL_NAME, load_run
from flows.weights import SHA_NAME, WEIGHTS_NAME

MODELS = Path(__file__).resolve().parents[2] / "models"
FOLDERS = sorted(p for p in MODELS.glob("*") if (p / WEIGHTS_NAME).is_file())
ATOL_NATS = 0.05


def _data_dir() -> Path:
    try:
        return fdata.resolve_data_dir()
    except fdata.DataFileError as exc:
        pytest.skip(f"real data not available: {exc}")


@pytest.mark.realdata
@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_shipped_model_reproduces_its_reference_scores(folder: Path) -> None:
    ref = json.loads((folder / REFERENCE_NAME).read_text())
    sha = (folder / SHA_NAME).read_text().split()[0]
    assert ref["weights_sha256"] == sha
    evaluation = json.loads((folder / EVAL_NAME).read_text())
    assert evaluation["weights"]["sha256"] == sha and evaluation["metrics"]["n_test"] == 10000
    model, config = load_run(folder)
    log_p, labels = reference_scores(model, config, _data_dir(), n=ref["n"])
    assert labels.tolist() == ref["labels"]
    expected = np.asarray(ref["log_px_given_y"])
    assert np.abs(log_p - expected).max() < ATOL_NATS


def test_every_model_folder_is_complete() -> None:
    for folder in sorted(p for p in MODELS.glob("*") if p.is_dir()):
        names = {p.name for p in folder.iterdir()}
        assert {WEIGHTS_NAME, SHA_NAME, "config.json", "train_summary.json", EVAL_NAME,
                REFERENCE_NAME, LINEAGE_NAME} <= names, folder
    total = sum(p.stat().st_size for p in MODELS.rglob("*") if p.is_file())
    assert total < 60e6


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_lineage_ends_in_the_weights_the_model_started_from(folder: Path) -> None:
    """``lineage.json`` is the chain of warm starts behind the model: its last phase holds the
    weights (sha256) of the model's ``config.init_from``, each phase's the next one's, and only
    the oldest may be unverifiable (``missing``)."""
    phases = json.loads((folder / LINEAGE_NAME).read_text())["phases"]
    init = json.loads((folder / "config.json").read_text())["init_from"]
    if init is None:
        assert phases == []
        return
    assert phases[-1]["weights"]["sha256"] == init["weights"]["sha256"]
    for earlier, later in zip(phases, phases[1:], strict=False):
        assert "missing" not in later
        assert later["init_from"]["weights"] == earlier["weights"]
    if "missing" not in phases[0]:
        assert phases[0]["init_from"] is None  # trained from scratch
