"""End-to-end CLIs on tiny data: train, evaluate, bit-identical resume, non-finite guard, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flows_testutils import write_idx_images, write_idx_labels

from flows import evaluate as feval
from flows import precision
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


def test_a_killed_invocation_stays_in_the_train_summary(tiny_data_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed in its second epoch, an invocation is still recorded (finished: false, the epoch it
    checkpointed); the resumed one is appended and finishes."""
    out = tmp_path / "run"
    real, calls = ftrain.training_batch, []

    def batch_then_killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # 2 steps per epoch: the first step of epoch 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ftrain, "training_batch", batch_then_killed)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        ftrain.main(_args(tiny_data_dir, out))
    killed = json.loads((out / "train_summary.json").read_text())["invocations"]
    assert len(killed) == 1
    assert (killed[0]["finished"], killed[0]["epochs_done"], killed[0]["step"]) == (False, 1, 2)
    assert len(killed[0]["history"]) == 1 and killed[0]["wall_time_s"] > 0
    assert "--resume" not in killed[0]["command"] and "git_commit" in killed[0]["provenance"]
    monkeypatch.setattr(ftrain, "training_batch", real)
    assert ftrain.main(_args(tiny_data_dir, out, "--resume")) == 0
    both = json.loads((out / "train_summary.json").read_text())["invocations"]
    assert both[0] == killed[0]
    assert (both[1]["finished"], both[1]["epochs_done"], len(both[1]["history"])) == (True, 2, 2)
    assert both[1]["command"].endswith("--resume")


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


