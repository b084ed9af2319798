"""``python -m annulus.verify``: exit codes, one-line errors, JSON keys."""

import json
import subprocess
import sys
import time

import mpmath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annulus.verify import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "annulus.verify", *args],
                          capture_output=True, text=True, timeout=120)


def test_default_command_certifies_and_prints_report() -> None:
    res = _run("--eps", "0.1", "--delta", "1e-3")
    assert res.returncode == 0, res.stderr
    assert "CERTIFIED" in res.stdout and "Errata" in res.stdout and "Sampling" in res.stdout
    assert res.stderr == ""


def test_json_has_documented_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--eps", "0.1", "--delta", "1e-3", "--json", "--samples", "2000"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("eps", "delta", "Delta", "dimension", "lambda1", "lambda2",
                "minimal_dimension", "kl", "lemma_bounds", "attack_probability",
                "properties", "errata", "certified", "sampling"):
        assert key in out
    assert set(out["minimal_dimension"]) == {"sufficient_conditions", "closed_form",
                                             "with_lambda1_below_third", "exact"}
    assert set(out["kl"]) == {"q_p_joint", "p_q_joint", "q_p_class0", "p_q_class0"}
    assert set(out["lemma_bounds"]) == {"lemma2", "lemma3"}
    assert {p["id"] for p in out["properties"]} == {"1", "2", "3", "4", "5", "6", "7"}
    for p in out["properties"]:
        assert set(p) >= {"id", "statement", "holds", "value", "bound"}
        assert p["holds"] is True  # a JSON boolean, not a string
    for e in out["errata"]:
        assert set(e) >= {"where", "paper_says", "correct_statement"}
    assert out["certified"] is True and out["dimension"] == 201
    assert set(out["sampling"]) >= {"n", "dimension", "success_rate", "ci99",
                                    "exact_probability", "kl_estimates", "seconds"}


def test_too_small_dimension_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--eps", "0.1", "--delta", "1e-3", "--dim", "150", "--samples", "0"]) == 1
    assert "NOT CERTIFIED" in capsys.readouterr().out


