"""Figure 2 and the theory figures on small parameter sets; the JSON cache."""

from __future__ import annotations

from pathlib import Path

from paper_figures import theory


def _ok(paths: list[Path]) -> None:
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000


def test_figs_figure2(tmp_path: Path, saved_labels: dict) -> None:
    data = theory.figure2_data()
    assert data["dimension"] == 201 and data["certified"]
    ball = next(r for r in data["pieces"] if r["hi"] == 1.0)
    assert ball["p_post0"] > 0.5 > ball["q_post0"]  # Bayes says 0, the model says 1
    _ok(theory.plot_figure2(data, tmp_path))
    labels = " ".join(saved_labels["fig2_counterexample"])
    assert "radius" in labels and "log_{10}" in labels and "density" in labels


def test_figs_min_dimension(tmp_path: Path, saved_labels: dict) -> None:
    data = theory.compute_min_dimension(n_Delta=3)
    for s in data["series"]:
        for r in s["rows"]:
            assert r["search"] == r["closed_form"]
    _ok(theory.plot_min_dimension(data, tmp_path))
    labels = saved_labels["theory_min_dimension"]
    assert "minimal dimension $d^*$" in labels and any("Delta" in t for t in labels)


def test_figs_kl_vs_d(tmp_path: Path, saved_labels: dict) -> None:
    data = theory.compute_kl_vs_d(n=6)
    for r in data["rows"]:  # the exact KLs never exceed the lemma bounds
        assert r["kl_q_p_joint"] <= r["lemma2_joint"] * (1 + 1e-12)
        assert r["kl_p_q_joint"] <= r["lemma3_joint"] * (1 + 1e-12)
    _ok(theory.plot_kl_vs_d(data, tmp_path))
    labels = saved_labels["theory_kl_vs_d"]
    assert "KL divergence (nats)" in labels and "dimension $d$" in labels


def test_figs_mc_attack(tmp_path: Path, saved_labels: dict) -> None:
    data = theory.compute_mc_attack(n=400, dims=(150, 201))
    lo = data["rows"][0]
    hi = data["rows"][1]
    assert lo["exact_probability"] == 0 and lo["success_rate"] == 0
    assert hi["ci99"][0] <= hi["exact_probability"] <= hi["ci99"][1]
    _ok(theory.plot_mc_attack(data, tmp_path))
    assert any("P(attack succeeds)" in t for t in saved_labels["theory_mc_attack"])


def test_figs_tv(tmp_path: Path, saved_labels: dict) -> None:
    data = theory.compute_tv(n=3)
    for s in data["series"]:
        for r in s["rows"]:
            assert 10 ** r["log10_tv"] >= r["lower_bound"]
    _ok(theory.plot_tv(data, tmp_path))
    assert any("total variation" in t for t in saved_labels["theory_total_variation"])


def test_figs_theory_cache(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"x": len(calls)}

    path = tmp_path / "theory" / "c.json"
    assert theory.cached(path, compute)["x"] == 1
    assert theory.cached(path, compute)["x"] == 1  # read back, not recomputed
    assert theory.cached(path, compute, recompute=True)["x"] == 2
