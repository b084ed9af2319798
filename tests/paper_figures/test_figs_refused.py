"""Stored results that are well-formed JSON but wrong (negative bits/dim, probabilities or
classes out of range, emptied lists, edited Table-2 cells) are refused for their item with one
line naming the file and the value; never drawn into a figure or table with exit 0."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paper_figures import theory
from paper_figures.__main__ import main
from paper_figures.empirical import ResultError, require

DOC = {"a": {"b": [{"c": 1}, {"c": -1}]}, "s": {"x": {"l": [0, None]}, "y": {"l": [-1]}},
       "n": None, "g": [[1, 0], [0, 1]], "e": [], "h": [[1, 2], [3]]}


@pytest.mark.parametrize("spec, why", [
    ({"a.b[].c": "pos"}, "'a.b[1].c' is int '-1', expected a number > 0"),
    ({"s.*.l[]": "nonneg?"}, "'s.y.l[0]' is int '-1', expected a number >= 0 or null"),
    ({"a.b[].d": "pos"}, "missing 'a.b[0].d'"),
    ({"a.x.c": "pos"}, "missing 'a.x.c'"),
    ({"n": "pos"}, "'n' is NoneType 'None', expected a number > 0"),
    ({"a.b.*": "num"}, "'a.b' is not an object"),
    ({"s[]": "num"}, "'s' is not a list"),
    ({"e": "items"}, "'e' is list '[]', expected a non-empty list"),
    ({"g": "class_grid", "h": "grid"}, "'h' is list '[[1, 2], [3]]', expected a table"),
    ({"g[][]": "pos"}, "'g[0][1]' is int '0', expected a number > 0"),
    ({"g[]": "interval"}, "'g[0]' is list '[1, 0]', expected an interval [lo, hi] of shares"),
])
def test_require_paths_and_kinds(spec: dict[str, str], why: str) -> None:
    with pytest.raises(ResultError) as exc:
        require(DOC, "F.json", spec)
    assert str(exc.value).startswith("F.json: ") and why in str(exc.value), str(exc.value)


def test_require_accepts_what_matches() -> None:
    require(DOC, "F.json", {"a.b[].c": "num", "s.*.l[]": "num?", "a.b[].d?": "pos", "n": "pos?",
                            "q?.r": "pos", "e[].x": "pos", "g": "class_grid"})
    with pytest.raises(ResultError, match="expected a table .* class indices"):
        require({"g": [[0, 2], [1, 1]]}, "F.json", {"g": "class_grid"})  # 2 rows: class 2 of 2


# -- the items, on damaged copies of the stored results ------------------------------------
RESULTS = Path(__file__).resolve().parents[2] / "results"


def _stored(tmp_path: Path, *rels: str) -> Path:
    """A results folder in ``tmp_path`` holding copies of the stored ``rels``."""
    r = tmp_path / "results"
    for rel in rels:
        (r / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RESULTS / rel, r / rel)
    return r


def _damage(results: Path, rel: str, edit: Callable[[dict], Any]) -> None:
    data = json.loads((results / rel).read_text())
    edit(data)
    (results / rel).write_text(json.dumps(data))


def _refused(results: Path, tmp_path: Path, item: str, capsys: pytest.CaptureFixture,
             *why: str) -> str:
    """Run ``--only item``: exit 1, the item failed, one line on stderr naming why."""
    rc = main(["--results", str(results), "--out", str(tmp_path / "out"), "--only", item])
    out, err = capsys.readouterr()
    assert rc == 1, out + err
    assert f"[failed ] {item}" in out and "0/1 made completely" in out, out
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith(f"{item}: could not make"))
    for w in why:
        assert w in line, line
    return line


def test_table3_with_no_rows_is_refused(tmp_path: Path, capsys) -> None:
    r = _stored(tmp_path, "bg_mnist/table3.json")
    _damage(r, "bg_mnist/table3.json", lambda d: d.update(rows=[]))
    _refused(r, tmp_path, "table3", capsys, "table3.json: 'rows' is list '[]'",
             "expected a non-empty list")
    assert not (tmp_path / "out" / "table3.md").exists()


def _scaled(obj: Any, factor: float) -> Any:
    """``obj`` with every number multiplied by ``factor``."""
    if isinstance(obj, dict):
        return {k: _scaled(v, factor) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scaled(v, factor) for v in obj]
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return obj * factor
    return obj


INTERP = ("interpolation/mnist-reweighted-cpu.json", "interpolation/cifar10-reweighted-cpu.json")


def _set_example(key: str, value: Any) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        d["examples"][1][key] = value
    return edit


@pytest.mark.parametrize("item, edit, why", [
    ("fig1", lambda d: d.update(_scaled(d, -1e6)), "'examples[0].y0' is float '-8000000.0'"),
    ("fig1", _set_example("bpd", [1.2, -0.3]), "'examples[1].bpd[1]' is float '-0.3', "
     "expected a number > 0"),
    ("fig1", _set_example("p_y1", [0.5, 1.5]), "'examples[1].p_y1' is list"),
    ("fig1", _set_example("y0", 2.5), "'examples[1].y0' is float '2.5', expected an integer"),
    ("fig4", lambda d: d.update(_scaled(d, -1e6)), "'"),  # the same file: fig4 refused it
    ("fig4", lambda d: d["bpd_p05"].__setitem__(3, -1.0), "'bpd_p05[3]' is float '-1.0'"),
])
def test_interpolation_figures_refuse_impossible_values(item: str, edit: Callable[[dict], None],
                                                        why: str, tmp_path: Path,
                                                        capsys) -> None:
    r = _stored(tmp_path, *INTERP)
    for rel in INTERP:
        _damage(r, rel, edit)
    _refused(r, tmp_path, item, capsys, "mnist-reweighted-cpu.json: " + why)
    assert not list((tmp_path / "out").glob("fig*"))


def _samples(key: str, row: int, col: int, value: Any) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        d["samples"][key][row][col] = value
    return edit


@pytest.mark.parametrize("edit, why", [
    (_samples("bits_per_dim_of_samples", 2, 3, -5), "'samples.bits_per_dim_of_samples[2][3]' "
     "is int '-5', expected a number > 0"),
    (_samples("pred_of_samples", 4, 0, 99), "'samples.pred_of_samples' is list"),
    (_samples("pred_of_samples", 4, 0, -1), "'samples.pred_of_samples' is list"),
    (lambda d: d["samples"]["pred_of_samples"].pop(), "samples.bits_per_dim_of_samples is "
     "10 x 8 (classes x samples), samples.pred_of_samples 9 x 8"),
    (lambda d: d["samples"].update(pred_of_samples=[r[:-1] for r in
                                                    d["samples"]["pred_of_samples"]]),
     "samples.bits_per_dim_of_samples is 10 x 8 (classes x samples), "
     "samples.pred_of_samples 10 x 7"),
])
def test_fig5_refuses_impossible_samples(edit: Callable[[dict], None], why: str,
                                         tmp_path: Path, capsys) -> None:
    r = _stored(tmp_path, "bg_mnist/table3.json")
    _damage(r, "bg_mnist/table3.json", edit)
    _refused(r, tmp_path, "fig5", capsys, "table3.json: " + why)
    assert not list((tmp_path / "out").glob("fig5*"))


ATTACKS = ("attacks/mnist-reweighted-cpu.json", "attacks/mnist-reweighted-cpu.boundary.json")


def _negate_trajectory(d: dict) -> None:
    t = d["settings"]["boundary"]["boundary"]["trajectory"]
    t["l2"] = _scaled(t["l2"], -1)


@pytest.mark.parametrize("edit, why", [
    (lambda d: d.update(_scaled(d, -1)), "'eps_l2' is float '-1.5', expected a number > 0"),
    (lambda d: d["settings"]["boundary"]["per_image"]["l2"].__setitem__(7, -0.2),
     "'settings.boundary.per_image.l2[7]' is float '-0.2', expected a number >= 0 or null"),
    (lambda d: d["settings"]["boundary-det"]["per_image"]["bpd_adv"].__setitem__(0, -1.0),
     "'settings.boundary-det.per_image.bpd_adv[0]' is float '-1.0'"),
    (_negate_trajectory, "'settings.boundary.boundary.trajectory.l2[0][0]' is float"),
])
def test_attack_curves_refuse_a_negated_result(edit: Callable[[dict], None], why: str,
                                               tmp_path: Path, capsys) -> None:
    """The damaged result's panel is refused (named, with the value); the other is made (the
    six results not copied are reported missing)."""
    r = _stored(tmp_path, *ATTACKS)
    _damage(r, ATTACKS[1], edit)
    rc = main(["--results", str(r), "--out", str(tmp_path / "out"), "--only", "attack_curves"])
    out, err = capsys.readouterr()
    assert rc == 1 and "[partial] attack_curves" in out, out + err
    assert "Traceback" not in err and "log-scaled" not in err
    line = next(x for x in err.splitlines() if "could not make the panel" in x)
    assert "mnist-reweighted-cpu.boundary.json: " + why in line, line
    assert (tmp_path / "out" / "attack_curves.png").is_file()


ALL_ATTACKS = tuple(f"attacks/{d}-{o}-cpu{b}.json" for d in ("mnist", "cifar10")
                    for o in ("reweighted", "split") for b in ("", ".boundary"))
CW_CELL = "4% [2, 10] (98% [93, 99]) n=100"  # stored: mnist-reweighted-cpu, CW, T quantile


def _cell(value: str) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        assert d["table2"]["quantile"]["cw"] == CW_CELL
        d["table2"]["quantile"]["cw"] = value
    return edit


def _per_image(key: str, value: Callable[[Any], Any]) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        for s in d["settings"].values():
            s["per_image"][key] = [value(v) for v in s["per_image"][key]]
    return edit


def _pred_is_label(d: dict) -> None:
    for s in d["settings"].values():
        s["per_image"]["pred_adv"] = s["per_image"]["label"]


@pytest.mark.parametrize("edit, why", [
    (_cell("banana"), f"table2.quantile.cw is 'banana', its per-image outcomes give {CW_CELL!r}"),
    (_cell("x% [x, x] (x% [x, x]) n=x"), "table2.quantile.cw is 'x% [x, x] (x% [x, x]) n=x'"),
    (_cell("-4% [-2, -10] (-98% [-93, -99]) n=-100"), "table2.quantile.cw is '-4% [-2, -10]"),
    (_cell("5% [2, 10] (98% [93, 99]) n=100"), "table2.quantile.cw is '5% [2, 10] (98% [93, 99]) "
     f"n=100', its per-image outcomes give {CW_CELL!r}"),
    (_per_image("l2", lambda v: "x"), "'settings.cw.per_image.l2[0]' is str 'x'"),
    (lambda d: d.update(_scaled(d, -1)), "'eps_l2' is float '-1.5', expected a number > 0"),
    (_pred_is_label, "ValueError: cw (quantile): 0 undetected within eps re-counted, 4 stored"),
])
def test_table2_refuses_cells_its_outcomes_do_not_give(edit: Callable[[dict], None], why: str,
                                                       tmp_path: Path, capsys) -> None:
    """The damaged result's column is refused (named, with the cell); the rest is made."""
    r = _stored(tmp_path, *ALL_ATTACKS)
    _damage(r, "attacks/mnist-reweighted-cpu.json", edit)
    rc = main(["--results", str(r), "--out", str(tmp_path / "out"), "--only", "table2"])
    out, err = capsys.readouterr()
    assert rc == 1 and "[partial] table2" in out, out + err
    line = next(x for x in err.splitlines() if "could not make the column" in x)
    assert "mnist-reweighted-cpu.json: " + why in line, line
    md = (tmp_path / "out" / "table2.md").read_text()
    assert "banana" not in md and "x%" not in md and "-4%" not in md and "5% [2, 10]" not in md
    cw = next(row for row in md.splitlines() if row.startswith("| MNIST | CW-L2 |"))
    assert cw.split(" | ")[2:4] == ["-", "-"]  # reweighted, ours: not made
    assert "| MNIST | Boundary |" in md and "CIFAR-10" in md  # the other results are used


