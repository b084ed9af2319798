"""Model folders: safetensors weights with a verified sha256, packaging, evaluation of a folder,
and the likelihood warm start (``--init-from``)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from flows import evaluate as feval
from flows import lineage as flineage
from flows import package as fpackage
from flows import resume_state as fresume
from flows import train as ftrain
from flows.layout import LINEAGE_NAME
from flows.lineage import trace
from flows.runs import RunError, init_from_run, load_run, load_run_state
from flows.weights import (
    SHA_NAME,
    WEIGHTS_NAME,
    WeightsError,
    load_weights,
    save_weights,
    sha256_file,
)
from foundation.errors import UsageError


def _train_args(data: Path, out: Path, objective: str = "base", *extra: str) -> list[str]:
    return ["--dataset", "mnist", "--objective", objective, "--preset", "tiny",
            "--epochs", "1", "--batch-size", "32", "--train-subset", "64", "--seed", "1",
            "--warmup-steps", "2", "--device", "cpu", "--data-dir", str(data), "--out", str(out),
            *extra]


@pytest.fixture(scope="module")
def base_run(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "base"
    torch.set_num_threads(1)
    assert ftrain.main(_train_args(tiny_data_dir, out)) == 0
    return out


@pytest.fixture(scope="module")
def folder(base_run: Path, tiny_data_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "mnist-base-tiny"
    assert fpackage.main(["--run", str(base_run), "--out", str(out),
                          "--data-dir", str(tiny_data_dir)]) == 0
    return out


def test_save_load_round_trip_and_checksum(tmp_path: Path) -> None:
    state = {"a": torch.randn(3, 4), "flag": torch.tensor(True), "i": torch.arange(5)}
    digest = save_weights(state, tmp_path)
    assert (tmp_path / SHA_NAME).read_text() == f"{digest}  {WEIGHTS_NAME}\n"
    loaded, got = load_weights(tmp_path)
    assert got == digest and set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_flipped_byte_is_refused(tmp_path: Path) -> None:
    save_weights({"w": torch.ones(64)}, tmp_path)
    raw = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
    raw[-3] ^= 0x01  # inside the tensor data: still a valid safetensors file
    (tmp_path / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="does not match the recorded"):
        load_weights(tmp_path)


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="non-finite"):
        save_weights({"w": torch.tensor([1.0, float("nan")])}, tmp_path)
    import hashlib

    from safetensors.torch import save  # written behind save_weights' back, with its checksum
    data = save({"w": torch.tensor([1.0, float("inf")])})
    (tmp_path / WEIGHTS_NAME).write_bytes(data)
    (tmp_path / SHA_NAME).write_text(f"{hashlib.sha256(data).hexdigest()}  {WEIGHTS_NAME}\n")
    with pytest.raises(WeightsError, match="non-finite values in w"):
        load_weights(tmp_path)


def test_package_gives_the_same_model_with_a_portable_config(base_run: Path,
                                                             folder: Path) -> None:
    a, _ = load_run(base_run)
    b, config = load_run(folder)
    assert config["data_dir"] is None and not (folder / "checkpoint.pt").exists()
    x = torch.rand(3, 1, 32, 32) - 0.5
    assert torch.equal(a(x), b(x))
    _, _, state = load_run_state(folder)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    assert state["weights"]["sha256"] == (folder / SHA_NAME).read_text().split()[0]
    ref = json.loads((folder / "reference.json").read_text())
    assert ref["n"] == 60 and len(ref["log_px_given_y"]) == 60 and len(ref["labels"]) == 60


def test_package_refuses_an_unfinished_run(tiny_data_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "part"
    assert ftrain.main(_train_args(tiny_data_dir, run, "base", "--epochs", "2",
                                   "--stop-after", "1")) == 0
    with pytest.raises(SystemExit, match="training not finished"):
        fpackage.main(["--run", str(run), "--out", str(tmp_path / "m")])


def test_package_refuses_a_model_folder_as_its_run(folder: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``--run`` a model folder is named as such (the message named a checkpoint.pt that is not
    there and 'epoch None'; found by fuzzing): one line, exit 2, nothing written."""
    with pytest.raises(SystemExit) as exc:
        fpackage.main(["--run", str(folder), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "a model folder already" in err[0], err
    assert not (tmp_path / "m").exists()


def test_a_failed_package_leaves_the_model_folder_as_it_was(base_run: Path, folder: Path,
                                                           tmp_path: Path) -> None:
    """Without the data (reference scores) nothing in an existing folder changes."""
    m = tmp_path / "m"
    shutil.copytree(folder, m)
    (m / "eval.json").write_text("{}")
    before = {f.name: f.read_bytes() for f in m.iterdir()}
    with pytest.raises(SystemExit) as exc:
        fpackage.main(["--run", str(base_run), "--out", str(m), "--data-dir", str(tmp_path)])
    assert exc.value.code == 1 and "file not found" in str(exc.value)
    assert {f.name: f.read_bytes() for f in m.iterdir()} == before


def test_weights_of_another_precision_are_refused(folder: Path, tmp_path: Path) -> None:
    """Half-precision weights with a matching checksum used to be cast on load, silently moving
    every likelihood; they are refused, naming a tensor and both dtypes."""
    m = tmp_path / "m"
    shutil.copytree(folder, m)
    state, _ = load_weights(m)
    save_weights({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, m)
    with pytest.raises(RunError, match="torch.float16, the model's is torch.float32"):
        load_run_state(m)


def test_package_never_writes_into_a_run_directory_nor_copies_a_bad_summary(
        base_run: Path, tiny_data_dir: Path, tmp_path: Path) -> None:
    """--out holding a checkpoint is another run (exit 2, untouched); a train_summary.json that
    is not a summary of invocations is refused (exit 1) before the folder is written."""
    other = tmp_path / "other"
    shutil.copytree(base_run, other)
    before = {f.name: f.read_bytes() for f in other.iterdir() if f.is_file()}
    with pytest.raises(SystemExit) as exc:
        fpackage.main(["--run", str(base_run), "--out", str(other),
                       "--data-dir", str(tiny_data_dir)])
    assert exc.value.code == 2 and "is a run directory" in str(exc.value)
    assert {f.name: f.read_bytes() for f in other.iterdir() if f.is_file()} == before
    killed = tmp_path / "killed"  # a run killed before its first checkpoint: config and lock
    killed.mkdir()
    (killed / "config.json").write_text("{}")
    (killed / ".lock").write_text("")
    with pytest.raises(SystemExit) as exc:
        fpackage.main(["--run", str(base_run), "--out", str(killed),
                       "--data-dir", str(tiny_data_dir)])
    assert exc.value.code == 2 and (killed / "config.json").read_text() == "{}"
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    for summary in ("[]", '{"invocations": []}', '{"invocations": [{"epochs_done": 1}]}'):
        (run / "train_summary.json").write_text(summary)
        with pytest.raises(SystemExit) as exc:
            fpackage.main(["--run", str(run), "--out", str(tmp_path / "m"),
                           "--data-dir", str(tiny_data_dir)])
        assert exc.value.code == 1 and "not a valid train summary" in str(exc.value)
        assert not (tmp_path / "m").exists()


def test_a_config_whose_dataset_does_not_fit_the_model_is_refused(folder: Path,
                                                                   tiny_data_dir: Path,
                                                                   tmp_path: Path) -> None:
    """config.json naming a dataset of other channels: one line naming the file, before any
    scoring; a model folder without its weights says so."""
    m = tmp_path / "m"
    shutil.copytree(folder, m)
    config = json.loads((m / "config.json").read_text())
    (m / "config.json").write_text(json.dumps({**config, "dataset": "cifar10"}))
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(m), "--draws", "1", "--data-dir", str(tiny_data_dir)])
    assert exc.value.code == 1 and "config.json: dataset 'cifar10' has 3 image channel(s), " \
        "but the model takes 1" in str(exc.value)
    (m / "config.json").write_text(json.dumps(config))
    (m / WEIGHTS_NAME).unlink()
    with pytest.raises(SystemExit, match="neither checkpoint.pt .* nor model.safetensors"):
        feval.main(["--run", str(m), "--draws", "1", "--data-dir", str(tiny_data_dir)])


def test_evaluate_a_model_folder_records_the_weights(folder: Path, tiny_data_dir: Path,
                                                     tmp_path: Path) -> None:
    m = tmp_path / "m"
    shutil.copytree(folder, m)
    assert feval.main(["--run", str(m), "--device", "cpu", "--draws", "1",
                       "--data-dir", str(tiny_data_dir)]) == 0
    full = json.loads((m / "eval.json").read_text())
    assert full["metrics"]["n_test"] == 60
    assert full["weights"] == {"file": WEIGHTS_NAME,
                               "sha256": (m / SHA_NAME).read_text().split()[0]}
    # a partial evaluation leaves the full one in place
    part = tmp_path / "part.json"
    assert feval.main(["--run", str(m), "--device", "cpu", "--draws", "1", "--n-test", "8",
                       "--data-dir", str(tiny_data_dir), "--out", str(part)]) == 0
    assert json.loads(part.read_text())["metrics"]["n_test"] == 8
    assert json.loads((m / "eval.json").read_text()) == full


def test_evaluate_refuses_a_corrupted_folder_before_any_work(
        folder: Path, tiny_data_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    m = tmp_path / "m"
    shutil.copytree(folder, m)
    raw = bytearray((m / WEIGHTS_NAME).read_bytes())
    raw[len(raw) // 2] ^= 0x10
    (m / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(SystemExit) as exc:
        feval.main(["--run", str(m), "--device", "cpu", "--data-dir", str(tiny_data_dir)])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(m / WEIGHTS_NAME) in err[0] and "sha256" in err[0]
    assert not (m / "eval.json").exists()


def test_init_from_loads_the_flow_and_a_prior_of_the_same_kind(folder: Path) -> None:
    src, _ = load_run(folder)
    from flows.config import model_config
    from flows.model import GlowClassifier

    same = GlowClassifier(model_config("tiny", 1, "reweighted"))
    done = init_from_run(same, folder)
    assert done["prior"] == "loaded" and done["weights"]["file"] == WEIGHTS_NAME
    assert all(torch.equal(v, src.state_dict()[k]) for k, v in same.state_dict().items())

    split = GlowClassifier(model_config("tiny", 1, "split"))
    fresh = {k: v.clone() for k, v in split.state_dict().items() if k.startswith("prior.")}
    assert init_from_run(split, folder)["prior"] == "fresh"
    for k, v in split.state_dict().items():
        ref = fresh[k] if k.startswith("prior.") else src.state_dict()[k]
        assert torch.equal(v, ref), k

    shared = GlowClassifier(dataclasses.replace(model_config("tiny", 1, "reweighted"),
                                                gmm_scale="shared"))
    assert init_from_run(shared, folder)["prior"] == "pooled"
    log_std = src.state_dict()["prior.log_std"]
    torch.testing.assert_close(shared.prior.log_std.detach(),
                               0.5 * (2 * log_std).exp().mean(0, keepdim=True).log())
    assert torch.equal(shared.prior.mean, src.prior.mean)

    other = GlowClassifier(model_config("small-mnist", 1, "base"))
    with pytest.raises(UsageError, match="same architecture"):
        init_from_run(other, folder)
    # same tensors, other padding noise: its flow was fitted to the source's padding
    gauss = GlowClassifier(dataclasses.replace(model_config("tiny", 1, "reweighted"),
                                               pad_noise="gaussian"))
    with pytest.raises(UsageError, match="trained with 'uniform'.*pass --pad-noise uniform"):
        init_from_run(gauss, folder)


def test_train_init_from_records_its_source_and_resumes(folder: Path, tiny_data_dir: Path,
                                                        tmp_path: Path) -> None:
    run = tmp_path / "ft"
    args = _train_args(tiny_data_dir, run, "reweighted", "--init-from", str(folder),
                       "--epochs", "2")
    assert ftrain.main([*args, "--stop-after", "1"]) == 0
    init = json.loads((run / "config.json").read_text())["init_from"]
    assert init["prior"] == "loaded"
    assert init["weights"]["sha256"] == (folder / SHA_NAME).read_text().split()[0]
    assert ftrain.main([*args, "--resume"]) == 0
    shared = tmp_path / "shared"
    assert ftrain.main([*_train_args(tiny_data_dir, shared, "reweighted", "--init-from",
                                     str(folder), "--gmm-scale", "shared")]) == 0
    config = json.loads((shared / "config.json").read_text())
    assert config["init_from"]["prior"] == "pooled" and config["model"]["gmm_scale"] == "shared"
    model, _ = load_run(shared)
    assert model.prior.log_std.shape == (1, model.latent_dims)
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    save_weights({k: v + 1 for k, v in load_weights(folder)[0].items()
                  if v.is_floating_point()}, other)
    with pytest.raises(SystemExit, match="not the weights this run started from"):
        ftrain.main([*_train_args(tiny_data_dir, run, "reweighted", "--init-from", str(other),
                                  "--epochs", "2"), "--resume"])


def test_grow_copies_the_steps_and_keeps_the_density(folder: Path, tiny_data_dir: Path,
                                                     tmp_path: Path) -> None:
    """``init_from_run(..., grow=True)`` into a model with more flow steps per level starts with
    the source's log p(x|y) (float64: to rounding; float32: to the rounding of the identity's
    actnorm scale) and records the steps it added; without ``grow`` the deeper model is refused,
    and so is a source with more steps. ``flows.train --grow`` trains from it and records
    ``added_steps``; ``--grow`` without ``--init-from`` is a usage error."""
    from flows.config import model_config
    from flows.model import GlowClassifier

    src, _ = load_run(folder)
    deeper = dataclasses.replace(model_config("tiny", 1, "reweighted"), steps_per_level=3,
                                 first_level_steps=2)
    x = torch.nn.functional.pad(torch.rand(4, 1, 28, 28, dtype=torch.float64) - 0.5, (2,) * 4)
    noise = torch.rand(x.shape, dtype=torch.float64)
    want = src.double()(x, noise=noise)
    grown = GlowClassifier(deeper).double()
    done = init_from_run(grown, folder, grow=True)
    assert done["added_steps"] == [1, 2, 2, 2] and done["prior"] == "loaded"
    assert [len(level) for level in grown.levels] == [2, 3, 3, 3]
    torch.testing.assert_close(grown.eval()(x, noise=noise), want, rtol=1e-13, atol=1e-10)
    grown32 = GlowClassifier(deeper)
    init_from_run(grown32, folder, grow=True)
    torch.testing.assert_close(grown32.eval().double()(x, noise=noise), want, rtol=1e-7, atol=0)
    with pytest.raises(UsageError, match="same architecture"):
        init_from_run(GlowClassifier(deeper), folder)
    run = tmp_path / "grown"
    assert ftrain.main(_train_args(tiny_data_dir, run, "reweighted", "--init-from", str(folder),
                                   "--grow", "--steps-per-level", "3", "--first-level-steps",
                                   "2", "--epochs", "1")) == 0
    assert json.loads((run / "config.json").read_text())["init_from"]["added_steps"] == [1, 2, 2, 2]
    model, _ = load_run(run)  # the grown run loads back with its recorded config
    assert [len(level) for level in model.levels] == [2, 3, 3, 3]
    with pytest.raises(UsageError, match=r"source \[2, 3, 3, 3\], this model \[1, 1, 1, 1\]"):
        init_from_run(GlowClassifier(model_config("tiny", 1, "reweighted")), run, grow=True)
    with pytest.raises(SystemExit) as exc:
        ftrain.main(_train_args(tiny_data_dir, tmp_path / "nogrow", "reweighted", "--grow"))
    assert exc.value.code == 2 and "--grow grows the model of --init-from" in str(exc.value)


def test_package_and_evaluate_record_the_phases_before_the_run(
        tiny_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``lineage.json`` / ``eval.json["lineage"]``: base run -> Eq. (6) run -> model folder ->
    a third phase from the folder, oldest first, each verified by sha256; recorded by the
    warm-started run itself and carried by its resume state and model folder, so it survives the
    runs behind it; a re-trace stops at a phase whose file vanished or changed, saying so.
    Re-packaging keeps ``eval.json`` only for byte-identical weights."""
    base, rw, ft = tmp_path / "base", tmp_path / "rw", tmp_path / "ft"
    m1, m2 = tmp_path / "models" / "rw-folder", tmp_path / "models" / "ft-folder"
    data = ["--data-dir", str(tiny_data_dir)]
    assert ftrain.main(_train_args(tiny_data_dir, base)) == 0
    assert ftrain.main(_train_args(tiny_data_dir, rw, "reweighted", "--init-from", str(base))) == 0
    assert fpackage.main(["--run", str(rw), "--out", str(m1), *data]) == 0
    (first,) = json.loads((m1 / LINEAGE_NAME).read_text())["phases"]
    assert first["run"] == "base" and first["objective"] == "base"
    assert first["weights"] == {"file": "checkpoint.pt",
                                "sha256": sha256_file(base / "checkpoint.pt")}
    assert [h["epoch"] for h in first["history"]] == [1]
    assert [i["epochs_done"] for i in first["invocations"]] == [1]
    assert first["invocations"][0]["command"].startswith("python -m flows.train --dataset mnist")
    # recorded by flows.train at the warm start, copied by flows.package
    assert json.loads((rw / LINEAGE_NAME).read_text())["phases"] == [first]
    assert ftrain.main(_train_args(tiny_data_dir, ft, "reweighted", "--init-from", str(m1),
                                   "--lr", "1e-4")) == 0
    out = tmp_path / "ft-eval.json"
    assert feval.main(["--run", str(ft), "--device", "cpu", "--draws", "1", "--n-test", "8",
                       *data, "--out", str(out)]) == 0
    lineage = json.loads(out.read_text())["lineage"]
    assert [(p["run"], p["objective"]) for p in lineage] == [("base", "base"),
                                                             ("rw-folder", "reweighted")]
    assert lineage[1]["weights"]["sha256"] == (m1 / SHA_NAME).read_text().split()[0]
    with pytest.MonkeyPatch.context() as mp:  # a chain longer than MAX_PHASES says so
        mp.setattr(flineage, "MAX_PHASES", 0)
        assert [(p["run"], p["missing"]) for p in trace(rw)] == [("base", "more than 0 phases")]
    shutil.rmtree(base)
    assert fpackage.main(["--run", str(ft), "--out", str(m2), *data]) == 0
    assert json.loads((m2 / LINEAGE_NAME).read_text())["phases"] == lineage
    assert trace(rw) == [{"run": "base", "path": str(base), "missing":
                          f"checkpoint.pt not found at {base}",
                          "weights": first["weights"]}]  # a re-trace cannot verify it now,
    assert flineage.phases_of(rw) == [first]  # the run's record (made at its start) still can
    # a resume state carries the record
    fresume.pack(ft, tmp_path / "resume")
    fresume.unpack(tmp_path / "resume", tmp_path / "ft-again")
    assert (tmp_path / "ft-again" / LINEAGE_NAME).read_bytes() == (ft / LINEAGE_NAME).read_bytes()
    config = json.loads((ft / "config.json").read_text())
    config["init_from"]["weights"]["sha256"] = "0" * 64
    (ft / "config.json").write_text(json.dumps(config))
    (changed,) = trace(ft)
    assert changed["run"] == "rw-folder" and "not the recorded 000000000000" in changed["missing"]
    no_summary = tmp_path / "models" / "no-summary"
    shutil.copytree(m1, no_summary)
    (no_summary / "train_summary.json").unlink()
    config["init_from"].update(path=str(no_summary), weights=lineage[1]["weights"])
    (ft / "config.json").write_text(json.dumps(config))
    (unreadable,) = trace(ft)
    assert unreadable["run"] == "no-summary" and "train_summary.json" in unreadable["missing"]
    # the CLI: print, --write where there is no record, one line and exit 1 on an unusable run
    before = (m2 / LINEAGE_NAME).read_bytes()
    (m2 / LINEAGE_NAME).unlink()
    assert flineage.main(["--run", str(m2), "--write"]) == 0
    assert (m2 / LINEAGE_NAME).read_bytes() == before
    assert "rw-folder: reweighted on mnist" in capsys.readouterr().out
    for argv, code in ((["--run", str(tmp_path / "models"), "--write"], 2),
                       (["--run", str(tmp_path)], 1), (["--run", str(rw), "--write"], 1)):
        with pytest.raises(SystemExit) as exc:
            flineage.main(argv)
        assert exc.value.code == code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("python -m flows.lineage: error:"), err
    # eval.json survives re-packaging the same weights, not other weights
    assert feval.main(["--run", str(m1), "--device", "cpu", "--draws", "1", *data]) == 0
    assert fpackage.main(["--run", str(rw), "--out", str(m1), *data]) == 0
    assert (m1 / "eval.json").exists()
    assert json.loads((m1 / LINEAGE_NAME).read_text())["phases"] == [first]  # base long gone
    assert fpackage.main(["--run", str(ft), "--out", str(m1), *data]) == 0
    assert not (m1 / "eval.json").exists()


@pytest.mark.parametrize("phases", [
    [{"run": "x"}], [{"run": "x", "weights": "zz", "history": []}],
    [{"run": "x", "weights": {"file": "checkpoint.pt", "sha256": "0" * 64}, "history": [1]}],
    [{"run": "x", "weights": {"file": "checkpoint.pt", "sha256": "0" * 64},
      "history": [{"epoch": 1, "bpd": "abc"}]}],
    [{"run": "x", "missing": 3}], "phases", None,
])
def test_a_malformed_lineage_is_one_line(phases: object, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A ``lineage.json`` that parses but is not a list of phase records is refused in one line
    (exit 1) by the CLI and as a RunError by ``phases_of``, never a traceback nor silently
    re-traced."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / LINEAGE_NAME).write_text(json.dumps({"phases": phases}))
    with pytest.raises(flineage.RunError, match="lineage.json: malformed"):
        flineage.phases_of(folder)
    with pytest.raises(SystemExit) as exc:
        flineage.main(["--run", str(folder)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 1 and len(err) == 1 and "malformed" in err[0], err
