"""The committed theory caches (``results/theory/*.json``) against a fresh computation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from annulus.certificate import build_certificate
from paper_figures import theory

THEORY = Path(__file__).resolve().parents[2] / "results" / "theory"
COMPUTE = {"kl_vs_d.json": theory.compute_kl_vs_d, "min_dimension.json":
           theory.compute_min_dimension, "mc_attack.json": theory.compute_mc_attack,
           "tv_vs_d.json": theory.compute_tv}


def _load(name: str) -> dict:
    return json.loads((THEORY / name).read_text())


def _close(a: dict, b: dict, where: str) -> None:
    assert a.keys() == b.keys(), where
    for k, v in a.items():
        if isinstance(v, float):
            assert math.isclose(v, b[k], rel_tol=1e-9, abs_tol=1e-300), f"{where}: {k}"
        else:
            assert v == b[k], f"{where}: {k}"


def _few(rows: list) -> list:
    return [rows[0], rows[len(rows) // 2], rows[-1]]


def test_every_committed_cache_is_known_and_fingerprinted() -> None:
    assert sorted(p.name for p in THEORY.glob("*.json")) == sorted(COMPUTE)
    for name, compute in COMPUTE.items():
        fp = _load(name).get("fingerprint")
        assert isinstance(fp, dict) and len(fp.get("sha256", "")) == 64, name
        current = theory.fingerprint(compute)
        assert fp["code"] == current["code"], name
        assert fp["sha256"] == current["sha256"], (
            f"{name} was made by other code: python -m paper_figures refreshes it (and rewrites "
            f"the tracked file); refresh it and commit it if its values did not move")


def test_kl_vs_d_cache_matches_a_fresh_computation() -> None:
    data = _load("kl_vs_d.json")
    rows = data["rows"]
    assert data["params"] == theory._params_json(theory.FIG2_PARAMS)
    assert data["d_star"] in [r["d"] for r in rows]
    for r in _few(rows) + [next(r for r in rows if r["d"] == data["d_star"])]:
        _close(r, theory.kl_row(theory.FIG2_PARAMS, r["d"]), f"kl_vs_d.json d={r['d']}")


def test_tv_cache_matches_a_fresh_computation() -> None:
    data = _load("tv_vs_d.json")
    for s in data["series"]:
        p = theory._params(data["eps"], data["delta"], s["Delta"])
        for r in _few(s["rows"])[:2]:
            _close(r, theory.tv_row(p, r["d"]), f"tv_vs_d.json Delta={s['Delta']} d={r['d']}")


def test_min_dimension_cache_matches_a_fresh_computation() -> None:
    for s in _load("min_dimension.json")["series"]:
        for r in _few(s["rows"])[1:]:
            D = next(g for g in (f"{r['Delta']:.3g}",) if float(g) == r["Delta"])
            _close(r, theory.min_dimension_row(s["eps"], s["delta"], D),
                   f"min_dimension.json eps={s['eps']} Delta={D}")


@pytest.mark.parametrize("index", [0, 5])
def test_mc_attack_cache_matches_a_fresh_computation(index: int) -> None:
    data = _load("mc_attack.json")
    cert = build_certificate(theory.FIG2_PARAMS)
    assert data["d_star"] == cert.dimension
    assert data["params"] == theory._params_json(theory.FIG2_PARAMS)
    r = data["rows"][index]
    _close(r, theory.mc_attack_row(theory.FIG2_PARAMS, cert, r["d"], r["seed"], data["n"]),
           f"mc_attack.json d={r['d']}")