def _emptied(obj: Any) -> Any:
    """``obj`` with every list emptied."""
    if isinstance(obj, dict):
        return {k: _emptied(v) for k, v in obj.items()}
    return [] if isinstance(obj, list) else obj


def _xed(obj: Any) -> Any:
    """``obj`` with every number replaced by ``"x"`` (the fingerprint kept)."""
    if isinstance(obj, dict):
        return {k: v if k == "fingerprint" else _xed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_xed(v) for v in obj]
    return "x" if isinstance(obj, (int, float)) and not isinstance(obj, bool) else obj


def _row(key: str, value: Any) -> Callable[[dict], dict]:
    def edit(d: dict) -> dict:
        rows = d["rows"] if "rows" in d else d["series"][1]["rows"]
        rows[3][key] = value
        return d
    return edit


@pytest.mark.parametrize("item, cache, compute, edit, why", [
    ("theory_mc_attack", "mc_attack.json", theory.compute_mc_attack, _emptied,
     "'rows' is list '[]', expected a non-empty list"),
    ("theory_mc_attack", "mc_attack.json", theory.compute_mc_attack, _row("ci99", [0.2, 0.1]),
     "'rows[3].ci99' is list '[0.2, 0.1]', expected an interval [lo, hi] of shares"),
    ("theory_mc_attack", "mc_attack.json", theory.compute_mc_attack,
     _row("success_rate", -0.5), "'rows[3].success_rate' is float '-0.5'"),
    ("theory_min_dimension", "min_dimension.json", theory.compute_min_dimension, _xed,
     "'series[0].rows[0].Delta' is str 'x', expected a number > 0"),
    ("theory_min_dimension", "min_dimension.json", theory.compute_min_dimension,
     _row("search", 0), "'series[1].rows[3].search' is int '0', expected an integer >= 1"),
    ("theory_kl", "kl_vs_d.json", theory.compute_kl_vs_d, _row("lemma2_joint", -1.0),
     "'rows[3].lemma2_joint' is float '-1.0', expected a number > 0"),
    ("theory_tv", "tv_vs_d.json", theory.compute_tv, _emptied,
     "'series' is list '[]', expected a non-empty list"),
    ("theory_tv", "tv_vs_d.json", theory.compute_tv, _row("lower_bound", "x"),
     "'series[1].rows[3].lower_bound' is str 'x'"),
])
def test_theory_figures_refuse_a_malformed_cache_of_the_current_code(
        item: str, cache: str, compute: Callable[[], dict], edit: Callable[[dict], dict],
        why: str, tmp_path: Path, capsys) -> None:
    """A cache whose fingerprint is current (so it is not recomputed) but whose numbers cannot
    be drawn is refused, saying how to remake it; the cache is left as it is."""
    r = _stored(tmp_path, "theory/" + cache)
    data = json.loads((r / "theory" / cache).read_text())
    data["fingerprint"] = theory.fingerprint(compute)
    (r / "theory" / cache).write_text(json.dumps(edit(data)))
    before = (r / "theory" / cache).read_text()
    line = _refused(r, tmp_path, item, capsys, f"theory/{cache}: {why}",
                    "malformed theory cache; rerun with --recompute")
    assert "STALE" not in line and (r / "theory" / cache).read_text() == before
    assert not list((tmp_path / "out").glob("theory*"))


