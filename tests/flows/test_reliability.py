"""Issue 19: every config field validated on load, one writer per run (an OS lock released when
its holder dies), theory caches with a fingerprint, outputs that honour the umask, no temporaries
left behind."""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from flows import evaluate as feval
from flows import train as ftrain
from flows.config import model_config
from flows.experiments import likelihood_gap
from flows.runs import RunError, build_model, read_config, save_checkpoint
from foundation import atomic, runlock
from paper_figures import theory

REPO = Path(__file__).resolve().parents[2]
SHA = "0" * 64


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


# -- outputs honour the umask -----------------------------------------------------------------
@pytest.fixture
def umask() -> Iterator[None]:
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_honour_the_umask(mask: int, mode: int, tmp_path: Path, umask) -> None:
    os.umask(mask)
    assert atomic.current_umask() == mask
    for path in (atomic.write_json(tmp_path / "a.json", {"a": 1}),
                 atomic.write_bytes(tmp_path / "sub" / "b.bin", b"x")):
        assert path.stat().st_mode & 0o777 == mode
    atomic.write_json(tmp_path / "a.json", {"a": 2})  # a replaced file too
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "sub"]  # no temporaries


def test_figure_build_removes_temporaries_of_a_killed_build(tmp_path: Path) -> None:
    from paper_figures.__main__ import main

    out = tmp_path / "figs"
    out.mkdir()
    dead = _dead_pid()
    stale = [out / f".fig3_likelihood_gap.png.{dead}.k2j.tmp",
             tmp_path / "results" / "theory" / f".kl_vs_d.json.{dead}.x1.tmp"]
    stale[1].parent.mkdir(parents=True)
    live = out / f".table1.md.{os.getpid()}.zz.tmp"  # a live writer's: kept
    for p in (*stale, live):
        p.write_bytes(b"partial")
    main(["--only", "table1", "--results", str(tmp_path / "results"), "--out", str(out)])
    assert not any(p.exists() for p in stale) and live.exists()


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


