"""foundation.cli, foundation.errors and flows.devices: argument types, one-line errors and exit
statuses shared by every entry point."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

import pytest
import torch

from flows import devices
from foundation import atomic, cli, errors


@pytest.mark.parametrize("parse, good, bad", [
    (cli.positive_int, ["1", " 7", str(2**63 - 1)], ["0", "-1", "1.5", "1e3", "", str(2**63)]),
    (cli.non_negative_int, ["0", "3"], ["-1", "x"]),
    (cli.seed, ["0", str(2**32 - 1)], ["-1", str(2**32), str(2**64)]),
    (cli.positive_float, ["1e-3", "5e-324", "3"], ["0", "-1", "nan", "inf", "-inf", "1e400"]),
    (cli.non_negative_float, ["0", "-0", "2.5"], ["-1e-9", "nan"]),
    (cli.probability, ["0", "1", "0.5"], ["1.01", "-0.1"]),
    (cli.float_range(0, 1, lo_open=True, hi_open=True), ["0.5"], ["0", "1"]),
])
def test_number_types(parse, good: list[str], bad: list[str]) -> None:
    for v in good:
        parse(v)
    for v in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(v).replace("+", r"\+")):
            parse(v)


def test_device_type() -> None:
    assert devices.device("cpu") == devices.device(" cpu:0 ") == "cpu"
    for bad in ("meta", "foo", "cpu:7", "", "mps", "cuda:99"):
        if bad == "cuda:99" and torch.cuda.device_count() > 99:
            continue
        with pytest.raises(argparse.ArgumentTypeError, match="device|CUDA"):
            devices.device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(argparse.ArgumentTypeError, match="CUDA is not available"):
            devices.device("cuda")


def test_path_types(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    assert cli.output_file(str(tmp_path / "new" / "deeper" / "r.json")).name == "r.json"
    assert not (tmp_path / "new").exists()  # nothing is created by a check
    assert cli.output_dir(str(tmp_path / "newdir")) == tmp_path / "newdir"
    cases = [(cli.output_file, "", "empty path"), (cli.output_file, str(tmp_path), "directory"),
             (cli.output_file, str(tmp_path / "f" / "x"), "is not a directory"),
             (cli.output_file, "/proc/annulus/x.json", "cannot write in /proc"),
             *([(cli.output_dir, "/proc/x", "/proc: its file system does not accept new files")]
               if Path("/proc").is_dir() else []),
             (cli.output_dir, str(tmp_path / "f"), "not a directory"),
             (cli.existing_dir, str(tmp_path / "nope"), "does not exist"),
             (cli.existing_dir, str(tmp_path / "f"), "not a directory"),
             (cli.existing_file, str(tmp_path), "not a regular file")]
    for parse, value, why in cases:
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            parse(value)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(argparse.ArgumentTypeError, match="loop|Too many"):
        cli.existing_dir(str(loop))


def test_an_output_file_is_a_regular_file_or_new(tmp_path: Path) -> None:
    """An atomic write replaces the directory entry: a symbolic link would be swapped for a
    file (its target left as it was) and a device or FIFO destroyed, so both are refused."""
    target = tmp_path / "target.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for bad, why in ((link, "symbolic link"), (fifo, "not a regular file")):
        with pytest.raises(argparse.ArgumentTypeError, match=why):
            cli.output_file(str(bad))
        with pytest.raises(OSError, match="not replaced"):
            atomic.write_text(bad, "x")
    assert link.is_symlink() and target.read_text() == "{}" and fifo.is_fifo()
    assert cli.output_file(str(target)) == target  # an existing regular file is fine


def test_guard_statuses_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def make(exc: BaseException):
        @errors.guard("prog")
        def main(argv=None) -> int:
            raise exc

        return main

    cases = [(errors.UsageError("--a and --b\nexclude each other"), 2),
             (errors.CommandError("x.json: broken"), 1),
             (OSError(errno.ENOSPC, "No space left on device", "/r/x.json"), 1)]
    for exc, status in cases:
        with pytest.raises(SystemExit) as info:
            make(exc)()
        assert info.value.code == status
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith("prog: error: ") and err[0] == str(info.value)
    assert "/r/x.json: No space left on device" in str(info.value)
    with pytest.raises(ZeroDivisionError):  # a bug is not disguised as an expected failure
        make(ZeroDivisionError())()
    with pytest.raises(SystemExit) as info:  # Ctrl-C: one line, the shell's status 130
        make(KeyboardInterrupt())()
    assert info.value.code == 130 and capsys.readouterr().err == "prog: interrupted\n"
    p = cli.ArgumentParser(prog="prog")
    p.add_argument("--n", type=cli.positive_int)
    with pytest.raises(SystemExit) as info:
        p.parse_args(["--n", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == ("prog: error: argument --n: expected an integer "
                                               ">= 1, got '0' (see --help)")
