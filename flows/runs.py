"""Run directories (``config.json``, ``checkpoint.pt`` (atomic), ``eval.json``) and model folders
(``config.json``, ``model.safetensors`` + ``model.sha256``: :mod:`flows.weights`).

Checkpoints are read with ``torch.load(..., weights_only=True)`` only (:func:`load_checkpoint`):
a file that carries pickled objects other than tensors and plain containers is refused, so
loading a checkpoint never runs code. Every problem with a run directory (missing, truncated,
empty or non-torch checkpoint, missing keys, a checkpoint of another preset, an unreadable or
wrongly typed ``config.json``) raises :class:`RunError`, whose one-line message names the file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

import torch

from flows.config import OBJECTIVES, PRESETS, ModelConfig
from flows.data import DATASETS, num_channels
from flows.layout import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    EVAL_NAME,
    LAST_GOOD_NAME,
    SUMMARY_NAME,
    WEIGHTS_NAME,
)
from flows.model import GlowClassifier
from flows.priors import GaussianMixturePrior
from flows.schedule import SCHEDULES
from flows.weights import (
    load_weights,
    non_finite_tensors,
    sha256_file,
)
from foundation.atomic import atomic_write_bytes
from foundation.cli import MAX_INT, MAX_SEED
from foundation.errors import CommandError, UsageError, one_line, reason

__all__ = [
    "CHECKPOINT_NAME", "CONFIG_NAME", "EVAL_NAME", "LAST_GOOD_NAME", "RunError",
    "RunNotFoundError", "SUMMARY_NAME", "WEIGHTS_NAME", "build_model", "init_from_run",
    "checkpoint_problem", "config_problem", "dtype_problem", "history_problem",
    "load_checkpoint", "load_run", "load_run_state", "read_config", "read_summary",
    "save_checkpoint",
]

CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "step", "history", "config")
"""What :func:`flows.train.train` stores in a checkpoint."""


class RunError(CommandError):
    """A run directory, its config or its checkpoint is unusable (the message names the file)."""


class RunNotFoundError(RunError, FileNotFoundError):
    """The run directory, ``config.json`` or the checkpoint does not exist."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """``torch.save(state)`` atomically (see :mod:`foundation.atomic`)."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def _check_dir(run_dir: str | Path) -> Path:
    d = Path(run_dir)
    if not str(run_dir).strip():
        raise RunError("empty run directory path")
    try:
        exists, is_dir = d.exists(), d.is_dir()
    except OSError as exc:
        raise RunError(f"{d}: {one_line(exc)}") from None
    if not exists:
        raise RunNotFoundError(f"{d}: run directory not found")
    if not is_dir:
        raise RunError(f"{d}: not a directory (expected a flows run directory)")
    return d


def read_config(run_dir: str | Path) -> dict:
    """The run's ``config.json`` as a dict, checked before any work: a JSON object with a usable
    ``model`` and valid top-level fields (:data:`CONFIG_FIELDS`: type, range, finite)."""
    path = _check_dir(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise RunNotFoundError(f"{path}: not found (is {run_dir} a flows run directory?)")
    try:
        config = json.loads(path.read_text())
    except OSError as exc:
        raise RunError(f"{path}: cannot read: {reason(exc)}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON (truncated or corrupt): {one_line(exc)}") from None
    if why := config_problem(config):
        raise RunError(f"{path}: {why}")
    return config


def config_problem(config: Any) -> str | None:
    """What is wrong with a run's config (:func:`read_config`'s checks), or ``None``."""
    if not isinstance(config, dict):
        return f"expected a JSON object, got {type(config).__name__}"
    model = config.get("model")
    if not isinstance(model, dict):
        return "no 'model' object (the architecture of the run)"
    problem = model_section_problem(model)
    if problem:
        return f"'model' does not describe a flows model: {problem}"
    return config_field_problem(config) or channels_problem(config.get("dataset"), model)


def channels_problem(dataset: Any, model: dict) -> str | None:
    """A dataset whose images have other channels than the model takes (``None``: they fit,
    or the dataset is not named)."""
    if dataset not in DATASETS:
        return None
    wanted = num_channels(dataset)
    has = model.get("in_channels", ModelConfig.in_channels)
    if has != wanted:
        return (f"dataset {dataset!r} has {wanted} image channel(s), but the model takes "
                f"{has} (model.in_channels)")
    return None


def _is_int(v: Any, lo: int, hi: int = MAX_INT) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_num(v: Any, lo: float, lo_open: bool) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (v > lo if lo_open else v >= lo))


