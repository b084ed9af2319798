"""workflow/Snakefile: every stored result has a rule whose command is the one it records, a clone
with everything present plans nothing, and one train -> package -> evaluate chain runs end to end
on the tiny preset (resuming from the checkpoint). Skipped without Snakemake (the optional
``workflow`` extra)."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.config import PRESETS
from flows.train import TrainSettings

pytestmark = pytest.mark.skipif(importlib.util.find_spec("snakemake") is None,
                                reason="snakemake not installed (pip install -e '.[workflow]')")

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
STORED = ("table1", "table3", "attacks", "likelihood_gap", "interpolation", "bg_mnist")


def snakemake(workdir: Path, *args: str, timeout: float = 120) -> str:
    """Run the project's Snakefile in ``workdir``; its output (the run must succeed)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
                           "--directory", str(workdir), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def planned_jobs(text: str) -> list[dict]:
    """The jobs of a dry run (``-n -p``): rule, outputs and shell command of each."""
    jobs: list[dict] = []
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            jobs.append({"rule": m.group(1), "output": [], "shell": None})
        elif jobs and line.startswith("    output: "):
            jobs[-1]["output"] = line[len("    output: "):].split(", ")
        elif jobs and line.startswith("Shell command: "):
            jobs[-1]["shell"] = line[len("Shell command: "):]
    return jobs


def _without_threads(args: list[str]) -> list[str]:
    """The argument list with the value of ``--threads`` blanked: a machine setting of the
    workflow (``--config threads=N``), not part of what is computed."""
    return ["N" if i and args[i - 1] == "--threads" else a for i, a in enumerate(args)]


def same_command(printed: str, recorded: str) -> bool:
    """Equal argument lists, the interpreter and the thread count aside (``python`` vs a path
    to one; ``--threads 1`` vs ``--threads 2``)."""
    a, b = shlex.split(printed), shlex.split(recorded)
    return _without_threads(a[1:]) == _without_threads(b[1:]) \
        and Path(a[0]).name.startswith("python") and Path(b[0]).name.startswith("python")


def test_same_command_ignores_only_the_interpreter_and_the_thread_count() -> None:
    rule = "python -m flows.evaluate --run models/m --threads 1 --out r.json"
    assert same_command(rule, "/x/bin/python3 -m flows.evaluate --run models/m --threads 2 "
                              "--out r.json")
    assert not same_command(rule, "python -m flows.evaluate --run models/m --threads 1 "
                                  "--out other.json")
    assert not same_command(rule, "python -m flows.evaluate --run models/m --draws 1 "
                                  "--out r.json")


def stored_results(root: Path) -> dict[str, str]:
    """``results/EXP/NAME.json`` -> the command recorded in it, for every stored result."""
    out = {}
    for exp in STORED:
        for f in sorted((root / "results" / exp).glob("*.json")):
            d = json.loads(f.read_text())
            cmd = d.get("command") or (d.get("provenance") or {}).get("command")
            assert cmd, f"{f}: no recorded command"
            out[f.relative_to(root).as_posix()] = cmd
    return out


def test_every_stored_result_has_a_rule_with_its_recorded_command(tmp_path: Path) -> None:
    stored = stored_results(REPO)
    assert any(k.startswith("results/table1/") for k in stored)
    text = snakemake(tmp_path, "-n", "-p", "--forceall", "--", *stored)
    by_output = {o: j for j in planned_jobs(text) for o in j["output"]}
    for path, recorded in stored.items():
        assert path in by_output, f"no rule makes {path}"
        printed = by_output[path]["shell"]
        assert same_command(printed, recorded), f"{path}:\n  rule: {printed}\n  made: {recorded}"
    # the chain behind them: trainings resume from the checkpoint, models are packaged
    train = next(j for j in planned_jobs(text) if j["rule"] == "train")
    assert "--resume; else" in train["shell"] and "--out ~/annulus-runs/" in train["shell"]