def test_a_result_under_another_models_or_datasets_name_is_refused(tmp_path: Path,
                                                                    capsys) -> None:
    """Table 1 trusted file names: a CIFAR-10 split evaluation copied to mnist-base-cpu.json
    made the CIFAR-10 row twice, and cifar10.json copied to baselines/mnist.json gave MNIST the
    CIFAR-10 histogram (found by fuzzing). Each is refused for its row, the rest is made."""
    r = _stored(tmp_path, "table1/cifar10-split-cpu.json", "table1/mnist-split-cpu.json",
                "baselines/cifar10.json")
    shutil.copyfile(r / "table1" / "cifar10-split-cpu.json", r / "table1" / "mnist-base-cpu.json")
    shutil.copyfile(r / "baselines" / "cifar10.json", r / "baselines" / "mnist.json")
    rc = main(["--results", str(r), "--out", str(tmp_path / "out"), "--only", "table1"])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err, out + err
    assert "mnist-base-cpu.json: it evaluates a split model of cifar10, not mnist-base-cpu" in err
    assert "mnist.json: its dataset is 'cifar10', not 'mnist'" in err
    table = (tmp_path / "out" / "table1.md").read_text()
    assert table.count("7.883") <= 1  # CIFAR-10's histogram bits/dim, never on the MNIST row


def test_table3_from_evaluations_needs_no_objective(tmp_path: Path, capsys) -> None:
    """Table 3's fallback (evaluations, no bg_mnist/table3.json) does not read the objective, so
    an evaluation without one still makes its row: the file-name check of Table 1 is not applied
    there (it read config.objective and would fail with a KeyError)."""
    rel = "table3/bg-mnist-0-reweighted-cpu.json"
    r = _stored(tmp_path, rel)
    _damage(r, rel, lambda d: d["config"].pop("objective"))
    main(["--results", str(r), "--out", str(tmp_path / "out"), "--only", "table3"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "[partial] table3" in out, out + err
    assert "bg-mnist-0" in (tmp_path / "out" / "table3.md").read_text().lower()