def _shown(value: Any, width: int = 80) -> str:
    """``repr(value)`` cut to ``width`` characters, for one-line messages."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def history_problem(history: Any) -> str | None:
    """What is wrong with a training history (a list of per-epoch records of finite numbers),
    or ``None``."""
    if not isinstance(history, list):
        return f"'history' is {type(history).__name__}, expected a list of per-epoch records"
    for i, record in enumerate(history):
        if not isinstance(record, dict):
            return f"history[{i}] is {type(record).__name__}, expected an object"
        bad = [k for k, v in record.items() if not _is_num(v, -math.inf, True)]
        if bad:
            key = str(bad[0])[:40]
            return f"history[{i}].{key} = {_shown(record[bad[0]])} is not a finite number"
    return None


def checkpoint_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with the progress entries of a training checkpoint (``epoch``, ``step``,
    ``history``, ``config``, ``optimizer``, where present), or ``None``."""
    for key in ("epoch", "step"):
        if key in state and not _is_int(state[key], 0):
            return f"'{key}' is {_shown(state[key])}, expected a non-negative integer"
    if "history" in state and (why := history_problem(state["history"])):
        return why
    if "config" in state and (why := config_problem(state["config"])):
        return f"'config': {why}"
    if "optimizer" in state:
        opt = state["optimizer"]
        if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict)
                and isinstance(opt.get("param_groups"), list)):
            return "'optimizer' is not an optimizer state dict ('state' and 'param_groups')"
    return None


def read_summary(path: str | Path) -> dict[str, Any]:
    """``train_summary.json`` (one entry per ``flows.train`` invocation), checked: an object with
    an ``invocations`` list, each entry with ``epochs_done``, a ``history`` and a ``command``.
    Raises :class:`RunError` naming ``path``."""
    def refuse(why: str) -> RunError:
        return RunError(f"{path}: not a valid train summary: {why}")

    def no_constant(name: str) -> NoReturn:
        raise ValueError(f"non-finite number {name}")

    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: cannot read: {reason(exc)}") from None
    try:
        summary = json.loads(text, parse_constant=no_constant)
    except ValueError as exc:
        raise refuse(one_line(exc)) from None
    invocations = summary.get("invocations") if isinstance(summary, dict) else None
    if not isinstance(invocations, list) or not invocations:
        raise refuse("expected a JSON object with a non-empty 'invocations' list")
    for i, entry in enumerate(invocations):
        if not isinstance(entry, dict):
            raise refuse(f"invocations[{i}] is not an object")
        if not _is_int(entry.get("epochs_done"), 0):
            raise refuse(f"invocations[{i}].epochs_done is {_shown(entry.get('epochs_done'))}")
        if not isinstance(entry.get("command"), str):
            raise refuse(f"invocations[{i}] has no command")
        if why := history_problem(entry.get("history")):
            raise refuse(f"invocations[{i}]: {why}")
    return summary


def _fast_path_ok(v: Any) -> bool:
    return isinstance(v, dict) and set(v) <= FAST_PATH_KEYS and all(
        isinstance(x, bool) for x in v.values())


INIT_PRIORS = ("loaded", "pooled", "broadcast", "fresh")  # how init_from_run set the prior


def _init_from_ok(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, dict) or not isinstance(v.get("path"), str):
        return False
    w = v.get("weights")
    return (isinstance(w, dict) and isinstance(w.get("file"), str)
            and isinstance(w.get("sha256"), str) and len(w["sha256"]) == 64
            and all(c in "0123456789abcdef" for c in w["sha256"])
            and v.get("prior") in INIT_PRIORS
            and _added_steps_ok(v.get("added_steps")))


def _added_steps_ok(v: Any) -> bool:
    """``init_from.added_steps``: absent, or the new flow steps per level of a grown model."""
    return v is None or (isinstance(v, list) and 1 <= len(v) <= 8
                         and all(_is_int(n, 0) for n in v))


