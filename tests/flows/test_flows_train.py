"""End-to-end CLIs on tiny data: train, evaluate, bit-identical resume, non-finite guard, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from flows import evaluate as feval
from flows import train as ftrain
from flows.runs import load_run


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", "mnist", "--objective", "reweighted", "--preset", "tiny",
            "--epochs", "2", "--batch-size", "32", "--train-subset", "64", "--seed", "3",
            "--warmup-steps", "2", "--device", "cpu", "--data-dir", str(data), "--out", str(out),
            *extra]


def test_train_evaluate_and_bit_identical_resume(tiny_data_dir: Path, tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    assert ftrain.main(_args(tiny_data_dir, full)) == 0
    assert ftrain.main(_args(tiny_data_dir, part, "--stop-after", "1")) == 0
    assert torch.load(part / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert ftrain.main(_args(tiny_data_dir, part, "--resume")) == 0
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(part / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["step"] == b["step"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["history"][1]["loss"] == b["history"][1]["loss"]

    out_json = tmp_path / "res" / "eval.json"
    assert feval.main(["--run", str(full), "--out", str(out_json), "--device", "cpu"]) == 0
    result = json.loads(out_json.read_text())
    assert result["metrics"]["n_test"] == 60
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    assert result["metrics"]["bits_per_dim"] > 0
    for key in ("config", "seed", "provenance", "eval_wall_time_s", "train_wall_time_s"):
        assert key in result
    assert {"git_commit", "device"} <= set(result["provenance"])
    assert (full / "eval.json").is_file()
    model, config = load_run(full)
    assert not model.training and config["objective"] == "reweighted"
    x = torch.rand(2, 1, 32, 32) - 0.5
    assert torch.equal(model(x), model(x))


def test_resume_may_change_epochs_only_while_the_lr_so_far_is_unchanged(
        tiny_data_dir: Path, tmp_path: Path) -> None:
    """Shortening 4 -> 3 epochs after epoch 1 (constant lr so far) gives exactly the 3-epoch run;
    a total below the epochs already done is refused."""
    ref, part = tmp_path / "ref", tmp_path / "part"

    def args(out: Path, epochs: int, *extra: str) -> list[str]:
        a = _args(tiny_data_dir, out, *extra)
        a[a.index("--epochs") + 1] = str(epochs)
        return a

    assert ftrain.main(args(ref, 3)) == 0
    assert ftrain.main(args(part, 4, "--stop-after", "1")) == 0
    assert ftrain.main(args(part, 3, "--resume")) == 0
    a = torch.load(ref / "checkpoint.pt", weights_only=True)
    b = torch.load(part / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert json.loads((part / "config.json").read_text())["epochs"] == 3
    # 3 epochs done: a 2-epoch total is already passed (and its anneal would differ): refused
    with pytest.raises(SystemExit, match="epochs"):
        ftrain.main(args(part, 2, "--resume"))


def test_cli_errors_are_one_line(tiny_data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="data directory .* does not exist"):
        ftrain.main(_args(tmp_path / "missing", tmp_path / "r"))
    out = tmp_path / "r2"
    ftrain.main(_args(tiny_data_dir, out, "--epochs", "1"))
    with pytest.raises(SystemExit, match="exists; pass --resume"):
        ftrain.main(_args(tiny_data_dir, out, "--epochs", "1"))
    with pytest.raises(SystemExit, match="different settings"):
        ftrain.main(_args(tiny_data_dir, out, "--epochs", "1", "--resume", "--lr", "0.1"))
    with pytest.raises(SystemExit, match="not found"):
        feval.main(["--run", str(tmp_path / "nope")])
    with pytest.raises(SystemExit):  # argparse: invalid choice
        ftrain.main(_args(tiny_data_dir, out, "--objective", "gan"))


def test_non_finite_guard_saves_last_good_state(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ftrain.objective_loss
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # the third step produces NaN
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(ftrain, "objective_loss", flaky)
    out = tmp_path / "nan"
    with pytest.raises(SystemExit, match="non-finite loss"):
        ftrain.main(_args(tiny_data_dir, out))
    state = torch.load(out / "last_good.pt", weights_only=True)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_torchrun_ddp_two_cpu_processes(tiny_data_dir: Path, tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists():
        pytest.skip("torchrun not available")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "flows.train", *_args(tiny_data_dir, out, "--epochs", "1", "--threads", "1")]
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1
