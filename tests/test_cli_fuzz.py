"""Property-based CLI test over every entry point (hypothesis).

Each example builds an argument vector from valid and invalid numbers, devices and paths and runs
the entry point in-process, in an environment where every *valid* vector fails fast at run time
(an empty data directory, a run directory with a corrupt checkpoint, an empty results directory),
so no example trains or scores anything. It fails on

* any exception other than ``SystemExit`` (a traceback), or a ``Traceback`` on stderr;
* an invalid number, device or path that is not answered with exit status 2 (in particular an
  exit 0), or a valid vector answered with 2 by the entry points of ``flows`` and
  ``paper_figures`` (whose runtime failures must be 1);
* an error that is not exactly one line ``PROG: error: ...`` on stderr;
* a file created or changed in the environment by a failing command, or an example that runs
  longer than 20 s (a hang).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# -- the oracle: what each kind of argument accepts --------------------------------------------
Kind = tuple  # ("int", lo, hi) | ("float", lo, hi, lo_open)
POS_INT: Kind = ("int", 1, 2**63 - 1)
NONNEG_INT: Kind = ("int", 0, 2**63 - 1)
SEED: Kind = ("int", 0, 2**32 - 1)
COUNT: Kind = ("int", 1, 10**7)
COUNT0: Kind = ("int", 0, 10**7)
POS_FLOAT: Kind = ("float", 0.0, None, True)
NONNEG_FLOAT: Kind = ("float", 0.0, None, False)
UNIT_FLOAT: Kind = ("float", 0.0, 1.0, False)


def valid(kind: Kind, token: str) -> bool:
    """Whether ``token`` is a valid value of ``kind`` (independent of the code under test)."""
    if kind[0] == "int":
        try:
            n = int(token.strip(), 10)
        except ValueError:
            return False
        return kind[1] <= n <= kind[2]
    try:
        x = float(token.strip())
    except ValueError:
        return False
    lo, hi, lo_open = kind[1], kind[2], kind[3]
    if not math.isfinite(x) or (x <= lo if lo_open else x < lo):
        return False
    return hi is None or x <= hi


DEVICES = ["cpu", "cpu:0", "cuda", "cuda:0", "cuda:3", "meta", "foo", "cpu:7", "", "mps", "CPU"]


def device_valid(token: str) -> bool:
    if token in ("cpu", "cpu:0"):
        return True
    if token in ("cuda", "cuda:0"):
        return torch.cuda.is_available()
    if token == "cuda:3":
        return torch.cuda.device_count() > 3
    return False


NUMBER_TOKENS = ["0", "1", "2", "7", "-1", "-0", "+3", "1.5", "0.5", "1e-3", "1e3", "nan", "NaN",
                 "inf", "-inf", "1e400", "-1e400", "abc", "", " ", "1_000", str(2**32),
                 str(2**32 - 1), str(2**63), str(2**64), "2**64", "0x10", "10000001", "3.0"]
numbers = st.one_of(
    st.sampled_from(NUMBER_TOKENS),
    st.integers(-10, 2**65).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


# -- the environment ---------------------------------------------------------------------------
@dataclass
class Env:
    root: Path
    empty: Path  # an existing empty directory (no dataset files, no results)
    corrupt_run: Path  # config.json of a tiny model, checkpoint.pt truncated
    a_file: Path  # a regular file
    paths: dict[str, tuple[str, bool]]  # name -> (token, valid as an output file)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    from flows.config import model_config

    root = tmp_path_factory.mktemp("fuzz")
    empty = root / "empty"
    empty.mkdir()
    run = root / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({
        "dataset": "mnist", "objective": "reweighted", "preset": "tiny", "seed": 0,
        "model": model_config("tiny", 1, "reweighted").to_dict()}))
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    a_file = root / "a_file"
    a_file.write_text("x")
    paths = {"ok": (str(root / "new" / "out.json"), True), "dir": (str(empty), False),
             "under-file": (str(a_file / "x.json"), False), "empty": ("", False),
             "proc": ("/proc/annulus-fuzz/x.json", False)}
    return Env(root, empty, run, a_file, paths)


def _tree(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*")}


class Hang(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Hang("example ran longer than 20 s")


def run_cli(main: Callable[[list[str]], int | None], argv: list[str]) -> tuple[int, str]:
    """Run ``main(argv)`` in-process: (exit status, stderr). Any other exception propagates."""
    err, out = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
                if not isinstance(exc.code, int) and exc.code is not None:
                    print(exc.code, file=sys.stderr)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        torch.set_num_threads(threads)
    return (0 if rc is None else int(rc)), err.getvalue()


def check(prog: str, rc: int, err: str, invalid: list[str], strict_runtime: bool,
          runtime_line: bool = True) -> None:
    """The properties of one run (see the module docstring); ``runtime_line``: exit 1 must come
    with exactly one ``PROG: error:`` line (``paper_figures`` reports per item instead)."""
    assert "Traceback" not in err, err
    if invalid:
        assert rc == 2, f"exit {rc} with invalid {invalid}: {err!r}"
    elif strict_runtime:
        assert rc in (0, 1), f"valid vector answered with exit {rc}: {err!r}"
    if rc == 2 or (rc != 0 and runtime_line):
        lines = [ln for ln in err.splitlines() if f"{prog}: error:" in ln]
        assert len(lines) == 1, err
        if rc == 2:
            assert [ln for ln in err.splitlines() if ln.strip()] == lines, err


# -- entry points ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    module: str
    prog: str
    numeric: dict[str, Kind]
    base: Callable[[Env], list[str]]
    out_flag: str | None = "--out"  # an output-file flag to fuzz, if any
    strict_runtime: bool = True  # valid vectors must exit 1 (not 2)

    def main(self) -> Callable[[list[str]], int | None]:
        return importlib.import_module(self.module).main


TRAIN = Entry("flows.train", "python -m flows.train", {
    "--epochs": POS_INT, "--batch-size": POS_INT, "--seed": SEED, "--lr": POS_FLOAT,
    "--warmup-steps": NONNEG_INT, "--max-grad-norm": POS_FLOAT, "--beta": NONNEG_FLOAT,
    "--train-subset": NONNEG_INT, "--bg-seed": SEED, "--stop-after": NONNEG_INT,
}, lambda e: ["--dataset", "mnist", "--objective", "reweighted", "--preset", "tiny",
              "--data-dir", str(e.empty), "--out", str(e.root / "train-out")], out_flag=None)
EVALUATE = Entry("flows.evaluate", "python -m flows.evaluate", {
    "--batch-size": POS_INT, "--n-test": NONNEG_INT, "--draws": ("int", 1, 1000), "--seed": SEED,
}, lambda e: ["--run", str(e.corrupt_run), "--data-dir", str(e.empty)])

_EXP_COMMON = {"--seed": SEED, "--n-test": COUNT, "--draws": ("int", 1, 1024),
               "--batch-size": ("int", 1, 100000)}


def _exp_base(e: Env) -> list[str]:
    return ["--run", str(e.corrupt_run), "--data-dir", str(e.empty)]


def _experiment(name: str, extra: dict[str, Kind]) -> Entry:
    return Entry(f"flows.experiments.{name}", f"python -m flows.experiments.{name}",
                 _EXP_COMMON | extra, _exp_base, strict_runtime=False)


EXPERIMENTS = [
    _experiment("likelihood_gap", {}),
    _experiment("attacks", {
        "--n-images": COUNT, "--cw-steps": COUNT, "--cw-binary-steps": ("int", 1, 100),
        "--cw-initial-const": POS_FLOAT, "--cw-stepsize": POS_FLOAT, "--det-weight": POS_FLOAT,
        "--boundary-steps": COUNT, "--boundary-window": COUNT, "--boundary-rtol": UNIT_FLOAT,
        "--boundary-min-steps": COUNT0, "--boundary-record-every": COUNT, "--eps": POS_FLOAT}),
    _experiment("interpolation", {"--n-pairs": COUNT, "--n-alphas": ("int", 3, 10001),
                                  "--n-examples": COUNT0}),
    _experiment("bg_mnist", {"--samples-per-class": ("int", 1, 10000),
                             "--temperature": POS_FLOAT, "--n-pairs": COUNT0,
                             "--n-alphas": ("int", 3, 10001)}),
]


@st.composite
def vectors(draw: st.DrawFn, entry: Entry, env: Env) -> tuple[list[str], list[str]]:
    """(argv, the invalid arguments in it)."""
    argv = list(entry.base(env))
    invalid: list[str] = []
    flags = draw(st.lists(st.sampled_from(sorted(entry.numeric)), min_size=1, max_size=4,
                          unique=True))
    for flag in flags:
        token = draw(numbers)
        argv.append(f"{flag}={token}")
        if not valid(entry.numeric[flag], token):
            invalid.append(f"{flag}={token!r}")
    if draw(st.booleans()):
        token = draw(st.sampled_from(DEVICES))
        argv.append(f"--device={token}")
        if not device_valid(token):
            invalid.append(f"--device={token!r}")
    if entry.out_flag and draw(st.booleans()):
        name = draw(st.sampled_from(sorted(env.paths)))
        token, ok = env.paths[name]
        argv.append(f"{entry.out_flag}={token}")
        if not ok:
            invalid.append(f"{entry.out_flag}={name}")
    elif entry.out_flag:
        argv.append(f"{entry.out_flag}={env.paths['ok'][0]}")
    return argv, invalid


FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
FUZZ_FIGS = settings(FUZZ, max_examples=20)


def _fuzz(entry: Entry, env: Env, data: st.DataObject) -> None:
    argv, invalid = data.draw(vectors(entry, env), label="argv")
    before = _tree(env.root)
    rc, err = run_cli(entry.main(), argv)
    check(entry.prog, rc, err, invalid, entry.strict_runtime)
    if rc != 0:
        assert _tree(env.root) == before, f"{argv} changed the environment"


@FUZZ
@given(data=st.data())
def test_fuzz_train(env: Env, data: st.DataObject) -> None:
    _fuzz(TRAIN, env, data)


@FUZZ
@given(data=st.data())
def test_fuzz_evaluate(env: Env, data: st.DataObject) -> None:
    _fuzz(EVALUATE, env, data)


@pytest.mark.parametrize("entry", EXPERIMENTS, ids=[e.module.rsplit(".", 1)[1]
                                                     for e in EXPERIMENTS])
@FUZZ
@given(data=st.data())
def test_fuzz_experiments(entry: Entry, env: Env, data: st.DataObject) -> None:
    _fuzz(entry, env, data)


# -- paper_figures and summarize: no numbers; paths, item names, junk ------------------------
FIG_ITEMS_WITH_INPUTS = ["table1", "table2", "table3", "fig1", "fig3", "fig4", "fig5", "fig6"]


@FUZZ_FIGS
@given(data=st.data())
def test_fuzz_paper_figures(env: Env, data: st.DataObject) -> None:
    from paper_figures.__main__ import main

    argv, invalid = ["--results", str(env.empty)], []
    out = data.draw(st.sampled_from(["ok-dir", "file", "empty", "proc", "under-file"]))
    tokens = {"ok-dir": str(env.root / "figs"), "file": str(env.a_file), "empty": "",
              "proc": "/proc/annulus-fuzz", "under-file": str(env.a_file / "figs")}
    argv.append(f"--out={tokens[out]}")
    if out != "ok-dir":
        invalid.append(f"--out={out}")
    for name in data.draw(st.lists(st.sampled_from([*FIG_ITEMS_WITH_INPUTS, "fig99", ""]),
                                   min_size=1, max_size=3)):
        argv.append(f"--only={name}")
        if name not in FIG_ITEMS_WITH_INPUTS:
            invalid.append(f"--only={name!r}")
    if data.draw(st.booleans()):
        res = data.draw(st.sampled_from(["file", "empty"]))
        argv.append(f"--results={str(env.a_file) if res == 'file' else ''}")
        invalid.append(f"--results={res}")
    if data.draw(st.booleans()):
        junk = data.draw(st.sampled_from(["--bogus", "positional", "--only", "--recompute=1"]))
        argv.append(junk)
        invalid.append(junk)
    before = _tree(env.root)
    rc, err = run_cli(main, argv)
    check("python -m paper_figures", rc, err, invalid, strict_runtime=True, runtime_line=False)
    assert rc == 1 or invalid, err  # every requested input is missing here
    assert _tree(env.root) == before


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("results")
    cases = {}
    for name, text in {"truncated": '{"dataset": "mni', "empty-object": "{}",
                       "nan": '{"dataset": "mnist", "accuracy": NaN}', "list": "[1]"}.items():
        for sub in ("likelihood_gap", "attacks", "interpolation"):
            d = root / name / sub
            d.mkdir(parents=True)
            (d / "x.json").write_text(text)
        cases[name] = root / name
    return cases


@FUZZ
@given(data=st.data())
def test_fuzz_summarize(bad_results: dict[str, Path], data: st.DataObject) -> None:
    from paper_figures.summary import main

    name = data.draw(st.sampled_from(sorted(bad_results)))
    rc, err = run_cli(main, ["--results", str(bad_results[name])])
    assert "Traceback" not in err and rc == 1, (name, rc, err)
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "x.json" in lines[0], err


def test_oracle_sanity() -> None:
    """The oracle itself: a few known answers (so that a broken oracle cannot pass silently)."""
    assert valid(POS_FLOAT, "1e-3") and not valid(POS_FLOAT, "0") and not valid(POS_FLOAT, "nan")
    assert not valid(POS_FLOAT, "1e400") and valid(NONNEG_FLOAT, "-0")
    assert valid(SEED, str(2**32 - 1)) and not valid(SEED, str(2**32)) and not valid(SEED, "-1")
    assert not valid(POS_INT, "1.5") and not valid(POS_INT, "2**64") and valid(POS_INT, "1_000")
    assert device_valid("cpu") and not device_valid("meta") and not device_valid("cpu:7")
