"""A run's resume state packed into a pickle-free folder and unpacked again continues the run
exactly (``flows.resume_state``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from flows import resume_state
from flows import train as ftrain


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--dataset", "mnist", "--objective", "reweighted", "--preset", "tiny",
            "--epochs", "2", "--batch-size", "32", "--train-subset", "64", "--seed", "3",
            "--warmup-steps", "2", "--device", "cpu", "--data-dir", str(data), "--out", str(out),
            *extra]


def test_pack_unpack_resumes_bit_identically(tiny_data_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Run 1 of 2 epochs, pack, unpack elsewhere, resume both: the same final weights and
    optimizer state as the uninterrupted run; no pickle in the folder (nor a lineage.json left
    from an earlier pack of another run); a tampered tensor file,
    a second unpack into the same run directory and packing a run into itself are refused."""
    full, part = tmp_path / "full", tmp_path / "part"
    assert ftrain.main(_args(tiny_data_dir, full)) == 0
    assert ftrain.main(_args(tiny_data_dir, part, "--stop-after", "1")) == 0
    folder, moved = tmp_path / "resume", tmp_path / "moved"
    folder.mkdir()  # as if packed before from a warm-started run: its lineage is not part's
    (folder / "lineage.json").write_text('{"phases": []}')
    assert resume_state.main(["pack", "--run", str(part), "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == [
        "resume.json", "resume.safetensors", "train_summary.json"]
    assert json.loads((folder / "resume.json").read_text())["epoch"] == 1
    assert resume_state.main(["unpack", "--from", str(folder), "--out", str(moved)]) == 0
    assert "epoch 1, step 2" in capsys.readouterr().out
    assert (moved / "config.json").read_text() == (part / "config.json").read_text()
    assert ftrain.main(_args(tiny_data_dir, moved, "--resume")) == 0
    want = torch.load(full / "checkpoint.pt", weights_only=True)
    got = torch.load(moved / "checkpoint.pt", weights_only=True)
    assert want["model"].keys() == got["model"].keys()
    assert all(torch.equal(want["model"][k], got["model"][k]) for k in want["model"])
    for i, entries in want["optimizer"]["state"].items():
        assert all(torch.equal(v, got["optimizer"]["state"][i][k]) for k, v in entries.items())
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert [h["loss"] for h in got["history"]] == [h["loss"] for h in want["history"]]

    with pytest.raises(SystemExit) as exc:  # moved now holds a checkpoint
        resume_state.main(["unpack", "--from", str(folder), "--out", str(moved)])
    assert exc.value.code == 2 and "holds checkpoint.pt" in capsys.readouterr().err
    data = bytearray((folder / "resume.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "resume.safetensors").write_bytes(bytes(data))
    with pytest.raises(SystemExit) as exc:
        resume_state.main(["unpack", "--from", str(folder), "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 1 and len(err) == 1 and "not the tensors" in err[0]
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as exc:
        resume_state.main(["pack", "--run", str(part), "--out", str(part)])
    assert exc.value.code == 2


def test_bad_states_are_refused_before_anything_is_written(
        tiny_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A resume.json whose epoch, step, history or config is unusable (the tensors' sha256 does
    not cover them), model tensors of another dtype, a checkpoint with a non-finite history, and
    an --out that is a model folder or a run directory: one line, non-zero exit, nothing
    written."""
    run, folder = tmp_path / "run", tmp_path / "resume"
    assert ftrain.main(_args(tiny_data_dir, run, "--epochs", "1")) == 0
    assert resume_state.main(["pack", "--run", str(run), "--out", str(folder)]) == 0
    capsys.readouterr()
    good = json.loads((folder / "resume.json").read_text())

    def one_line_error(argv: list[str], code: int) -> str:
        with pytest.raises(SystemExit) as exc:
            resume_state.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == code and len(err) == 1 and "Traceback" not in err[0], err
        return err[0]

    for key, value, why in (("epoch", "one", "'epoch' is 'one'"), ("step", -3, "'step' is -3"),
                            ("history", 5, "expected a list"),
                            ("history", [{"loss": "x"}], "history[0].loss"),
                            ("config", None, "'config'")):
        (folder / "resume.json").write_text(json.dumps({**good, key: value}))
        out = tmp_path / f"out-{key}"
        assert why in one_line_error(["unpack", "--from", str(folder), "--out", str(out)], 1)
        assert not out.exists()
    (folder / "resume.json").write_text(json.dumps(good))
    model_folder = tmp_path / "model"
    model_folder.mkdir()
    (model_folder / "model.safetensors").write_bytes(b"weights")
    assert "model.safetensors" in one_line_error(
        ["unpack", "--from", str(folder), "--out", str(model_folder)], 2)
    assert sorted(p.name for p in model_folder.iterdir()) == ["model.safetensors"]
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "checkpoint.pt").write_bytes(b"state")
    assert "checkpoint.pt" in one_line_error(["pack", "--run", str(run), "--out", str(other)], 2)
    assert sorted(p.name for p in other.iterdir()) == ["checkpoint.pt"]

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    half = {**state, "model": {k: v.half() if v.is_floating_point() else v
                               for k, v in state["model"].items()}}
    torch.save(half, run / "checkpoint.pt")  # packs (no model is built), but never unpacks
    assert resume_state.main(["pack", "--run", str(run), "--out", str(tmp_path / "half")]) == 0
    assert "torch.float16, the model's is torch.float32" in one_line_error(
        ["unpack", "--from", str(tmp_path / "half"), "--out", str(tmp_path / "h")], 1)
    assert not (tmp_path / "h").exists()
    state["history"][0]["loss"] = float("nan")
    torch.save(state, run / "checkpoint.pt")
    assert "not a finite number" in one_line_error(
        ["pack", "--run", str(run), "--out", str(tmp_path / "nan")], 1)
    assert not (tmp_path / "nan").exists()


def test_a_summary_of_another_run_is_never_mixed_in(
        tiny_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """pack and unpack refuse a train_summary.json that is not the checkpoint's run's (an
    unfinished run's state with a finished run's summary unpacked into a run that said it was
    done), and flows.package refuses to write a model folder over a resume folder (it replaced
    the folder's summary); all one line, nothing written (found by fuzzing)."""
    from flows import package

    part, done = tmp_path / "part", tmp_path / "done"
    assert ftrain.main(_args(tiny_data_dir, part, "--stop-after", "1")) == 0
    assert ftrain.main(_args(tiny_data_dir, done, "--seed", "4")) == 0
    folder = tmp_path / "resume"
    assert resume_state.main(["pack", "--run", str(part), "--out", str(folder)]) == 0
    summary = (folder / "train_summary.json").read_bytes()
    capsys.readouterr()

    def one_line_error(main, argv: list[str], code: int) -> str:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == code and len(err) == 1 and "Traceback" not in err[0], err
        return err[0]

    assert "is a resume folder" in one_line_error(
        package.main, ["--run", str(done), "--out", str(folder), "--data-dir",
                       str(tiny_data_dir)], 2)
    assert (folder / "train_summary.json").read_bytes() == summary
    (folder / "train_summary.json").write_bytes((done / "train_summary.json").read_bytes())
    assert "different runs" in one_line_error(
        resume_state.main, ["unpack", "--from", str(folder), "--out", str(tmp_path / "u")], 1)
    assert not (tmp_path / "u").exists()
    (part / "train_summary.json").write_bytes((done / "train_summary.json").read_bytes())
    assert "different runs" in one_line_error(
        resume_state.main, ["pack", "--run", str(part), "--out", str(tmp_path / "p")], 1)
    assert not (tmp_path / "p").exists()


RESUME = Path(__file__).resolve().parents[2] / "resume"
COMMITTED = sorted(p for p in RESUME.glob("*") if p.is_dir())


@pytest.mark.parametrize("folder", COMMITTED, ids=[p.name for p in COMMITTED])
def test_a_committed_resume_state_unpacks_into_an_unfinished_run(folder: Path,
                                                                 tmp_path: Path) -> None:
    """Every state in ``resume/`` unpacks (tensors against their sha256, the state checked), is
    a run not yet finished, and its lineage ends in the weights the run started from."""
    state = resume_state.unpack(folder, tmp_path / "run")
    assert state["epoch"] < state["config"]["epochs"]
    init = state["config"].get("init_from")
    if (folder / "lineage.json").exists():
        phases = json.loads((folder / "lineage.json").read_text())["phases"]
        assert init is not None and phases[-1]["weights"] == init["weights"]


def test_resume_readme_names_exactly_the_committed_states() -> None:
    """``resume/README.md`` describes each committed state (a bullet naming its folder) and says
    "None at present" exactly when there is none, so a stale or missing entry fails here."""
    readme = (RESUME / "README.md").read_text()
    described = set(re.findall(r"^\* \*\*`([^`]+)`\*\*", readme, flags=re.M))
    assert described == {p.name for p in COMMITTED}
    assert ("None at present" in readme) == (not COMMITTED)
