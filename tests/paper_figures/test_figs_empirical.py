"""Empirical figures and tables from small fixture results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_figures import tables
from paper_figures.registry import BY_NAME, Context, run_item

FIGS = {
    "fig1": ("fig1_interpolation_examples", "interpolation coefficient $\\alpha$"),
    "fig3": ("fig3_likelihood_gap", "conditional log-likelihood (nats)"),
    "fig4": ("fig4_interpolation", "mean class probability"),
    "fig5": ("fig5_bg_mnist_samples", "% of samples classified as y"),
    "fig6": ("fig6_interpolation_bg_mnist", "interpolation coefficient $\\alpha$"),
    "attack_curves": ("attack_curves", "L2 budget (8-bit image, [0, 1] scale)"),
}


@pytest.mark.parametrize("name", sorted(FIGS))
def test_figs_empirical_figure(name: str, results_dir: Path, tmp_path: Path,
                               saved_labels: dict) -> None:
    out = run_item(BY_NAME[name], Context(results_dir, tmp_path / "out"))
    assert out.status == "made", out.messages
    assert {p.suffix for p in out.outputs} == {".png", ".pdf"}
    assert all(p.stat().st_size > 1000 for p in out.outputs)
    stem, label = FIGS[name]
    assert label in saved_labels[stem]


@pytest.mark.parametrize("name", ["table1", "table2", "table3"])
def test_figs_tables_render(name: str, results_dir: Path, tmp_path: Path) -> None:
    out = run_item(BY_NAME[name], Context(results_dir, tmp_path / "out"))
    assert out.status == "made", out.messages
    md = next(p for p in out.outputs if p.suffix == ".md").read_text()
    tex = next(p for p in out.outputs if p.suffix == ".tex").read_text()
    assert "(paper)" in md or ": paper" in md
    assert "\\toprule" in tex and "\\bottomrule" in tex
    assert "%" not in tex.replace("\\%", "")  # every percent sign escaped


def test_figs_table_values_beside_paper(results_dir: Path) -> None:
    from paper_figures.empirical import load

    baselines = {p.stem: load(p) for p in (results_dir / "baselines").glob("*.json")}
    t1 = tables.table1([load(p) for p in sorted((results_dir / "table1").glob("*.json"))],
                       baselines)
    md = t1.markdown()
    assert ("| MNIST | split | mnist-split-cpu | 90.0 [83.0, 94.0] | 99.3 | 4.000 +- 0.010 | 1.00 |"
            in md)
    assert "| MNIST | histogram baseline | - | - | - | 1.300 +- 0.010 | - | - |" in md
    assert "CIFAR-10" in md and "56.8" in md
    t2 = tables.table2([load(p) for p in sorted((results_dir / "attacks").glob("*.json"))])
    row = next(r for r in t2.rows if r[:2] == ["CIFAR-10", "Boundary + detection"])
    assert row[-1] == "100% (100%)"  # the paper's split CIFAR-10 cell
    t3 = tables.table3(load(results_dir / "bg_mnist" / "table3.json")["rows"], "x")
    assert [r[0] for r in t3.rows] == ["MNIST", "BG-MNIST-5", "BG-MNIST-1", "BG-MNIST-0",
                                       "CIFAR-10"]
    assert t3.rows[3][4:6] == ["4.50", "4.58"]


def test_table1_names_a_narrower_prior(results_dir: Path) -> None:
    """A model trained with --gmm-scale shared / --gmm-class-latent top, or with
    --split-class-latent top, says so in its scale cell; the paper's priors (recorded or
    absent) add nothing."""
    from paper_figures.empirical import load

    results = [load(p) for p in sorted((results_dir / "table1").glob("*.json"))]
    for r in results:
        r["config"]["model"] = {k: v for k, v in r["config"].get("model", {}).items()
                                if k not in ("gmm_scale", "gmm_class_latent",
                                             "split_class_latent")}
    plain = tables.table1(results).markdown()
    assert not [ln for ln in plain.splitlines() if ln.startswith("|") and "prior:" in ln]
    for r in results:
        if r["config"]["objective"] == "reweighted":
            r["config"]["model"].update(gmm_scale="shared", gmm_class_latent="top")
    md = tables.table1(results).markdown()
    rows = [ln for ln in md.splitlines() if "| reweighted |" in ln]
    assert rows and all(ln.endswith(", prior: shared scale, top level |") for ln in rows)
    assert not [ln for ln in md.splitlines() if "| split |" in ln and "prior:" in ln]
    for r in results:
        if r["config"]["objective"] == "split":
            r["config"]["model"].update(split_class_latent="top")
    md = tables.table1(results).markdown()
    rows = [ln for ln in md.splitlines() if "| split |" in ln]
    assert rows and all(ln.endswith(", prior: top level |") for ln in rows)


def test_tables_state_each_models_width_and_flow_steps(results_dir: Path) -> None:
    """Table 1's scale cell and Table 3's per-row column give the coupling width and the flow
    steps of each level (the first level's own count when set); a row without its model's
    evaluation, or a config without a model, says nothing it cannot know."""
    from paper_figures.empirical import load

    model = {"hidden": 64, "levels": 4, "steps_per_level": 12, "first_level_steps": 1}
    bg = load(results_dir / "bg_mnist" / "table3.json")
    rows = bg["rows"]
    rows[1]["run_eval"] = {"config": {"preset": "cpu-mnist", "model": model,
                                      "init_from": {"path": "~/runs/bg-mnist-5-rw20-cpu"}},
                           "epochs_trained": 6, "train_wall_time_s": 2700.0}
    preset_shape = dict(model, steps_per_level=4, first_level_steps=-1)
    rows[2]["run_eval"] = {"config": {"preset": "cpu-mnist", "model": preset_shape},
                           "epochs_trained": 10}
    t3 = tables.table3(rows, "x")
    assert t3.rows[1][-1] == ("from bg-mnist-5-rw20-cpu + cpu-mnist, 6 ep x all, 45 min, "
                              "64 ch x 1/12/12/12 steps")
    assert t3.rows[2][-1] == "cpu-mnist, 10 ep x all, 64 ch x 4/4/4/4 steps"
    assert t3.rows[0][-1] == "-"  # no run_eval recorded
    assert t3.notes[0] == f"Ours from x; {tables.TABLE3_SCALE}."  # not the last row's cell
    results = [load(p) for p in sorted((results_dir / "table1").glob("*.json"))]
    results[0]["config"]["model"] = dict(model, hidden=96, levels=3, first_level_steps=-1)
    cells = [r[-1] for r in tables.table1(results).rows[:len(results)]]
    assert sum("96 ch x 12/12/12 steps" in c for c in cells) == 1
    assert not any(" ch x " in c for c in cells if "96 ch" not in c)  # config without a model


def test_figs_partial_inputs(results_dir: Path, tmp_path: Path, capsys) -> None:
    (results_dir / "likelihood_gap" / "cifar10-reweighted-cpu.json").unlink()
    out = run_item(BY_NAME["fig3"], Context(results_dir, tmp_path / "out"))
    assert out.status == "partial" and out.outputs  # made from MNIST alone
    err = capsys.readouterr().err
    cmd = "python -m flows.experiments.likelihood_gap --run models/cifar10-reweighted-cpu"
    assert cmd in err


def test_figs_bg_without_samples(results_dir: Path, tmp_path: Path) -> None:

    p = results_dir / "bg_mnist" / "table3.json"
    data = json.loads(p.read_text())
    data["samples"] = None
    p.write_text(json.dumps(data))
    out = run_item(BY_NAME["fig5"], Context(results_dir, tmp_path / "out"))
    assert out.status == "skipped" and "samples" in out.messages[-1]


def test_learning_curves(results_dir: Path, tmp_path: Path) -> None:
    out = run_item(BY_NAME["learning_curves"], Context(results_dir, tmp_path / "out"))
    assert out.status == "made", out.messages
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 1000


def test_a_fine_tune_is_drawn_after_the_run_it_started_from() -> None:
    from paper_figures.learning import warm_start_of

    base = {"run": "mnist-base-cpu", "config": {"init_from": None}}
    tuned = {"run": "x", "config": {"init_from": {"path": "models/mnist-base-cpu"}}}
    by_run = {"mnist-base-cpu": base}
    assert warm_start_of(tuned, by_run) is base
    assert warm_start_of(base, by_run) is None
    assert warm_start_of({"run": "y", "config": {"init_from": {"path": "elsewhere/z"}}},
                         by_run) is None


def test_a_recorded_lineage_gives_every_earlier_phase_in_order() -> None:
    from paper_figures.learning import earlier_phases

    def hist(n: int, bpd: float) -> list[dict]:
        return [{"epoch": e, "bpd": bpd - e, "acc": 0.5, "seconds": 1.0} for e in range(1, n + 1)]

    base = {"run": "b-base", "config": {"init_from": None}}
    tuned = {"run": "b-rw", "config": {"init_from": {"path": "runs/b-rw20"}},
             "lineage": [{"run": "b-base", "objective": "base", "lr": 1e-3, "history": hist(4, 9)},
                         {"run": "b-rw20", "objective": "reweighted", "lr": 1e-3,
                          "history": hist(2, 5)}]}
    phases, unknown = earlier_phases(tuned, {"b-base": base})
    assert [label for label, _ in phases] == ["b-base (base, lr 0.001)",
                                              "b-rw20 (reweighted, lr 0.001)"]
    assert list(phases[1][1]["bpd"]) == [4.0, 3.0] and unknown == []
    # an unverifiable phase ends what is known; a malformed history is not drawn
    gone = dict(tuned, lineage=[{"run": "b-base", "missing": "checkpoint.pt not found"},
                                {"run": "b-rw20", "objective": "reweighted", "lr": 1e-3,
                                 "history": [{"epoch": 1, "bpd": "x"}]}])
    assert earlier_phases(gone, {}) == ([], ["b-base", "b-rw20"])
    # an empty lineage: trained from scratch, even when a run of the init name is present
    assert earlier_phases(dict(tuned, lineage=[]), {"b-rw20": base}) == ([], [])


def test_table2_merges_the_cw_and_boundary_files_of_one_model() -> None:
    cfg = {"provenance": {"run_config": [{"objective": "reweighted", "dataset": "mnist"}]}}
    cw = {"dataset": "mnist", "n_images": 100, "table2": {"quantile": {"cw": "cell-cw"}}} | cfg
    bd = {"dataset": "mnist", "n_images": 100,
          "table2": {"quantile": {"boundary": "cell-b"}, "paper": {"boundary": "cell-bp"}}} | cfg
    t2 = tables.table2([cw, bd])
    cells = {r[1]: r[2:4] for r in t2.rows if r[0] == "MNIST"}
    assert "cell-cw" in cells["CW-L2"] and cells["Boundary"] == ["cell-b", "cell-bp"]
    assert any("MNIST reweighted: 100 attacked images" in n for n in t2.notes)