FAST_PATH_KEYS = {"bf16_coupling", "channels_last", "compile"}
CONFIG_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "objective": (lambda v: v in OBJECTIVES, f"one of {', '.join(OBJECTIVES)}"),
    "preset": (lambda v: v in PRESETS, f"one of {', '.join(PRESETS)}"),
    "epochs": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "batch_size": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "seed": (lambda v: _is_int(v, 0, MAX_SEED), "an integer in [0, 2**32 - 1]"),
    "lr": (lambda v: _is_num(v, 0.0, True), "a finite number > 0"),
    # a schedule name; runs of older versions recorded a description (a non-empty string)
    "lr_schedule": (lambda v: isinstance(v, str) and v.strip() != "",
                    f"one of {', '.join(SCHEDULES)}"),
    "warmup_steps": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "max_grad_norm": (lambda v: _is_num(v, 0.0, True), "a finite number > 0"),
    "beta": (lambda v: _is_num(v, 0.0, False), "a finite number >= 0"),
    "ce_ramp_steps": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "train_subset": (lambda v: _is_int(v, 0), "an integer >= 0"),
    "augment": (lambda v: isinstance(v, bool), "true or false"),
    "bg_seed": (lambda v: v is None or _is_int(v, 0, MAX_SEED),
                "null or an integer in [0, 2**32 - 1]"),
    "world_size": (lambda v: _is_int(v, 1), "an integer >= 1"),
    "fast_path": (_fast_path_ok, f"an object of true/false {', '.join(sorted(FAST_PATH_KEYS))}"),
    "data_dir": (lambda v: v is None or isinstance(v, str), "null or a path (string)"),
    "init_from": (_init_from_ok, "null or an object with path, weights {file, sha256} and "
                  f"prior ({', '.join(INIT_PRIORS)})"),
    # fields of older versions
    "amp": (lambda v: v in ("auto", "none", "bf16"), "auto, none or bf16"),
    "compile": (lambda v: isinstance(v, bool) or v in ("auto", "on", "off"),
                "true, false, auto, on or off"),
}
"""The top-level fields of a run's ``config.json`` (as :func:`flows.train.make_config` writes
them) and what each must be. A field may be missing (older runs lack some); a present one must
be valid. Other fields are ignored."""


def config_field_problem(config: dict) -> str | None:
    """What is wrong with the top-level fields of a run config (``None`` when nothing is)."""
    for key, (ok, expected) in CONFIG_FIELDS.items():
        if key in config and not ok(config[key]):
            return f"{key!r} is {_shown(config[key])}, expected {expected}"
    return None


MODEL_LIMITS = {"in_channels": (1, 3), "num_classes": (1, 1000), "hidden": (1, 4096),
                "steps_per_level": (1, 64), "first_level_steps": (-1, 64), "levels": (1, 8),
                "image_size": (4, 256)}
"""Plausible ranges of the integer fields of a model section (a wrong one is refused before any
tensor is allocated)."""
MAX_COUPLING_WEIGHTS = 5e8
"""Largest ``hidden ** 2 x (flow steps)`` accepted: the paper's CIFAR-10 model has 4.2e6, a
model over this would need gigabytes for its weights and Adam state alone."""


def model_section_problem(model: dict) -> str | None:
    """What is wrong with a config's ``model`` section (``None`` when it is a usable one)."""
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(model) - set(fields))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    for name, value in model.items():
        default = fields[name].default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            lo, hi = MODEL_LIMITS.get(name, (0, 2**31))
            ok = isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
        elif isinstance(default, float):
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and math.isfinite(value) and value > 0)
        else:
            ok = isinstance(value, str) and (name != "prior" or value in ("gmm", "split"))
        if not ok:
            return f"{name} = {_shown(value)} is not valid"
    get = {name: model.get(name, f.default) for name, f in fields.items()}.__getitem__
    first = get("first_level_steps")
    steps = (first if first >= 0 else get("steps_per_level")) \
        + get("steps_per_level") * (get("levels") - 1)
    weights = steps * get("hidden") ** 2
    if weights > MAX_COUPLING_WEIGHTS:  # the hidden 1x1 convolutions alone
        return (f"{weights:.3g} weights in the coupling networks' hidden layers alone (hidden "
                f"{get('hidden')}, {steps} flow steps; at most {MAX_COUPLING_WEIGHTS:.0e}): not a "
                "model this package can train or load")
    return None


def build_model(config: dict) -> GlowClassifier:
    """A fresh :class:`GlowClassifier` from a run config's ``model`` section."""
    try:
        return GlowClassifier(ModelConfig(**config["model"]))
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise RunError(f"cannot build the model of this run's config: {one_line(exc)}") from None


