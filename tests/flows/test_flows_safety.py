"""Safety of the flows CLIs: malicious and corrupt checkpoints, atomic writes, last-good state."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from flows import evaluate as feval
from flows import train as ftrain
from flows.runs import RunError, load_run, read_summary, save_checkpoint
from flows.train_step import all_finite, all_ranks_finite
from foundation import atomic


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", "mnist", "--objective", "reweighted", "--preset", "tiny",
            "--epochs", "1", "--batch-size", "32", "--train-subset", "64", "--seed", "1",
            "--warmup-steps", "1", "--device", "cpu", "--data-dir", str(data), "--out", str(out),
            *extra]


@pytest.fixture(scope="module")
def tiny_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained run (1 epoch, 2 steps), shared by the tests of this module."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    torch.set_num_threads(1)
    assert ftrain.main(_train_args(tiny_data_dir, out)) == 0
    return out


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_malicious_checkpoint_runs_nothing(tiny_run: Path, tiny_data_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(tiny_run, tmp_path)
    marker = tmp_path / "pwned"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["history"].append(_Payload(marker))
    torch.save(state, run / "checkpoint.pt")
    # sanity: the payload really fires when unpickled (plain pickle, not the checkpoint)
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()
    marker.unlink()

    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(run), "--device", "cpu", "--out", str(tmp_path / "e.json")])
    assert exc.value.code == 1
    assert "refused" in _err_line(capsys) and "checkpoint.pt" in str(exc.value)
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, run, "--resume", "--epochs", "1"))
    assert exc.value.code == 1 and "refused" in str(exc.value)
    with pytest.raises(RunError, match="refused"):
        load_run(run)
    from flows.experiments import likelihood_gap

    with pytest.raises((SystemExit, RunError)) as exc:  # the experiments load through load_run
        likelihood_gap.main(["--run", str(run), "--out", str(tmp_path / "g.json"),
                             "--data-dir", str(tiny_data_dir)])
    assert not isinstance(exc.value, SystemExit) or exc.value.code != 0
    assert not marker.exists()
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "g.json").exists()


def _corrupt(run: Path, how: str) -> None:
    ckpt, cfg = run / "checkpoint.pt", run / "config.json"
    if how == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    elif how == "empty":
        ckpt.write_bytes(b"")
    elif how == "json":
        ckpt.write_text('{"model": {}}')
    elif how == "missing-keys":
        torch.save({"model": torch.load(ckpt, weights_only=True)["model"]}, ckpt)
    elif how == "other-preset":
        config = json.loads(cfg.read_text())
        config["model"]["hidden"] = 16
        cfg.write_text(json.dumps(config))
    elif how == "config-truncated":
        cfg.write_text(cfg.read_text()[:40])
    elif how == "config-wrong-type":
        cfg.write_text("[1, 2, 3]")
    elif how == "config-model-bad":
        config = json.loads(cfg.read_text())
        config["model"]["no_such_field"] = 1
        cfg.write_text(json.dumps(config))
    elif how == "config-bad-value":
        config = json.loads(cfg.read_text())
        config["model"]["hidden"] = "wide"
        config["data_dir"] = 7
        cfg.write_text(json.dumps(config))
    elif how == "config-too-large":
        config = json.loads(cfg.read_text())
        config["model"].update(hidden=4096, steps_per_level=64, levels=5)
        cfg.write_text(json.dumps(config))
    elif how == "checkpoint-dir":
        ckpt.unlink()
        ckpt.mkdir()
    elif how == "no-checkpoint":
        ckpt.unlink()
    elif how == "weights-half":
        state = torch.load(ckpt, weights_only=True)
        state["model"] = {k: v.half() if v.is_floating_point() else v
                          for k, v in state["model"].items()}
        torch.save(state, ckpt)
    elif how in DAMAGE:
        state = torch.load(ckpt, weights_only=True)
        DAMAGE[how](state)
        torch.save(state, ckpt)
    elif how in PROGRESS:
        state = torch.load(ckpt, weights_only=True)
        key, value = PROGRESS[how]
        if key == "loss":
            state["history"][0]["loss"] = value
        else:
            state[key] = value
        torch.save(state, ckpt)


PROGRESS = {"epoch-text": ("epoch", "one"), "epoch-negative": ("epoch", -5),
            "history-not-list": ("history", 5), "history-nan": ("loss", float("nan"))}


def _first_weight(state: dict) -> torch.Tensor:
    return next(v for v in state["model"].values() if v.is_floating_point())


def _set_moment(state: dict, value: object) -> None:
    next(iter(state["optimizer"]["state"].values()))["exp_avg"] = value


DAMAGE = {  # checkpoints of a finished step can hold none of these (found by fuzzing)
    "weights-nan": lambda s: _first_weight(s).view(-1).__setitem__(0, float("nan")),
    "optimizer-entry-text": lambda s: s["optimizer"]["state"].__setitem__(0, "x"),
    "optimizer-moment-int": lambda s: _set_moment(s, 5),
    "optimizer-moment-inf": lambda s: _set_moment(s, torch.full((3,), float("inf"))),
}


CORRUPTIONS = {  # how -> (the file the line must name, what it must say)
    "truncated": ("checkpoint.pt", "unreadable checkpoint"),
    "empty": ("checkpoint.pt", "unreadable checkpoint"),
    "json": ("checkpoint.pt", "not a torch checkpoint"),
    "missing-keys": ("checkpoint.pt", "lacks 'epoch'"),
    "other-preset": ("checkpoint.pt", "does not fit the model"),
    "config-truncated": ("config.json", "not valid JSON"),
    "config-wrong-type": ("config.json", "expected a JSON object"),
    "config-model-bad": ("config.json", "unknown field(s) no_such_field"),
    "config-bad-value": ("config.json", "hidden = 'wide' is not valid"),
    "config-too-large": ("config.json", "not a model this package can train or load"),
    "checkpoint-dir": ("checkpoint.pt", "not a regular file"),
    "no-checkpoint": ("checkpoint.pt", "neither checkpoint.pt (a run directory) nor"),
    "epoch-text": ("checkpoint.pt", "'epoch' is 'one', expected a non-negative integer"),
    "epoch-negative": ("checkpoint.pt", "'epoch' is -5"),
    "history-not-list": ("checkpoint.pt", "'history' is int, expected a list"),
    "history-nan": ("checkpoint.pt", "history[0].loss = nan is not a finite number"),
    "weights-half": ("checkpoint.pt", "torch.float16, the model's is torch.float32"),
    "weights-nan": ("checkpoint.pt", "non-finite values in"),
    "optimizer-entry-text": ("checkpoint.pt", "'optimizer' state 0 is not a dict of tensors"),
    "optimizer-moment-int": ("checkpoint.pt", "is not a dict of tensors"),
    "optimizer-moment-inf": ("checkpoint.pt", "non-finite values in exp_avg"),
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupt_run_is_one_line(how: str, tiny_run: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(tiny_run, tmp_path)
    _corrupt(run, how)
    before = (run / "eval.json").exists()
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(run), "--device", "cpu"])
    assert exc.value.code == 1
    line = _err_line(capsys)
    assert line.startswith("python -m flows.evaluate: error: ")
    name, why = CORRUPTIONS[how]
    assert name in line and why in line, line
    assert (run / "eval.json").exists() == before


@pytest.mark.parametrize("how", [*sorted(PROGRESS), *sorted(DAMAGE), "weights-half"])
def test_resume_from_a_corrupt_checkpoint_is_one_line(how: str, tiny_run: Path,
                                                      tiny_data_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The epoch, step, history and weights' dtype of a checkpoint are checked before training
    resumes (a negative epoch used to train at lr 0 and exit 0, a text epoch to end in a
    traceback, half-precision weights to be cast)."""
    run = _copy(tiny_run, tmp_path)
    _corrupt(run, how)
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, run, "--resume", "--epochs", "2"))
    assert exc.value.code == 1
    line = _err_line(capsys)
    assert "checkpoint.pt" in line and CORRUPTIONS[how][1] in line, line


