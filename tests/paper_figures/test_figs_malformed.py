"""Malformed inputs: the offending file is named, non-finite numbers are refused, the row or item
that could not be made is said, the rest is still made; theory caches heal; usage errors exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paper_figures import theory
from paper_figures.__main__ import main
from paper_figures.registry import BY_NAME, Context, run_item


@pytest.mark.parametrize("content, why", [
    ("{}", "missing 'config.dataset'"),
    ('{"config": {"dataset": "mnist", "objective": "split"}, "metrics": '
     '{"accuracy": NaN, "bits_per_dim": 4.0}}', "non-finite number at metrics.accuracy"),
    ('{"config": {"dataset": "mnist", "objective": "split"}, "metrics": '
     '{"accuracy": 0.9, "bits_per_dim": 1e400}}', "non-finite number at metrics.bits_per_dim"),
    ('{"config": {"dataset": "mnist", "objective": "split"}, "metrics": '
     '{"accuracy": 0.9, "bits_per_dim": -Infinity}}', "non-finite"),
    ('{"config": {"dataset": "mnist", "objective": "spl', "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"config": {"dataset": "mnist", "objective": "split"}, "metrics": '
     '{"accuracy": "high", "bits_per_dim": 4.0}}', "'metrics.accuracy' is str"),
    ('{"config": {"dataset": "mnist", "objective": "split"}, "metrics": '
     '{"accuracy": 7.5, "bits_per_dim": 4.0}}', "expected a share in [0, 1]"),
    ('{"config": {"dataset": "mnist", "objective": "split"}, "metrics": '
     '{"accuracy": 0.9, "bits_per_dim": -3.0}}', "expected a number > 0"),
])
def test_bad_table1_row_is_named_and_the_rest_made(content: str, why: str, results_dir: Path,
                                                   tmp_path: Path, capsys) -> None:
    bad = results_dir / "table1" / "mnist-split-cpu.json"
    bad.write_text(content)
    out = run_item(BY_NAME["table1"], Context(results_dir, tmp_path / "out"))
    assert out.status == "partial"
    err = capsys.readouterr().err
    line = next(m for m in out.messages if "mnist-split-cpu.json" in m)
    assert line.startswith("table1: could not make the row from ") and why in line, line
    assert line in err
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "mnist-split-cpu" not in md and "mnist-base-cpu" in md  # the other rows are made
    assert "nan" not in md.lower() and "inf" not in md.lower()


def test_all_inputs_malformed_fails_naming_them(results_dir: Path, tmp_path: Path) -> None:
    for ds in ("mnist", "cifar10"):
        (results_dir / "likelihood_gap" / f"{ds}-reweighted-cpu.json").write_text('{"x": 1}')
    out = run_item(BY_NAME["fig3"], Context(results_dir, tmp_path / "out"))
    assert out.status == "failed"
    text = "\n".join(out.messages)
    assert "mnist-reweighted-cpu.json: missing 'dataset'" in text
    assert "cifar10-reweighted-cpu.json: missing 'dataset'" in text
    assert "fig3: could not make Figure 3" in text
    assert not (tmp_path / "out" / "fig3_likelihood_gap.png").exists()


def test_bad_table3_row_and_cli_exit_status(results_dir: Path, tmp_path: Path, capsys) -> None:
    bg = json.loads((results_dir / "bg_mnist" / "table3.json").read_text())
    bg["rows"][2]["accuracy"] = None
    (results_dir / "bg_mnist" / "table3.json").write_text(json.dumps(bg))
    rc = main(["--results", str(results_dir), "--out", str(tmp_path / "o"), "--only", "table3",
               "--only", "fig4"])
    assert rc == 1
    out = capsys.readouterr()
    assert "table3.json rows[2]: 'accuracy' is NoneType" in out.err
    assert "incomplete: table3" in out.out and "fig4" not in out.out.split("incomplete:")[1]
    md = (tmp_path / "o" / "table3.md").read_text()
    assert "| BG-MNIST-1 |" not in md and "| BG-MNIST-5 |" in md  # the model rows
    assert "| BG-MNIST-1 (histogram baseline) |" in md  # the baseline rows are still made


def test_unusable_theory_cache_is_recomputed_atomically(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "theory" / "x.json"
    cache.parent.mkdir()
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"figure": "x", "rows": [1.5, 2.5]}

    for broken in ("", '{"figure": "x", "rows": [1', '{"figure": "x", "rows": [NaN]}', "[]"):
        cache.write_text(broken)
        data = theory.cached(cache, compute)
        assert data["rows"] == [1.5, 2.5]
        assert json.loads(cache.read_text())["rows"] == [1.5, 2.5]
        assert str(cache) in capsys.readouterr().err
    assert len(calls) == 4
    assert theory.cached(cache, compute)["rows"] == [1.5, 2.5] and len(calls) == 4  # cache hit
    assert sorted(p.name for p in cache.parent.iterdir()) == ["x.json"]  # no temporary left


@pytest.mark.parametrize("argv, flag", [
    (["--out", "FILE"], "--out"), (["--results", "FILE"], "--results"), (["--out", ""], "--out"),
    (["--only", "fig99"], "--only"), (["--out", "/proc/figs"], "--out"), (["--bogus"], "--bogus"),
])
def test_figs_cli_usage_errors(argv: list[str], flag: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "f").write_text("x")
    argv = [str(tmp_path / "f") if a == "FILE" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m paper_figures: error: ")
    assert flag in err[0]


def test_attack_curves_refuse_a_result_whose_recount_differs(results_dir: Path,
                                                             tmp_path: Path) -> None:
    """A result whose per-image outcomes do not give its stored Table-2 cell is named and left
    out; the panels of the other results are still made."""
    path = results_dir / "attacks" / "mnist-split-cpu.json"
    res = json.loads(path.read_text())
    res["settings"]["cw-det"]["table2"]["quantile"]["undetected_within_eps"]["k"] += 1
    path.write_text(json.dumps(res))
    out = run_item(BY_NAME["attack_curves"], Context(results_dir, tmp_path / "out"))
    assert out.status == "partial"
    line = next(m for m in out.messages if "re-counted" in m)
    assert line.startswith("attack_curves: could not make the panel from ")
    assert "mnist-split-cpu.json" in line and "cw-det" in line
    assert (tmp_path / "out" / "attack_curves.png").stat().st_size > 1000
