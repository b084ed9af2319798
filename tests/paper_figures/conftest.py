"""Small fixture results (the schemas of flows.evaluate and flows.experiments.*) and a hook that
records the axes labels of every figure saved through :func:`paper_figures.style.save`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from paper_figures import style

RUN_CONFIG = {"dataset": "mnist", "objective": "reweighted", "preset": "cpu-mnist",
              "epochs": 2, "train_subset": 25000}


def _prov(dataset: str, objective: str = "reweighted") -> dict[str, Any]:
    return {"run_dir": f"~/annulus-runs/{dataset}-{objective}-cpu",
            "run_config": RUN_CONFIG | {"dataset": dataset, "objective": objective}}


def _thresholds() -> dict[str, Any]:
    return {"paper": {"T_bpd": 1.4, "accepted_share_test": 0.0},
            "quantile": {"T_bpd": 4.9, "accepted_share_test": 1.0}}


def likelihood_gap(dataset: str) -> dict[str, Any]:
    edges = np.linspace(2000, 3000, 11).tolist()
    return {"experiment": "likelihood_gap", "dataset": dataset, "n_test": 100, "accuracy": 0.9,
            "histogram": {"bin_edges": edges, "counts_true": [1, 2, 5, 9, 20, 25, 20, 9, 5, 4],
                          "counts_wrong": [1, 3, 5, 8, 21, 24, 20, 10, 4, 4]},
            "gap_histogram": {"bin_edges": np.linspace(-5, 10, 6).tolist(),
                              "counts": [5, 20, 40, 30, 5]},
            "confidence_margin": [{"delta": 1e-2, "margin_nats": 6.9},
                                  {"delta": 1e-5, "margin_nats": 13.8}],
            "gap": {"p50": 3.1}, "spread": {"std_log_px_given_true": 232.0},
            "thresholds": _thresholds(), "provenance": _prov(dataset)}


def interpolation(dataset: str) -> dict[str, Any]:
    a = np.linspace(0, 1, 11)
    bump = 4.3 + 0.5 * np.sin(np.pi * a)
    ex = {"i0": 0, "i1": 1, "y0": 7, "y1": 3, "bpd": bump.tolist(),
          "p_y0": (1 - a).tolist(), "p_y1": a.tolist()}
    return {"experiment": "interpolation", "dataset": dataset, "n_pairs": 5,
            "alphas": a.tolist(), "bpd_mean": bump.tolist(), "bpd_p05": (bump - 0.2).tolist(),
            "bpd_p95": (bump + 0.2).tolist(), "p_y0_mean": (1 - a).tolist(),
            "p_y1_mean": a.tolist(), "finding": "drops", "thresholds": _thresholds(),
            "share_paths_all_accepted": {"paper": 0.0, "quantile": 0.9},
            "examples": [ex, ex | {"y0": 5, "y1": 2}], "provenance": _prov(dataset)}


#: The fixture's 10 attacked images per setting: (undetected, fooled) within eps under the
#: quantile threshold (T 4.9); under the paper's (T 1.4) no adversarial is accepted.
ATTACK_COUNTS = {"cw": (0, 10), "boundary": (4, 8), "cw-det": (1, 10), "boundary-det": (0, 0)}
#: ``foundation.percent.share_text`` of k of 10 (95% Wilson interval).
SHARE_OF_10 = {0: "0% [0, 28]", 1: "10% [2, 40]", 4: "40% [17, 69]", 8: "80% [49, 94]",
               10: "100% [72, 100]"}


def attacks(dataset: str, objective: str, names: tuple[str, ...]) -> dict[str, Any]:
    """One attacks JSON with the Table-2 cells of ``names`` (CW and boundary come in two)."""
    settings: dict[str, Any] = {}
    t2: dict[str, dict[str, str]] = {"paper": {}, "quantile": {}}
    for name in names:  # 10 images whose per-image outcomes give the cells
        undetected, fooled = ATTACK_COUNTS[name]
        per_image = {"index": list(range(10)), "label": [1] * 10, "found": [True] * 10,
                     "pred_adv": [0] * fooled + [1] * (10 - fooled),
                     "l2": [0.5 + 0.1 * i for i in range(10)],
                     "bpd_adv": [4.0] * undetected + [6.0] * (10 - undetected)}
        settings[name] = {"per_image": per_image, "table2": {
            "quantile": {"undetected_within_eps": {"k": undetected}},
            "paper": {"undetected_within_eps": {"k": 0}}}}
        for th, u in (("quantile", undetected), ("paper", 0)):
            t2[th][name] = f"{SHARE_OF_10[u]} ({SHARE_OF_10[fooled]}) n=10"
    return {"experiment": "attacks", "dataset": dataset, "n_images": 10, "eps_l2": 1.5,
            "T_used_bpd": 4.9, "threshold_used": "quantile", "thresholds": _thresholds(),
            "settings": settings, "table2": t2, "provenance": _prov(dataset, objective)}


def evaluate(dataset: str, objective: str) -> dict[str, Any]:
    history = [{"epoch": e, "bpd": 5.0 - 0.2 * e, "acc": 0.5 + 0.05 * e, "seconds": 60.0}
               for e in range(1, 6)]
    return {"run": f"{dataset}-{objective}-cpu",
            "metrics": {"accuracy": 0.9, "bits_per_dim": 4.0, "n_test": 100,
                        "bits_per_dim_se": 0.01, "accuracy_wilson95": [0.83, 0.94]},
            "config": RUN_CONFIG | {"dataset": dataset, "objective": objective, "epochs": 5},
            "train_history": history, "epochs_trained": 5, "train_wall_time_s": 300.0}


def baseline(dataset: str) -> dict[str, Any]:
    return {"dataset": dataset, "n_test": 100,
            "histogram": {"bits_per_dim": 1.3, "bits_per_dim_se": 0.01},
            "gaussian": {"bits_per_dim": 4.1, "bits_per_dim_se": 0.02}}


def bg_mnist() -> dict[str, Any]:
    rows = [{"dataset": d, "accuracy": 0.95, "bits_per_dim": 4.5, "n_test": 100}
            for d in ("mnist", "bg-mnist-5", "bg-mnist-1", "bg-mnist-0", "cifar10")]
    return {"experiment": "bg_mnist", "rows": rows,
            "samples": {"dataset": "bg-mnist-0", "per_class": 3, "temperature": 0.7,
                        "bits_per_dim_of_samples": np.full((10, 3), 4.4).tolist(),
                        "pred_of_samples": np.repeat(np.arange(10)[:, None], 3, 1).tolist(),
                        "png": None},
            "interpolation": interpolation("bg-mnist-0"),
            "provenance": {"run_config": [RUN_CONFIG | {"dataset": "bg-mnist-0"}]}}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    """A results directory with every empirical input of the registry (tiny fixtures)."""
    r = tmp_path / "results"
    for ds in ("mnist", "cifar10"):
        write(r / "likelihood_gap" / f"{ds}-reweighted-cpu.json", likelihood_gap(ds))
        write(r / "interpolation" / f"{ds}-reweighted-cpu.json", interpolation(ds))
        for obj in ("base", "reweighted", "split"):
            write(r / "table1" / f"{ds}-{obj}-cpu.json", evaluate(ds, obj))
        for obj in ("reweighted", "split"):
            write(r / "attacks" / f"{ds}-{obj}-cpu.json", attacks(ds, obj, ("cw", "cw-det")))
            write(r / "attacks" / f"{ds}-{obj}-cpu.boundary.json",
                  attacks(ds, obj, ("boundary", "boundary-det")))
    for x in (5, 1, 0):
        write(r / "table3" / f"bg-mnist-{x}-reweighted-cpu.json",
              evaluate(f"bg-mnist-{x}", "reweighted"))
    write(r / "bg_mnist" / "table3.json", bg_mnist())
    for ds in ("mnist", "cifar10", "bg-mnist-5", "bg-mnist-1", "bg-mnist-0"):
        write(r / "baselines" / f"{ds}.json", baseline(ds))
    return r


@pytest.fixture
def saved_labels(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """name -> all x/y labels and titles of the figure saved under that name."""
    seen: dict[str, list[str]] = {}
    original = style.save

    def spy(fig: Any, out_dir: Path, name: str) -> list[Path]:
        seen[name] = [t for ax in fig.axes
                      for t in (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) if t]
        return original(fig, out_dir, name)

    monkeypatch.setattr(style, "save", spy)
    return seen