def dtype_problem(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> str | None:
    """A tensor of ``state_dict`` whose dtype is not the model's (``load_state_dict`` would cast
    it silently, and every likelihood would move), or ``None``."""
    expected = model.state_dict()
    cast = [k for k, v in state_dict.items() if k in expected and v.dtype != expected[k].dtype]
    if not cast:
        return None
    k = cast[0]
    return (f"{k} is {state_dict[k].dtype}, the model's is {expected[k].dtype} ({len(cast)} "
            "tensor(s) of another precision)")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    keys: Iterable[str] = ("model",)) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, checked to be a dict holding ``keys``.

    Pickled code is refused, never run; a truncated, empty or non-torch file, or one without the
    expected keys, raises :class:`RunError` naming ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise RunNotFoundError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise RunError(f"{path}: not a regular file (expected a torch checkpoint)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        code = [ln for ln in lines if "GLOBAL" in ln or "global" in ln.split(":")[0].lower()]
        if code:  # e.g. "Trying to load unsupported GLOBAL posix.system ..."
            raise RunError(f"{path}: refused: the checkpoint holds pickled code or objects other "
                           f"than tensors and plain containers (weights_only=True; "
                           f"{one_line(code[0])[:120]})") from None
        detail = next((ln for ln in lines if "Unsupported operand" in ln or "load key" in ln),
                      lines[0] if lines else "")
        raise RunError(f"{path}: not a torch checkpoint ({one_line(detail)[:120]})") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as exc:
        raise RunError(f"{path}: unreadable checkpoint (truncated, empty or not a torch file): "
                       f"{one_line(str(exc).strip().splitlines()[0] if str(exc).strip() else exc)}"
                       ) from None
    if not isinstance(state, dict):
        raise RunError(f"{path}: expected a dict of saved state, got {type(state).__name__}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise RunError(f"{path}: checkpoint lacks {', '.join(repr(k) for k in missing)}")
    if "model" in state and not (isinstance(state["model"], dict) and all(
            isinstance(v, torch.Tensor) for v in state["model"].values())):
        raise RunError(f"{path}: 'model' is not a state dict of tensors")
    if why := checkpoint_problem(state):
        raise RunError(f"{path}: {why}")
    return state


def _model_folder_state(run_dir: Path) -> dict[str, Any]:
    """The checkpoint-like dict of a model folder (:mod:`flows.weights`): verified weights, and
    ``epoch``/``history`` from its ``train_summary.json`` (latest invocation)."""
    state, digest = load_weights(run_dir)
    epoch, history = None, []
    summary = run_dir / SUMMARY_NAME
    if summary.is_file():
        last = read_summary(summary)["invocations"][-1]
        epoch, history = last["epochs_done"], last["history"]
    return {"model": state, "epoch": epoch, "history": history,
            "weights": {"file": WEIGHTS_NAME, "sha256": digest}}


def load_run_state(run_dir: str | Path, map_location: str | torch.device = "cpu",
                   keys: Iterable[str] = ("model",)
                   ) -> tuple[GlowClassifier, dict, dict[str, Any]]:
    """``(model in eval mode, config, checkpoint dict)`` of a run directory (its latest
    ``checkpoint.pt``) or of a model folder (``model.safetensors``, checksum verified).

    The dict's ``weights`` entry (``file``, ``sha256``) names the file the weights came from;
    non-finite weights are refused before any work.
    """
    config = read_config(run_dir)
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    if not ckpt_path.exists() and (run_dir / WEIGHTS_NAME).exists():
        ckpt_path = run_dir / WEIGHTS_NAME
        state = _model_folder_state(run_dir)
    elif not ckpt_path.exists():
        raise RunNotFoundError(f"{run_dir}: neither {CHECKPOINT_NAME} (a run directory) nor "
                               f"{WEIGHTS_NAME} (a model folder)")
    else:
        state = load_checkpoint(ckpt_path, map_location, keys=("model", *keys))
        bad = non_finite_tensors(state["model"])
        if bad:
            raise RunError(f"{ckpt_path}: non-finite values in {', '.join(bad[:5])}")
        state["weights"] = {"file": CHECKPOINT_NAME, "sha256": sha256_file(ckpt_path)}
    try:
        model = build_model(config)
    except RunError as exc:
        raise RunError(f"{run_dir / CONFIG_NAME}: {exc}") from None
    if why := dtype_problem(model, state["model"]):
        raise RunError(f"{ckpt_path}: {why}")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
        raise RunError(f"{ckpt_path}: does not fit the model described by {CONFIG_NAME} "
                       f"(preset {config.get('preset', '?')!r}; another preset or objective?): "
                       f"{one_line(detail)[:300]}") from None
    model.to(map_location)
    model.eval()
    return model, config, state


def init_from_run(model: GlowClassifier, source: str | Path, grow: bool = False
                  ) -> dict[str, Any]:
    """Load the flow (and, when of the same kind, the prior) of ``source`` into ``model``.

    The likelihood warm start of the training recipe: ``source`` is a run directory or a model
    folder of the same architecture; every flow tensor must match in name and shape, and the
    padding noise must be the same (its flow was fitted to that distribution). A prior of
    another kind (a ``gmm`` source for a ``split`` model) stays as initialised; a mixture prior
    with per-class scales enters one with a shared scale pooled, and the reverse broadcast
    (:meth:`flows.priors.GaussianMixturePrior.state_from`). Returns what was done:
    ``{"path", "weights", "prior"}`` (``prior``: ``"loaded"``, ``"pooled"``, ``"broadcast"`` or
    ``"fresh"``).

    ``grow``: ``model`` may have more flow steps per level than ``source`` (the same model
    otherwise). The source's steps are copied into the first steps of each level and the others
    start as the identity (:meth:`flows.layers.FlowStep.set_identity`), so the grown model starts
    with the source's density and classifier (up to float rounding); the result then also has
    ``"added_steps"``, the new steps per level.
    """
    _, src_config, src_state = load_run_state(source)
    src, full = src_state["model"], model.state_dict()
    dst = full

    def flow(keys: Iterable[str]) -> set[str]:
        return {k for k in keys if not k.startswith("prior.")}

    src_model = ModelConfig(**src_config["model"])  # older runs: the dataclass defaults
    added: list[int] = []
    if grow:
        added = _steps_to_add(model, source, src_model)
        new = tuple(f"levels.{level}.{i}." for level, n in enumerate(added)
                    for i in range(len(model.levels[level]) - n, len(model.levels[level])))
        dst = {k: v for k, v in dst.items() if not k.startswith(new)}
    mismatched = sorted(k for k in flow(dst) & flow(src) if src[k].shape != dst[k].shape)
    if flow(src) != flow(dst) or mismatched:
        diff = sorted(flow(src) ^ flow(dst)) + mismatched
        raise UsageError(f"{source}: --init-from needs a model of the same architecture "
                         f"(preset {src_config.get('preset', '?')!r}; differs in "
                         f"{', '.join(diff[:3])})")
    src_pad = src_model.pad_noise
    if src_pad != model.config.pad_noise:
        raise UsageError(f"{source}: --init-from needs the same padding noise (the source was "
                         f"trained with {src_pad!r}, this run pads with "
                         f"{model.config.pad_noise!r}; pass --pad-noise {src_pad})")
    load = {k: v for k, v in src.items() if not k.startswith("prior.")}
    how = "fresh"
    if src_config["model"].get("prior") == model.config.prior:
        prior = {k.removeprefix("prior."): v for k, v in src.items() if k.startswith("prior.")}
        how = "loaded"
        if isinstance(model.prior, GaussianMixturePrior):  # per-class / shared scales
            prior, how = model.prior.state_from(prior)
        load.update({f"prior.{k}": v for k, v in prior.items()})
    result = model.load_state_dict(load, strict=False)
    expected_missing = set(full) - set(dst)
    if how == "fresh":
        expected_missing |= {k for k in dst if k.startswith("prior.")}
    if set(result.missing_keys) != expected_missing or result.unexpected_keys:
        raise UsageError(f"{source}: --init-from: the weights do not fit this model (missing "
                         f"{sorted(set(result.missing_keys) ^ expected_missing)[:3]}, unexpected "
                         f"{result.unexpected_keys[:3]})")
    done = {"path": str(source), "weights": src_state["weights"], "prior": how}
    if grow:
        for level, n in zip(model.levels, added, strict=True):
            for step in level[len(level) - n:]:
                step.set_identity()
        done["added_steps"] = added
    return done


def _steps_to_add(model: GlowClassifier, source: str | Path, src: ModelConfig) -> list[int]:
    """New flow steps per level when ``model`` grows from a model of config ``src``; a source
    with other levels, or more steps somewhere, is refused."""
    have = [src.steps_at(level) for level in range(src.levels)]
    want = [len(level) for level in model.levels]
    if len(have) != len(want) or any(h > w for h, w in zip(have, want, strict=True)):
        raise UsageError(f"{source}: --grow needs a source with the same levels and at most as "
                         f"many flow steps per level as this model (flow steps per level: "
                         f"source {have}, this model {want})")
    return [w - h for h, w in zip(have, want, strict=True)]


def load_run(run_dir: str | Path, map_location: str | torch.device = "cpu"
             ) -> tuple[GlowClassifier, dict]:
    """Load the latest checkpoint of a run: ``(model in eval mode, config dict)``."""
    model, config, _ = load_run_state(run_dir, map_location)
    return model, config