def _flags(tokens: list[str]) -> dict[str, str]:
    """``--flag value`` pairs of a command line; a flag without a value (``--grow``) maps to
    ``""``."""
    out: dict[str, str] = {}
    for i, tok in enumerate(tokens):
        if tok.startswith("--"):
            has_value = i + 1 < len(tokens) and not tokens[i + 1].startswith("--")
            out[tok] = tokens[i + 1] if has_value else ""
    return out


def test_every_shipped_model_was_trained_as_its_rule_says(tmp_path: Path) -> None:
    """The training command the Snakefile declares for each shipped model (its last phase)
    agrees with the model's recorded config: dataset, objective, preset, epochs, batch, seed,
    peak rate, padding, mixture and split prior options and the model it started from (its folder
    name, and for a shipped warm start the sha256 of the weights it ships); and so does every
    earlier phase that a shipped model's ``lineage.json`` records."""
    shipped = sorted(p.parent.name for p in (REPO / "models").glob("*/config.json"))
    assert len(shipped) == 9
    targets = [f"models/{m}/model.safetensors" for m in shipped]
    text = snakemake(tmp_path, "-n", "-p", "--forceall", "--", *targets)
    earlier = {p["run"]: p for m in shipped for p in json.loads(
        (REPO / "models" / m / "lineage.json").read_text())["phases"] if "missing" not in p}
    checked = set()
    for job in (j for j in planned_jobs(text) if j["rule"] == "train"):
        cmd = shlex.split(job["shell"].split("; else ", 1)[1].removesuffix("; fi"))
        name = Path(cmd[cmd.index("--out") + 1]).name
        args = _flags(cmd[3:])
        if name in earlier:  # a recorded earlier phase (lineage.json) of a shipped model
            p = earlier[name]
            assert (p["dataset"], p["objective"], p["preset"], p["epochs"], p["batch_size"],
                    p["seed"], p["lr"]) == (
                args["--dataset"], args["--objective"], args["--preset"], int(args["--epochs"]),
                int(args["--batch-size"]), int(args["--seed"]),
                float(args.get("--lr", TrainSettings.lr))), name
            checked.add(name)
        if name not in shipped:
            continue  # a warm start that is not shipped: checked above when recorded
        config = json.loads((REPO / "models" / name / "config.json").read_text())
        model = {"gmm_scale": "per-class", "gmm_class_latent": "all", "split_class_latent": "all",
                 **config["model"]}
        assert (config["dataset"], config["objective"], config["preset"], config["epochs"],
                config["batch_size"], config["seed"], config["lr"]) == (
            args["--dataset"], args["--objective"], args["--preset"], int(args["--epochs"]),
            int(args["--batch-size"]), int(args["--seed"]),
            float(args.get("--lr", TrainSettings.lr))), name
        assert model["pad_noise"] == args["--pad-noise"], name
        assert model["gmm_scale"] == args.get("--gmm-scale", "per-class"), name
        assert model["gmm_class_latent"] == args.get("--gmm-class-latent", "all"), name
        assert model["split_class_latent"] == args.get("--split-class-latent", "all"), name
        preset = PRESETS[args["--preset"]]
        assert (model["hidden"], model["steps_per_level"], model["first_level_steps"]) == (
            int(args.get("--hidden", preset.hidden)),
            int(args.get("--steps-per-level", preset.steps_per_level)),
            int(args.get("--first-level-steps", preset.first_level_steps))), name
        assert ("added_steps" in (config["init_from"] or {})) == ("--grow" in args), name
        init = config["init_from"]
        assert (Path(init["path"]).name if init else None) == (
            Path(args["--init-from"]).name if "--init-from" in args else None), name
        if init and init["path"].startswith("models/"):  # a shipped warm start: the same weights
            shipped_sha = (REPO / init["path"] / "model.sha256").read_text().split()[0]
            assert init["weights"]["sha256"] == shipped_sha, (
                f"{name} started from other weights than {init['path']} ships now")
    assert checked == set(earlier), set(earlier) - checked  # every recorded phase has a rule