def test_resume_keeps_the_fast_path_the_run_began_with(tiny_data_dir: Path,
                                                       tmp_path: Path) -> None:
    """A run begun on the float32 contiguous path, resumed with the flags left at ``auto`` (which
    on any CPU here would choose channels_last, and bf16 where native), continues on the path it
    began with, bit-identical to the run done in one go; a flag given that contradicts the
    checkpoint is refused (exit 2, naming ``fast_path``)."""
    full, part = tmp_path / "full", tmp_path / "part"
    began = ("--amp", "none", "--channels-last", "off")
    assert ftrain.main(_args(tiny_data_dir, full, *began)) == 0
    assert ftrain.main(_args(tiny_data_dir, part, *began, "--stop-after", "1")) == 0
    with pytest.raises(SystemExit, match="different settings than the checkpoint: fast_path"):
        ftrain.main(_args(tiny_data_dir, part, "--resume", "--channels-last", "on"))
    assert ftrain.main(_args(tiny_data_dir, part, "--resume")) == 0
    assert json.loads((part / "config.json").read_text())["fast_path"] == {
        "bf16_coupling": False, "channels_last": False, "compile": False}
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(part / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_a_bf16_run_is_not_resumed_where_bf16_is_not_native(
        tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Begun with bf16 coupling networks, a run resumed with ``auto`` on a CPU without native
    bf16 is refused in one line (exit 2) that says why, before any work."""
    out = tmp_path / "run"
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    assert ftrain.main(_args(tiny_data_dir, out, "--stop-after", "1")) == 0
    assert json.loads((out / "config.json").read_text())["fast_path"]["bf16_coupling"] is True
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    capsys.readouterr()  # the first invocation's progress bars
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_args(tiny_data_dir, out, "--resume"))
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    assert "trained its coupling networks in bf16, which is not native" in err[0]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1


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


def test_contradictory_flags_are_refused_before_any_work(tiny_data_dir: Path,
                                                         tmp_path: Path) -> None:
    """Exit 2, one line, and no run directory for flags that contradict each other or the
    data; an empty split is a data error (exit 1) naming the directory."""
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"")
    cases = ((("--objective", "base", "--beta", "5"), "objective 'base' has no such term"),
             (("--no-fast", "--amp", "none", "--compile", "on"), "contradicts --compile on"),
             (("--no-fast", "--channels-last", "on"), "contradicts --channels-last on"),
             (("--batch-size", "65"), "--batch-size 65 x 1 process(es) exceeds the 64 images"))
    for i, (extra, why) in enumerate(cases):
        out = tmp_path / f"r{i}"
        with pytest.raises(SystemExit) as exc:
            ftrain.main(_args(tiny_data_dir, out, *extra))
        assert exc.value.code == 2 and why in str(exc.value), str(exc.value)
        assert not out.exists(), extra
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_args(tiny_data_dir, folder))
    assert exc.value.code == 2 and "a model folder" in str(exc.value)
    empty = tmp_path / "empty-data"
    (empty / "mnist").mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx_images(empty / "mnist" / f"{prefix}-images-idx3-ubyte",
                         np.zeros((0, 28, 28), np.uint8))
        write_idx_labels(empty / "mnist" / f"{prefix}-labels-idx1-ubyte", np.zeros(0, np.uint8))
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_args(empty, tmp_path / "r-empty"))
    assert exc.value.code == 1 and "mnist train split holds no images" in str(exc.value)
    run = tmp_path / "run"
    assert ftrain.main(_args(tiny_data_dir, run, "--epochs", "1")) == 0
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(run), "--data-dir", str(empty), "--draws", "1"])
    assert exc.value.code == 1 and "mnist test split holds no images" in str(exc.value)


def test_non_finite_guard_saves_last_good_state(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import train_step

    real = train_step.objective_loss
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # the third step produces NaN
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_step, "objective_loss", flaky)
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
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    for attempt in range(2):
        out = tmp_path / f"ddp{attempt}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "-m", "flows.train",
               *_args(tiny_data_dir, out, "--epochs", "1", "--threads", "1")]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
        # one retry only when a rank died of SIGABRT (a C++ abort in the launcher's process
        # group; seen once on the 2-core VM, cause unknown): an exception raised by flows.train
        # exits with 1, not a signal, and fails at once
        if proc.returncode == 0 or "(SIGABRT)" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_budget_plan_spends_the_budget_in_whole_batches() -> None:
    from flows.budget import SAFETY, plan

    p = plan(25.0, 100.0, 50000, 64)  # 0.93 * 25 * 60 * 100 = 139500 images
    assert p.epochs == 3 and p.train_subset == int(SAFETY * 150000 / 3) // 64 * 64
    many = plan(25.0, 1000.0, 50000, 64)  # 1395000 images: 28 epochs of 49792
    assert many.epochs == 28 and many.train_subset == 49792
    assert plan(0.5, 1000.0, 27900, 100).train_subset == 0  # exactly one whole epoch
    small = plan(0.001, 1.0, 50000, 64)
    assert (small.epochs, small.train_subset) == (1, 64)  # at least one batch


def test_budget_run_is_reproduced_by_its_resolved_schedule(tiny_data_dir: Path,
                                                           tmp_path: Path) -> None:
    """--budget-minutes stores epochs and images per epoch; passing those reproduces the run
    exactly, resuming needs the same budget."""
    a, b = tmp_path / "a", tmp_path / "b"
    base = _args(tiny_data_dir, a)
    for flag in ("--train-subset", "--epochs"):  # the budget sizes both
        i = base.index(flag)
        del base[i:i + 2]
    for flag in ("--train-subset", "--epochs"):
        with pytest.raises(SystemExit) as exc:
            ftrain.main([*base, flag, "2", "--budget-minutes", "0.004"])
        assert exc.value.code == 2 and "pass either the budget or those" in str(exc.value)
    assert not a.exists()
    assert ftrain.main([*base, "--budget-minutes", "0.004"]) == 0
    cfg = json.loads((a / "config.json").read_text())
    resolved = cfg["budget"]
    assert resolved["minutes"] == 0.004 and resolved["images_per_s"] > 0
    assert (cfg["epochs"], cfg["train_subset"]) == (resolved["epochs"], resolved["train_subset"])
    summary = json.loads((a / "train_summary.json").read_text())["invocations"][-1]
    assert summary["epochs_done"] == resolved["epochs"]
    again = _args(tiny_data_dir, b)
    again[again.index("--epochs") + 1] = str(resolved["epochs"])
    again[again.index("--train-subset") + 1] = str(resolved["train_subset"])
    assert ftrain.main(again) == 0
    sa = torch.load(a / "checkpoint.pt", weights_only=True)["model"]
    sb = torch.load(b / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())
    with pytest.raises(SystemExit, match="not sized for that budget"):
        ftrain.main([*base, "--budget-minutes", "0.5", "--resume"])


def test_ce_ramp_resumes_bit_identically_and_is_refused_where_it_cannot_apply(
        tiny_data_dir: Path, tmp_path: Path, capsys) -> None:
    """A ramp across the resume point continues exactly; it is recorded in the config; it is
    refused for objectives without -log p(y|x) and when it would not end before the last step;
    a checkpoint written before the setting existed resumes as a run without a ramp."""
    full, part = tmp_path / "full", tmp_path / "part"
    ramp = ("--ce-ramp-steps", "3")  # 2 epochs x 2 steps: weights 1/3, 2/3 | 1, 1
    assert ftrain.main(_args(tiny_data_dir, full, *ramp)) == 0
    assert ftrain.main(_args(tiny_data_dir, part, *ramp, "--stop-after", "1")) == 0
    assert ftrain.main(_args(tiny_data_dir, part, *ramp, "--resume")) == 0
    a = torch.load(full / "checkpoint.pt", weights_only=True)
    b = torch.load(part / "checkpoint.pt", weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert json.loads((full / "config.json").read_text())["ce_ramp_steps"] == 3
    plain = tmp_path / "plain"
    assert ftrain.main(_args(tiny_data_dir, plain)) == 0  # the ramp changes the result
    c = torch.load(plain / "checkpoint.pt", weights_only=True)
    assert any(not torch.equal(v, c["model"][k]) for k, v in a["model"].items())
    assert a["history"][0]["loss"] != c["history"][0]["loss"]
    # a checkpoint of a version without the setting: resumes as ce_ramp_steps 0
    old = tmp_path / "old"
    assert ftrain.main(_args(tiny_data_dir, old, "--stop-after", "1")) == 0
    state = torch.load(old / "checkpoint.pt", weights_only=True)
    del state["config"]["ce_ramp_steps"]
    torch.save(state, old / "checkpoint.pt")
    assert ftrain.main(_args(tiny_data_dir, old, "--resume")) == 0
    d = torch.load(old / "checkpoint.pt", weights_only=True)
    for key, value in c["model"].items():
        assert torch.equal(value, d["model"][key]), key
    capsys.readouterr()
    for extra, why in ((("--ce-ramp-steps", "4"), "must end before the last of the 4 steps"),
                       (("--ce-ramp-steps", "1", "--objective", "base"), "has none to ramp"),
                       (("--gmm-scale", "shared", "--objective", "split"),
                        "uses the split prior"),
                       (("--gmm-class-latent", "top", "--objective", "split"),
                        "uses the split prior"),
                       (("--split-class-latent", "top", "--objective", "reweighted"),
                        "uses the Gaussian mixture prior")):
        args = _args(tiny_data_dir, tmp_path / f"bad{len(why)}", *extra)
        with pytest.raises(SystemExit) as exc:
            ftrain.main(args)
        assert exc.value.code == 2, exc.value.code
        assert why in capsys.readouterr().err
        assert not (tmp_path / f"bad{len(why)}" / "config.json").exists()  # refused before writing


def test_squeeze_first_is_recorded_and_old_model_sections_resume(tiny_data_dir: Path,
                                                                 tmp_path: Path) -> None:
    """``--squeeze-first on`` builds (and records) the Glow-ordered model, which trains to a
    different result and loads back from its run folder; a checkpoint whose model section
    predates ``squeeze_first``, ``first_level_steps``, ``pad_noise`` and ``gmm_scale`` resumes as
    the Appendix-B model it was, and is refused with ``--squeeze-first on``, ``--pad-noise
    gaussian`` or ``--gmm-scale shared``."""
    glow, plain = tmp_path / "glow", tmp_path / "plain"
    assert ftrain.main(_args(tiny_data_dir, glow, "--squeeze-first", "on")) == 0
    assert ftrain.main(_args(tiny_data_dir, plain)) == 0
    assert json.loads((glow / "config.json").read_text())["model"]["squeeze_first"] is True
    assert json.loads((plain / "config.json").read_text())["model"]["squeeze_first"] is False
    model, _ = load_run(glow)
    assert model.squeeze_first and model.levels[0][0].layers[0].bias.shape[1] == 8
    a = torch.load(glow / "checkpoint.pt", weights_only=True)["history"][-1]["loss"]
    b = torch.load(plain / "checkpoint.pt", weights_only=True)["history"][-1]["loss"]
    assert a != b
    old = tmp_path / "old"
    assert ftrain.main(_args(tiny_data_dir, old, "--stop-after", "1")) == 0
    state = torch.load(old / "checkpoint.pt", weights_only=True)
    for key in ("squeeze_first", "first_level_steps", "pad_noise", "gmm_scale",
                "gmm_class_latent", "split_class_latent"):
        del state["config"]["model"][key]
    torch.save(state, old / "checkpoint.pt")
    for flag, field in ((("--squeeze-first", "on"), "squeeze_first: checkpoint False, now True"),
                        (("--pad-noise", "gaussian"),
                         "pad_noise: checkpoint 'uniform', now 'gaussian'"),
                        (("--gmm-scale", "shared"),
                         "gmm_scale: checkpoint 'per-class', now 'shared'"),
                        (("--gmm-class-latent", "top"),
                         "gmm_class_latent: checkpoint 'all', now 'top'")):
        with pytest.raises(SystemExit) as exc:
            ftrain.main(_args(tiny_data_dir, old, "--resume", *flag))
        assert exc.value.code == 2 and str(exc.value).endswith(
            f"different settings than the checkpoint: model (model.{field})"), str(exc.value)
    assert ftrain.main(_args(tiny_data_dir, old, "--resume")) == 0


def test_gaussian_padding_is_recorded_trains_and_loads_back(tiny_data_dir: Path,
                                                             tmp_path: Path) -> None:
    """``--pad-noise gaussian`` is recorded in the model section, trains to another result than
    the preset's uniform padding, and its run folder loads back with it (and evaluates)."""
    gauss, plain = tmp_path / "gauss", tmp_path / "plain"
    assert ftrain.main(_args(tiny_data_dir, gauss, "--pad-noise", "gaussian")) == 0
    assert ftrain.main(_args(tiny_data_dir, plain)) == 0
    assert json.loads((gauss / "config.json").read_text())["model"]["pad_noise"] == "gaussian"
    assert json.loads((plain / "config.json").read_text())["model"]["pad_noise"] == "uniform"
    a = torch.load(gauss / "checkpoint.pt", weights_only=True)["history"][-1]["loss"]
    b = torch.load(plain / "checkpoint.pt", weights_only=True)["history"][-1]["loss"]
    assert a != b
    model, _ = load_run(gauss)
    assert model.pad.noise == "gaussian"
    out_json = tmp_path / "gauss-eval.json"
    assert feval.main(["--run", str(gauss), "--out", str(out_json), "--device", "cpu"]) == 0
    assert json.loads(out_json.read_text())["metrics"]["bits_per_dim"] > 0


def test_architecture_flags_override_the_preset_and_must_match_on_resume(
        tiny_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--hidden``, ``--steps-per-level`` and ``--first-level-steps`` replace the preset's
    values: recorded in the model section, built (the levels have those step counts and the
    coupling networks that width), loaded back from the run folder; a resume with another value
    is refused (exit 2), and an out-of-range value is a usage error before anything is written."""
    out = tmp_path / "deep"
    assert ftrain.main(_args(tiny_data_dir, out, "--hidden", "6", "--steps-per-level", "3",
                             "--first-level-steps", "1", "--stop-after", "1")) == 0
    model_section = json.loads((out / "config.json").read_text())["model"]
    assert (model_section["hidden"], model_section["steps_per_level"],
            model_section["first_level_steps"]) == (6, 3, 1)
    model, _ = load_run(out)
    assert [len(level) for level in model.levels] == [1, 3, 3, 3]
    widths = [p.shape[0] for name, p in model.named_parameters() if name.endswith("net.0.weight")]
    assert widths == [6] * 10  # one coupling network per flow step
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_args(tiny_data_dir, out, "--resume", "--hidden", "6",
                          "--steps-per-level", "2", "--first-level-steps", "1"))
    assert exc.value.code == 2 and "model.steps_per_level: checkpoint 3, now 2" in str(exc.value)
    assert ftrain.main(_args(tiny_data_dir, out, "--resume", "--hidden", "6",
                             "--steps-per-level", "3", "--first-level-steps", "1")) == 0
    for flag in ("--hidden", "--steps-per-level", "--first-level-steps"):
        with pytest.raises(SystemExit) as exc:
            ftrain.main(_args(tiny_data_dir, tmp_path / "bad", flag, "0"))
        assert exc.value.code == 2
        assert f"argument {flag}: expected an integer in [1, " in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