def test_dimension_one_is_reported_not_certified(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--eps", "0.1", "--delta", "1e-3", "--dim", "1", "--samples", "500"]) == 1
    assert "NOT CERTIFIED" in capsys.readouterr().out


def test_sampling_budget_guard(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--eps", "0.1", "--delta", "1e-3", "--sample-dim", "100000000",
                 "--samples", "1000"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--samples" in err


def test_huge_dimension_and_tiny_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--eps", "1e-12", "--delta", "1e-12", "--Delta", "0.01", "--samples", "0",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["certified"]
    assert main(["--eps", "0.1", "--delta", "1e-3", "--dim", "1000000", "--samples", "0"]) == 0


def test_exit_status_follows_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    """0 certified, 3 the properties hold but the claim does not, 1 not certified; the last
    line of the report is the verdict."""
    for argv, code, head in ((["--Delta", "1.5"], 3, "PROPERTIES HOLD, CLAIM FAILS"),
                             (["--Delta", "5"], 1, "NOT CERTIFIED"),
                             (["--dim", "1e12"], 0, "CERTIFIED")):
        assert main(["--eps", "0.1", "--delta", "1e-3", "--samples", "0", *argv]) == code
        assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith(head + ":")


def test_json_digits_at_huge_dimension(capsys: pytest.CaptureFixture[str]) -> None:
    """At d = 10^12, KL(q(x|0)||p(x|0)) = lambda1 (1 + O(lambda1)) - O(b): both print alike to
    17 digits, the 17-digit rounding of the exact 30-digit lambda1 (the values are not
    rounded to float precision first)."""
    main(["--eps", "0.1", "--delta", "1e-3", "--dim", "1e12", "--samples", "0", "--json"])
    out = json.loads(capsys.readouterr().out)
    exact = mpmath.mpf(out["lambda1_decimal"])
    with mpmath.mp.workdps(40):
        assert out["kl"]["q_p_class0"] == out["lambda1"] == mpmath.nstr(
            mpmath.mpf(out["lambda1_decimal"]), 17)
    assert exact > 0 and out["verdict"] == "certified" and out["exit_status"] == 0


BAD = [
    ["--eps", "abc", "--delta", "0.1"],
    ["--eps", "nan", "--delta", "0.1"],
    ["--eps", "inf", "--delta", "0.1"],
    ["--eps", "0", "--delta", "0.1"],
    ["--eps", "-1", "--delta", "0.1"],
    ["--eps", "0.1", "--delta", "0.5"],
    ["--eps", "0.1", "--delta", "0"],
    ["--eps", "0.1", "--delta", "0.7"],
    ["--eps", "0.1", "--delta", "0.1", "--Delta", "0"],
    ["--eps", "0.1", "--delta", "0.1", "--Delta", "-0.1"],
    ["--eps", "0.1", "--delta", "0.1", "--dim", "0"],
    ["--eps", "0.1", "--delta", "0.1", "--dim", "2.5"],
    ["--eps", "0.1", "--delta", "0.1", "--lambda1", "1.5"],
    ["--eps", "0.1", "--delta", "0.1", "--lambda1", "1"],
    ["--eps", "0.1", "--delta", "0.1", "--precision", "x"],
    ["--eps", "0.1", "--delta", "0.1", "--samples", "-3"],
    ["--eps", "0.1", "--delta", "0.1", "--Delta", "1e400", "--samples", "10"],
    ["--eps", "0.1", "--delta", "0.1", "--dim", "1e401"],
    ["--eps", "0.1", "--delta", "0.1", "--Delta", "1e-1000"],
    ["--eps", "1e1001", "--delta", "0.1"],
    ["--eps", "0.1", "--delta", "0.1", "--sample-dim", "١٢"],
    ["--eps", "0.1"],
    ["--eps", "0.1", "--delta", "0.1", "--save", "."],  # a directory: refused before any work
    ["--eps", "0.1", "--delta", "0.1", "--samples", "0", "--save", "x.npz"],  # nothing to save
]


@pytest.mark.parametrize("argv", BAD)
def test_bad_input_exits_2_with_one_line(argv: list[str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: a malformed argument
        code = exc.code
    assert code == 2  # also returned: a computation too large to start
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err


def test_bad_input_subprocess_has_no_traceback() -> None:
    res = _run("--eps", "nan", "--delta", "1e-3")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr


NASTY = ["nan", "inf", "-inf", "-0", "0", "1e400", "1e-400", "1e1001", "9" * 60, "١٢", "１",
         "", " ", "0x10", "1_0", "1/0", "3/7", "1e-300", "1e300", "-1", "0.5", "1", "2",
         "0.1", "1e-3", "1e-12", "0.49", "1e12", "201", "1e0000000000099"]
FLAGS = ["--eps", "--delta", "--Delta", "--dim", "--lambda1", "--precision", "--samples",
         "--sample-dim", "--seed", "--max-memory"]
values = st.one_of(st.sampled_from(NASTY), st.text(max_size=8))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.sampled_from(FLAGS), values), max_size=5),
       as_json=st.booleans())
def test_fuzz_argument_vectors_no_traceback(pairs: list[tuple[str, str]], as_json: bool,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Any argument vector: an exit status 0-3, one stderr line on 2, no exception, < 30 s."""
    argv = ["--eps", "0.1", "--delta", "1e-3", "--samples", "0"]
    for flag, value in pairs:
        argv += [flag, value] if not value.startswith("-") else [f"{flag}={value}"]
    if as_json:
        argv.append("--json")
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code in (0, 1, 2, 3), (argv, code)
    if code == 2:
        assert err.count("\n") == 1 and "error" in err, (argv, err)
    else:
        assert err == "" and out, argv
    assert elapsed < 30, (argv, elapsed)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=12))
def test_arbitrary_text_for_eps_never_crashes(text: str) -> None:
    try:
        code = main(["--eps", text, "--delta", "1e-3", "--samples", "0", "--json"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        assert code in (0, 1, 3)


def test_a_failed_save_is_one_line_and_exit_1(tmp_path, monkeypatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Writing ``--save`` can fail after the work (a full disk): that is not a usage error
    (exit 1, one line, no file), as a bad ``--save`` path given up front is (exit 2)."""
    import errno

    from annulus import attack

    def full_disk(*_args: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(attack, "save_demo", full_disk)
    out = tmp_path / "x.npz"
    assert main(["--eps", "0.1", "--delta", "0.1", "--samples", "200", "--save", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and not out.exists()