@pytest.mark.parametrize("how", sorted(DAMAGE))
def test_packing_a_damaged_checkpoint_is_one_line(how: str, tiny_run: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``flows.resume_state pack`` checks the checkpoint as ``--resume`` does (a text optimizer
    entry or an integer moment was a traceback; NaN weights made a folder unpack refused)."""
    from flows import resume_state

    run = _copy(tiny_run, tmp_path)
    _corrupt(run, how)
    with pytest.raises(SystemExit) as exc:
        resume_state.main(["pack", "--run", str(run), "--out", str(tmp_path / "state")])
    assert exc.value.code == 1
    assert CORRUPTIONS[how][1] in _err_line(capsys)
    assert not (tmp_path / "state").exists()


def test_evaluate_out_is_never_a_file_of_the_run(tiny_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``--out RUN/config.json`` (or the weights, or the run's eval.json, or a file of another
    model folder) would replace a run's file: refused, exit 2, nothing changed."""
    run = _copy(tiny_run, tmp_path)
    other = tmp_path / "model"  # another model folder
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"w")
    (other / "config.json").write_text("{}")
    before = {p: p.read_bytes() for d in (run, other) for p in d.iterdir() if p.is_file()}
    for out in (run / "config.json", run / "checkpoint.pt", run / "eval.json",
                run / "model.safetensors", other / "config.json", other / "eval.json"):
        with pytest.raises(SystemExit) as exc:
            feval.main(["--run", str(run), "--device", "cpu", "--n-test", "16",
                        "--out", str(out)])
        line = _err_line(capsys)
        assert exc.value.code == 2 and "would replace a file of a run directory" in line
    assert {p: p.read_bytes() for d in (run, other) for p in d.iterdir() if p.is_file()} == before
    copies = tmp_path / "results"  # a folder of copied results is not a run: --out is fine
    copies.mkdir()
    (copies / "config.json").write_text("{}")
    assert feval.main(["--run", str(run), "--device", "cpu", "--n-test", "16", "--draws", "1",
                       "--out", str(copies / "eval.json")]) == 0
    assert (copies / "eval.json").is_file()