# -- one writer per run -----------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    from foundation import runlock
    runlock.acquire(sys.argv[1], sys.argv[2])
    print("locked", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def holder():
    """``holder(lock, target) -> Popen``: another process that holds ``lock`` until killed."""
    procs: list[subprocess.Popen] = []

    def start(lock: Path, target: Path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(target)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _train_args(out: Path, data: Path) -> list[str]:
    return ["--dataset", "mnist", "--objective", "reweighted", "--preset", "tiny", "--epochs",
            "1", "--batch-size", "32", "--train-subset", "64", "--warmup-steps", "1", "--device",
            "cpu", "--data-dir", str(data), "--out", str(out)]


def test_second_trainer_is_refused_naming_the_holder(holder, tmp_path: Path, tiny_data_dir: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    p = holder(runlock.dir_lock_path(out), out)
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(out, tiny_data_dir))
    assert exc.value.code == 1 and time.perf_counter() - t0 < 5  # at start, before any work
    line = _err_line(capsys)
    assert line.startswith("python -m flows.train: error: ") and f"pid {p.pid}" in line
    assert str(out) in line
    assert sorted(f.name for f in out.iterdir()) == [".lock"]  # nothing written
    assert runlock.holder(runlock.dir_lock_path(out)) == p.pid


def test_second_experiment_writing_the_same_file_is_refused(holder, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    res = tmp_path / "res" / "gap.json"
    p = holder(runlock.file_lock_path(res), res)
    with pytest.raises(SystemExit) as exc:
        likelihood_gap.main(["--run", str(tmp_path), "--out", str(res)])
    assert exc.value.code == 1
    line = _err_line(capsys)
    assert line.startswith("python -m flows.experiments.likelihood_gap: error: ")
    assert f"pid {p.pid}" in line and "gap.json" in line
    assert not res.exists()


def test_lock_is_released_when_its_holder_is_killed(holder, tmp_path: Path) -> None:
    lock = runlock.dir_lock_path(tmp_path / "run")
    p = holder(lock, tmp_path / "run")
    assert runlock.holder(lock) == p.pid
    with pytest.raises(runlock.LockHeld) as exc:
        runlock.acquire(lock)
    assert exc.value.pid == p.pid
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert lock.exists()  # left behind by kill -9, but nobody holds it
    assert runlock.holder(lock) is None
    with runlock.hold(lock):
        assert lock.read_text().split("\n")[0] == str(os.getpid())
        assert runlock.holder(lock) == os.getpid()
    assert not lock.exists()  # a holder that ends normally removes it


def test_lock_of_a_failed_start_leaves_no_directory(tmp_path: Path) -> None:
    run = tmp_path / "new" / "run"
    with pytest.raises(RuntimeError), runlock.hold(runlock.dir_lock_path(run)):
        assert run.is_dir()
        raise RuntimeError("failed before writing anything")
    assert not (tmp_path / "new").exists()
    assert list(tmp_path.iterdir()) == []


# -- every field of config.json validated on load ---------------------------------------------
def _config(**over) -> dict:
    cfg = {"dataset": "mnist", "objective": "reweighted", "preset": "tiny", "epochs": 1,
           "batch_size": 32, "seed": 0, "lr": 1e-3, "lr_schedule": "anneal", "warmup_steps": 1,
           "max_grad_norm": 500.0, "beta": 1.0, "train_subset": 64, "augment": True,
           "bg_seed": 0, "world_size": 1,
           "fast_path": {"bf16_coupling": False, "channels_last": False, "compile": False},
           "data_dir": None, "model": model_config("tiny", 1, "reweighted").to_dict(),
           "init_from": None}
    return cfg | over


def _run(tmp_path: Path, cfg: dict) -> Path:
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps(cfg))  # NaN written as JSON's NaN extension
    torch.manual_seed(0)
    save_checkpoint(run / "checkpoint.pt", {"model": build_model(cfg).state_dict(), "epoch": 1,
                                            "history": []})
    return run


def test_what_train_writes_is_a_valid_config(tiny_data_dir: Path, tmp_path: Path) -> None:
    args = ftrain.build_parser().parse_args(_train_args(tmp_path / "r", tiny_data_dir))
    cfg = ftrain.make_config(ftrain.TrainSettings.from_args(args), 1,
                             {"bf16_coupling": True, "channels_last": True, "compile": False})
    cfg["init_from"] = {"path": "~/annulus-runs/x", "weights": {"file": "model.safetensors",
                                                               "sha256": SHA}, "prior": "fresh"}
    run = tmp_path / "ok"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg))
    assert read_config(run) == cfg
    old = {k: v for k, v in cfg.items() if k in ("dataset", "model", "preset", "epochs")}
    (run / "config.json").write_text(json.dumps(old | {"amp": "auto", "compile": False,
                                                       "lr_schedule": "/10 at 40% and 80%"}))
    assert read_config(run)["epochs"] == 1  # an older config: fields missing, legacy fields


BAD_FIELDS = {
    "lr": [math.nan, math.inf, 0.0, -1e-3, "1e-3", True], "epochs": [0, 1.5, "2", None],
    "batch_size": [0, -3], "seed": [-1, 2**32, 1.0], "lr_schedule": ["", 3],
    "warmup_steps": [-1], "max_grad_norm": [0, math.nan], "beta": [-0.5, math.inf],
    "train_subset": [-1], "augment": [1, "yes"], "bg_seed": [-1, 0.5], "world_size": [0],
    "fast_path": [{"bf16_coupling": 1}, {"turbo": True}, []], "data_dir": [3],
    "dataset": ["imagenet", None], "objective": ["ce"], "preset": ["huge", 1],
    "init_from": [{"path": "x"}, {"path": "x", "weights": {"file": "m", "sha256": "abc"},
                                  "prior": "loaded"}, "x"],
}


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, vs in BAD_FIELDS.items() for v in vs])
def test_every_config_field_is_checked(field: str, value, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(_config(**{field: value})))
    with pytest.raises(RunError) as exc:
        read_config(run)
    msg = str(exc.value)
    assert str(run / "config.json") in msg and repr(field) in msg and "\n" not in msg