def _clone(tmp: Path, git: bool) -> Path:
    """models/ and results/ of the repository with arbitrary times, as a clone has them
    (committed to a new git repository when ``git``)."""
    rng = random.Random(0)
    for sub in ("models", "results"):
        shutil.copytree(REPO / sub, tmp / sub,
                        ignore=shutil.ignore_patterns("figures", "superseded", "*.png"))
    if git:
        for args in (["init", "-q"], ["add", "models", "results"],
                     ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
            subprocess.run(["git", *args], cwd=tmp, check=True, capture_output=True)
    for f in [*tmp.rglob("*")]:
        if f.is_file() and ".git" not in f.parts:
            t = rng.uniform(1e8, 1.7e9)
            os.utime(f, (t, t))
    return tmp


def _planned(workdir: Path) -> list[dict]:
    text = snakemake(workdir, "-n", "-p", "--config", f"runs={workdir / 'runs'}")
    return [j for j in planned_jobs(text) if j["rule"] != "all"]


@pytest.mark.parametrize("git", [False, True])
def test_a_clone_with_everything_present_plans_nothing(tmp_path: Path, git: bool) -> None:
    """No training, packaging or evaluation is planned; only results missing from results/
    (e.g. experiments being re-run) are."""
    if git and shutil.which("git") is None:
        pytest.skip("no git")
    jobs = _planned(_clone(tmp_path, git))
    assert not [j for j in jobs if j["rule"] in ("train", "package", "evaluate")], jobs
    missing = [j for j in jobs if not any((tmp_path / o).exists() for o in j["output"])]
    for j in jobs:  # an existing output is re-made only by the summary of a missing result
        if j not in missing:
            assert j["rule"] == "summary" and missing, j


@pytest.mark.skipif(shutil.which("git") is None, reason="no git")
def test_a_model_changed_here_outdates_its_results(tmp_path: Path) -> None:
    """A model that differs from its committed version (retrained here) is compared by time:
    its evaluation is planned again, no other."""
    work = _clone(tmp_path, git=True)
    weights = work / "models" / "mnist-split-cpu" / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")
    jobs = _planned(work)
    evals = [j["output"] for j in jobs if j["rule"] == "evaluate"]
    assert evals == [["results/table1/mnist-split-cpu.json"]]
    assert not [j for j in jobs if j["rule"] in ("train", "package")]


@pytest.mark.slow
def test_train_package_evaluate_end_to_end_and_resume(tmp_path: Path, tiny_data_dir: Path
                                                      ) -> None:
    work, runs = tmp_path / "work", tmp_path / "runs"
    config = ["--config", f"data={tiny_data_dir}", f"runs={runs}", f"python={sys.executable}",
              "train_preset=tiny", "train_epochs=1"]
    target = "results/table1/mnist-base-cpu.json"
    plan = planned_jobs(snakemake(work, "-n", "-p", *config, "--", target))
    assert [j["rule"] for j in plan] == ["train", "package", "evaluate"]
    snakemake(work, "--cores", "1", *config, "--", target)
    result = json.loads((work / target).read_text())
    assert same_command(plan[-1]["shell"], result["command"])
    assert (work / "models" / "mnist-base-cpu" / "model.safetensors").is_file()
    assert (runs / "mnist-base-cpu" / "checkpoint.pt").is_file()
    assert "Nothing to be done" in snakemake(work, "-n", *config, "--", target)

    # an interrupted training: the checkpoint is there, its marker (the rule's output) is not;
    # the training runs again with --resume (a fresh run would refuse to overwrite it); here the
    # checkpoint had done its epochs, so the resumed training says so and logs no invocation
    (runs / "mnist-base-cpu" / "train.done").unlink()
    shutil.rmtree(work / "models" / "mnist-base-cpu")
    before = (runs / "mnist-base-cpu" / "train_summary.json").read_bytes()
    text = snakemake(work, "--cores", "1", "-p", *config, "--",
                     "models/mnist-base-cpu/model.safetensors")
    assert "has done all 1 epochs; nothing to train" in text, text[-2000:]  # --resume's note
    assert (runs / "mnist-base-cpu" / "train_summary.json").read_bytes() == before
    assert (runs / "mnist-base-cpu" / "train.done").is_file()
    assert (work / "models" / "mnist-base-cpu" / "model.safetensors").is_file()
