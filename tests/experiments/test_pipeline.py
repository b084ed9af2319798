"""flows.pipeline: declared runs, dependencies, up-to-date skipping, failures, training state."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from flows import pipeline
from foundation import errors


def _write(tmp: Path, body: str) -> Path:
    f = tmp / "runs.toml"
    f.write_text(body)
    return f


def _chain(tmp: Path) -> Path:
    (tmp / "a.json").write_text('{"x": 1}')
    return _write(tmp, f"""
[vars]
d = "{tmp}"

[[run]]
name = "step/b"
module = "json.tool"
args = "{{d}}/a.json {{d}}/b.json"
inputs = ["{{d}}/a.json"]
outputs = ["{{d}}/b.json"]

[[run]]
name = "step/c"
module = "json.tool"
args = "--compact {{d}}/b.json {{d}}/c.json"
inputs = ["{{d}}/b.json"]
outputs = ["{{d}}/c.json"]
""")


def test_dependencies_are_inferred_from_inputs_and_outputs(tmp_path) -> None:
    runs = pipeline.load(_chain(tmp_path))
    assert [r.name for r in runs] == ["step/b", "step/c"]
    assert runs[1].needs == ["step/b"] and runs[0].needs == []
    assert [r.name for r in pipeline.select(runs, ["step/c"], deps=True)] == ["step/b", "step/c"]
    assert [r.name for r in pipeline.select(runs, ["step/c"], deps=False)] == ["step/c"]
    with pytest.raises(errors.UsageError):
        pipeline.select(runs, ["nope/*"], deps=True)


def test_runs_skips_what_is_up_to_date_and_reruns_what_changed(tmp_path) -> None:
    f = _chain(tmp_path)
    state = tmp_path / "state"
    logs: list[str] = []
    out = pipeline.execute(pipeline.load(f), jobs=1, force=False, dry_run=False, state=state,
                           log=logs.append)
    assert out == {"step/b": "done", "step/c": "done"}
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": 1}
    out = pipeline.execute(pipeline.load(f), jobs=2, force=False, dry_run=False, state=state,
                           log=logs.append)
    assert out == {"step/b": "up to date", "step/c": "up to date"}
    time.sleep(0.01)
    (tmp_path / "a.json").write_text('{"x": 2}')  # an input changed: both run again
    out = pipeline.execute(pipeline.load(f), jobs=1, force=False, dry_run=False, state=state,
                           log=logs.append)
    assert out == {"step/b": "done", "step/c": "done"}
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": 2}
    os.remove(tmp_path / "c.json")  # an output vanished: only its run
    out = pipeline.execute(pipeline.load(f), jobs=1, force=False, dry_run=False, state=state,
                           log=logs.append)
    assert out == {"step/b": "up to date", "step/c": "done"}
    assert any("[2/2] step/c: running" in line for line in logs)


def test_a_failed_run_skips_its_dependents_and_exits_1(tmp_path, run_cli) -> None:
    f = _chain(tmp_path)
    (tmp_path / "a.json").write_text("{not json")
    rc, _ = run_cli(pipeline.main, ["--file", str(f), "--state-dir", str(tmp_path / "s")])
    assert rc == 1 and not (tmp_path / "c.json").exists()
    rc, err = run_cli(pipeline.main, ["--file", str(f), "--jobs", "0"])
    assert rc == 2 and len(err) == 1 and "--jobs" in err[0]
    bad = _write(tmp_path, '[[run]]\nname = "x"\nmodule = "json.tool"\nkind = "nope"\n'
                           'outputs = ["o"]\n')
    rc, err = run_cli(pipeline.main, ["--file", str(bad), "--list"])
    assert rc == 1 and len(err) == 1 and "kind" in err[0]


def test_training_state_and_resume(tmp_path) -> None:
    f = _write(tmp_path, f"""
[[run]]
name = "train/x"
kind = "train"
module = "flows.train"
args = "--epochs 3 --out {tmp_path}/run"
outputs = ["{tmp_path}/run/checkpoint.pt"]
""")
    (run,) = pipeline.load(f)
    assert pipeline.train_state(run) == "missing" and pipeline.status(run) == "run"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"x")
    (tmp_path / "run" / "train_summary.json").write_text(
        json.dumps({"invocations": [{"epochs_done": 2}]}))
    assert pipeline.status(run) == "resume"
    assert pipeline._argv(run, resume=True)[-1] == "--resume"
    (tmp_path / "run" / "train_summary.json").write_text(
        json.dumps({"invocations": [{"epochs_done": 2}, {"epochs_done": 3}]}))
    assert pipeline.status(run) == "up to date"


def test_the_project_runs_file_is_valid() -> None:
    runs = pipeline.load(pipeline.DEFAULT_FILE)
    names = {r.name for r in runs}
    for need in ("train/mnist-reweighted-cpu", "attacks/mnist-reweighted-cpu",
                 "attacks/cifar10-reweighted-cpu", "interpolation/cifar10-reweighted-cpu",
                 "likelihood_gap/mnist-reweighted-cpu", "bg_mnist/table3", "figures/paper"):
        assert need in names
    att = next(r for r in runs if r.name == "attacks/mnist-reweighted-cpu")
    assert "package/mnist-reweighted-cpu" in att.needs  # experiments read the shipped model
    pkg = next(r for r in runs if r.name == "package/mnist-reweighted-cpu")
    assert "train/mnist-reweighted-cpu" in pkg.needs
    ft = next(r for r in runs if r.name == "train/mnist-reweighted-cpu")
    assert "package/mnist-base-cpu" in ft.needs  # the likelihood warm start
    assert "--data-dir" in att.args and att.args[att.args.index("--data-dir") + 1] == \
        "../shared/data"