def test_nan_lr_is_refused_before_any_scoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, _config(lr=math.nan))

    def no_scoring(*a, **k):
        raise AssertionError("the test set was scored")

    monkeypatch.setattr(feval.scoring, "score_images", no_scoring)
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(run), "--device", "cpu"])
    assert exc.value.code == 1
    line = _err_line(capsys)
    assert line == (f"python -m flows.evaluate: error: {run / 'config.json'}: 'lr' is nan, "
                    "expected a finite number > 0")
    assert not (run / "eval.json").exists()
    with pytest.raises(SystemExit) as exc:
        likelihood_gap.main(["--run", str(run), "--out", str(tmp_path / "gap.json")])
    assert exc.value.code == 1
    assert "'lr' is nan" in _err_line(capsys) and not (tmp_path / "gap.json").exists()


# -- theory caches carry a fingerprint ----------------------------------------------------------
def test_stale_theory_cache_is_detected_and_recomputed(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[int] = []

    def compute(n: int = 1) -> dict:
        calls.append(n)
        return {"figure": "x", "rows": list(range(n))}

    path = tmp_path / "theory" / "x.json"
    assert theory.cached(path, compute)["rows"] == [0]
    stored = json.loads(path.read_text())
    assert stored["fingerprint"] == theory.fingerprint(compute)
    assert theory.cached(path, compute)["rows"] == [0] and calls == [1]  # up to date: read
    capsys.readouterr()
    other = functools.partial(compute, n=2)  # other parameters: stale
    assert theory.cached(path, other)["rows"] == [0, 1] and calls == [1, 2]
    err = capsys.readouterr().err
    assert f"{path}: STALE theory cache" in err and "recomputing" in err
    path.write_text(json.dumps({"figure": "x", "rows": [9]}))  # a cache without a fingerprint
    assert theory.cached(path, compute)["rows"] == [0] and calls == [1, 2, 1]
    assert "no fingerprint" in capsys.readouterr().err


def test_fingerprint_follows_code_and_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    fp = theory.fingerprint(theory.compute_kl_vs_d)
    md = theory.fingerprint(theory.compute_min_dimension)
    assert "paper_figures.theory.kl_row" in fp["code"] and "annulus/*.py" in fp["code"]
    monkeypatch.setattr(theory, "MIN_DIM_PAIRS", (("0.1", "1e-3"),))
    assert theory.fingerprint(theory.compute_kl_vs_d) == fp  # it does not read MIN_DIM_PAIRS
    assert theory.fingerprint(theory.compute_min_dimension)["sha256"] != md["sha256"]
    changed = theory.fingerprint(functools.partial(theory.compute_kl_vs_d, n=5))
    assert changed["sha256"] != fp["sha256"]


@pytest.mark.parametrize("command", ["summarize", "baselines", "paper_figures"])
def test_table_and_figure_builders_have_one_writer(command: str, holder, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from flows import baselines
    from paper_figures import summary as summarize
    from paper_figures.__main__ import main as figures_main

    if command == "summarize":
        out = tmp_path / "summary.md"
        lock, call = runlock.file_lock_path(out), lambda: summarize.main(
            ["--results", str(tmp_path), "--out", str(out)])
    elif command == "baselines":
        out = tmp_path / "baselines" / "mnist.json"
        lock, call = runlock.file_lock_path(out), lambda: baselines.main(
            ["--dataset", "mnist", "--out-dir", str(out.parent)])
    else:
        out = tmp_path / "figures"
        lock, call = runlock.dir_lock_path(out), lambda: figures_main(
            ["--results", str(tmp_path), "--out", str(out), "--only", "table1"])
    p = holder(lock, out)
    try:
        code = call()
    except SystemExit as exc:
        code = exc.code
    assert code == 1
    line = _err_line(capsys)
    assert "error: " in line and f"pid {p.pid}" in line
    assert not out.exists() or out.is_dir() and sorted(f.name for f in out.iterdir()) == [".lock"]