@pytest.mark.parametrize("module", ["likelihood_gap", "interpolation", "attacks", "bg_mnist"])
def test_experiment_out_is_never_a_file_of_the_run(module: str, tiny_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """An experiment's ``--out RUN/<a run file>`` would replace the run's config, weights, checksum
    or evaluation: refused before anything is loaded, exit 2, one line, nothing changed."""
    import importlib

    main = importlib.import_module(f"flows.experiments.{module}").main
    run = _copy(tiny_run, tmp_path)
    (run / "model.sha256").write_text("x")  # as in a model folder
    before = {p: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for name in ("config.json", "eval.json", "model.sha256", "checkpoint.pt"):
        with pytest.raises(SystemExit) as exc:
            main(["--run", str(run), "--out", str(run / name), "--n-test", "4", "--draws", "1"])
        line = _err_line(capsys)
        assert exc.value.code == 2 and "would replace a file of a run directory" in line, line
    assert {p: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_smaller_test_split_never_replaces_the_runs_evaluation(
        tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A full evaluation on a data directory whose test split is smaller than the one the run's
    eval.json scored (a toy --data-dir; found by fuzzing) leaves eval.json as it was, says so,
    and still writes --out."""
    run = _copy(tiny_run, tmp_path)
    assert feval.main(["--run", str(run), "--device", "cpu", "--draws", "1"]) == 0
    result = json.loads((run / "eval.json").read_text())
    result["metrics"]["n_test"] = 10000  # as if made on the published test set
    (run / "eval.json").write_text(json.dumps(result))
    before = (run / "eval.json").read_bytes()
    capsys.readouterr()
    out = tmp_path / "small.json"
    assert feval.main(["--run", str(run), "--device", "cpu", "--draws", "1",
                       "--out", str(out)]) == 0
    assert "covers 10000 test images, this evaluation 60; it is left as it was" in \
        capsys.readouterr().err
    assert (run / "eval.json").read_bytes() == before
    assert json.loads(out.read_text())["metrics"]["n_test"] == 60


def test_out_is_never_inside_the_data_the_cache_or_the_images(
        tiny_run: Path, tiny_data_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A result written into the data directory, the score cache or the image folder replaced a
    dataset file, the cache just read or a figure with exit 0 (found by fuzzing): refused before
    any work, one line, exit 2, in flows.evaluate and the experiments."""
    from flows.experiments import likelihood_gap

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    target = data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    before = target.read_bytes()
    cache = tmp_path / "cache"
    cache.mkdir()
    for main, argv in ((feval.main, ["--run", str(tiny_run), "--data-dir", str(data),
                                     "--out", str(target)]),
                       (likelihood_gap.main, ["--run", str(tiny_run), "--data-dir", str(data),
                                              "--out", str(target)]),
                       (likelihood_gap.main, ["--run", str(tiny_run), "--cache-dir", str(cache),
                                              "--out", str(cache / "scores-x.npz")])):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and "write the result elsewhere" in _err_line(capsys)
    assert target.read_bytes() == before and not any(cache.iterdir())


@pytest.mark.parametrize("module", ["interpolation", "attacks"])
def test_a_paper_threshold_the_dataset_lacks_is_refused_before_scoring(
        module: str, tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--threshold paper`` on a dataset the paper gives no threshold for failed only after the
    whole test set was scored, without naming the dataset (found by fuzzing): now one line,
    exit 2, before any scoring."""
    import importlib

    from flows.experiments import scored_runs

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("scored before the threshold rule was checked")

    monkeypatch.setattr(scored_runs, "load_scored_run", never)
    main = importlib.import_module(f"flows.experiments.{module}").main
    with pytest.raises(SystemExit) as exc:
        main(["--run", str(tiny_run), "--out", str(tmp_path / "o.json"), "--dataset",
              "bg-mnist-0", "--threshold", "paper"])
    assert exc.value.code == 2
    assert "no likelihood threshold for bg-mnist-0" in _err_line(capsys)


def test_a_data_dir_from_the_config_that_is_gone_is_named_as_such(
        tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(tiny_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data_dir": str(tmp_path / "gone")}))
    monkeypatch.delenv("ANNULUS_DATA_DIR", raising=False)
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(run), "--device", "cpu"])
    line = _err_line(capsys)
    assert exc.value.code == 1 and "config.json: its data_dir" in line and "--data-dir" in line


def test_evaluate_read_only_run_with_out(tiny_run: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy(tiny_run, tmp_path)
    monkeypatch.setattr(feval, "_dir_writable", lambda d: Path(d) != run)  # root ignores modes
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(run), "--device", "cpu"])
    assert exc.value.code == 2 and "pass --out" in _err_line(capsys)
    out = tmp_path / "res" / "e.json"
    assert feval.main(["--run", str(run), "--device", "cpu", "--n-test", "8", "--draws", "1",
                       "--out", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["n_test"] == 8
    assert not (run / "eval.json").exists()


@pytest.mark.parametrize("argv", [
    ["--out", ""], ["--lr", "nan"], ["--lr", "-1"], ["--lr", "0"], ["--lr", "1e308"],
    ["--batch-size", "0"],
    ["--max-grad-norm", "-1"], ["--train-subset", "-1"], ["--stop-after", "-1"],
    ["--seed", str(2**64)], ["--device", "meta"], ["--device", "cpu:7"], ["--device", "foo"],
    ["--beta", "inf"], ["--epochs", "1e3"], ["--warmup-steps", "-2"], ["--threads", "-1"],
])
def test_train_usage_errors_exit_2(argv: list[str], tiny_data_dir: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    args = _train_args(tiny_data_dir, tmp_path / "r")
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        i = args.index(flag) if flag in args else len(args)
        args[i:i + 2] = [flag, value]
    with pytest.raises(SystemExit) as exc:
        ftrain.main(args)
    assert exc.value.code == 2
    assert argv[0] in _err_line(capsys)
    assert not (tmp_path / "r").exists()


def test_train_refuses_a_model_too_large_before_allocating_it(
        tiny_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, tmp_path / "r", "--hidden", "4096",
                                "--steps-per-level", "64"))
    assert exc.value.code == 2 and "not a model this package" in _err_line(capsys)
    assert not (tmp_path / "r").exists()


def test_resume_without_checkpoint_is_refused(tiny_data_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, tmp_path / "fresh", "--resume"))
    assert exc.value.code == 2 and "no checkpoint" in _err_line(capsys)
    assert not (tmp_path / "fresh").exists()


def test_resuming_a_finished_run_says_so_and_changes_nothing(
        tiny_run: Path, tiny_data_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``--resume`` of a run that has done all its epochs says so in one note and leaves the
    checkpoint and summary as they were (it printed nothing and logged an empty invocation)."""
    run = _copy(tiny_run, tmp_path)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert ftrain.main(_train_args(tiny_data_dir, run, "--resume")) == 0
    assert "has done all 1 epochs; nothing to train" in _err_line(capsys)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_train_subset_beyond_the_data_is_said(tiny_data_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``--train-subset`` larger than the training set trains on all of it, and says so."""
    assert ftrain.main(_train_args(tiny_data_dir, tmp_path / "r", "--train-subset", "1000")) == 0
    err = capsys.readouterr().err
    assert "--train-subset 1000 exceeds the 200 training images; an epoch uses all" in err


def test_a_foreign_config_json_is_never_replaced(tiny_data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """``--out`` a folder holding a ``config.json`` that is not a flows.train config: refused
    (one line, exit 1, the file as it was), as a foreign ``train_summary.json`` already was; it
    was silently replaced by the run's config (found by fuzzing)."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"my": "precious settings"}')
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, out))
    assert exc.value.code == 1
    assert "not a flows.train config: move it away" in _err_line(capsys)
    assert (out / "config.json").read_text() == '{"my": "precious settings"}'
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_out_under_a_file_or_directory_is_refused(tiny_data_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, tmp_path / "f" / "run"))
    assert exc.value.code == 2 and "not a directory" in _err_line(capsys)
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(tmp_path), "--out", str(tmp_path)])
    assert exc.value.code == 2 and "is a directory" in _err_line(capsys)


# -- atomic writes ----------------------------------------------------------------------------
def test_atomic_write_keeps_old_file_on_full_disk(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    atomic.write_json(target, {"a": 1})

    def disk_full(f) -> None:
        f.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic.atomic_write_bytes(target, disk_full)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    with pytest.raises(ValueError, match="result.json.*non-finite"):
        atomic.write_json(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_tmp_files_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / f".checkpoint.pt.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".checkpoint.pt.{os.getpid()}.def456.tmp"
    other = tmp_path / f".eval.json.{_dead_pid()}.x.tmp"
    old_style = tmp_path / ".checkpoint.pt.zz9xk_q.tmp"
    for p in (stale, live, other, old_style):
        p.write_bytes(b"partial")
    os.utime(old_style, (0, 0))
    save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert not stale.exists() and not old_style.exists()
    assert live.exists() and other.exists()  # a live writer's file; another target's file
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True) == {"step": 1}
    assert atomic.clean_stale_tmp(tmp_path) == [other]


def test_savefig_is_atomic(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    for suffix in ("png", "pdf"):
        p = atomic.savefig(fig, tmp_path / f"f.{suffix}", dpi=50)
        assert p.read_bytes()[:4] in (b"\x89PNG", b"%PDF")
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]


# -- last good state --------------------------------------------------------------------------
def test_last_good_is_before_the_update_that_broke_the_parameters(
    tiny_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def exploding_step(self, *args, **kwargs):  # the second update makes a weight infinite
        out = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", exploding_step)
    out = tmp_path / "inf"
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, out, "--train-subset", "128"))
    assert exc.value.code == 1 and "non-finite parameters" in str(exc.value)
    state = torch.load(out / "last_good.pt", weights_only=True)
    assert state["step"] == 1  # after the first update, before the second
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), -float("inf")])
def test_all_finite_sees_one_bad_element_and_not_an_overflowing_norm(bad: float | None) -> None:
    """The finite check reads every element: one inf/NaN among many finite tensors is found, and
    finite tensors whose 2-norm overflows float32 (3e38 per element) still count as finite."""
    tensors = [torch.randn(7, 5) for _ in range(40)] + [torch.full((64,), 3e38), torch.tensor(2.0)]
    assert not torch.isfinite(torch.linalg.vector_norm(tensors[-2]))  # the norm overflows
    if bad is not None:
        tensors[17][3, 2] = bad
    assert bool(all_finite(tensors)) is (bad is None)


def _finite_worker(rank: int, init: str, results: dict) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    value = torch.tensor(float("nan") if rank == 1 else 1.0)
    results[rank] = all_ranks_finite([value], 2)
    dist.destroy_process_group()


@pytest.mark.slow
def test_non_finite_check_is_agreed_across_ranks(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.start_processes(_finite_worker, args=(f"file://{tmp_path / 'rdv'}", results),
                           nprocs=2, start_method="fork")  # fork: no re-import in the children
        assert dict(results) == {0: False, 1: False}  # rank 0 alone saw a finite loss


def test_an_unreadable_file_is_named_once(tmp_path: Path) -> None:
    """``PATH: cannot read: REASON``, the path given as a string or a Path, never twice."""
    missing = tmp_path / "train_summary.json"
    for given in (missing, str(missing)):
        with pytest.raises(RunError) as exc:
            read_summary(given)
        assert str(exc.value) == f"{missing}: cannot read: No such file or directory"
