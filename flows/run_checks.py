"""What the files of a run directory or model folder must hold: pure checks of a run's config,
a checkpoint's progress entries, a training history and a state dict's dtypes.

Each ``*_problem`` function returns a one-line reason or ``None``; :mod:`flows.runs` turns a
reason into a :class:`~flows.runs.RunError` naming the file. Nothing here reads a file.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch

from flows.config import OBJECTIVES, PRESETS, ModelConfig
from flows.data import DATASETS, num_channels
from flows.schedule import SCHEDULES
from flows.weights import non_finite_tensors
from foundation.cli import MAX_INT, MAX_SEED

__all__ = [
    "CONFIG_FIELDS", "INIT_PRIORS", "MAX_COUPLING_WEIGHTS", "MODEL_LIMITS", "channels_problem",
    "checkpoint_problem", "config_field_problem", "config_problem", "dtype_problem",
    "history_problem", "is_int", "is_num", "model_section_problem", "shown",
]


def config_problem(config: Any) -> str | None:
    """What is wrong with a run's config (:func:`flows.runs.read_config`'s checks), or ``None``."""
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


def is_int(v: Any, lo: int, hi: int = MAX_INT) -> bool:
    """``v`` is an int (not a bool) in ``[lo, hi]``."""
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def is_num(v: Any, lo: float, lo_open: bool) -> bool:
    """``v`` is a finite int or float (not a bool) above ``lo`` (``lo_open``) or at least ``lo``."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and (v > lo if lo_open else v >= lo))


def shown(value: Any, width: int = 80) -> str:
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
        bad = [k for k, v in record.items() if not is_num(v, -math.inf, True)]
        if bad:
            key = str(bad[0])[:40]
            return f"history[{i}].{key} = {shown(record[bad[0]])} is not a finite number"
    return None


def checkpoint_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with the progress entries of a training checkpoint (``epoch``, ``step``,
    ``history``, ``config``, ``optimizer``, where present), or ``None``."""
    for key in ("epoch", "step"):
        if key in state and not is_int(state[key], 0):
            return f"'{key}' is {shown(state[key])}, expected a non-negative integer"
    if "history" in state and (why := history_problem(state["history"])):
        return why
    if "config" in state and (why := config_problem(state["config"])):
        return f"'config': {why}"
    if "optimizer" in state:
        opt = state["optimizer"]
        if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict)
                and isinstance(opt.get("param_groups"), list)):
            return "'optimizer' is not an optimizer state dict ('state' and 'param_groups')"
        for i, entry in opt["state"].items():
            if not (isinstance(entry, dict)
                    and all(isinstance(v, torch.Tensor) for v in entry.values())):
                return f"'optimizer' state {i} is not a dict of tensors"
            if bad := non_finite_tensors(entry):  # saved only after finite updates: damage
                return f"'optimizer' state {i}: non-finite values in {', '.join(bad)}"
    return None


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
                         and all(is_int(n, 0) for n in v))


FAST_PATH_KEYS = {"bf16_coupling", "channels_last", "compile"}
CONFIG_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "objective": (lambda v: v in OBJECTIVES, f"one of {', '.join(OBJECTIVES)}"),
    "preset": (lambda v: v in PRESETS, f"one of {', '.join(PRESETS)}"),
    "epochs": (lambda v: is_int(v, 1), "an integer >= 1"),
    "batch_size": (lambda v: is_int(v, 1), "an integer >= 1"),
    "seed": (lambda v: is_int(v, 0, MAX_SEED), "an integer in [0, 2**32 - 1]"),
    "lr": (lambda v: is_num(v, 0.0, True), "a finite number > 0"),
    # a schedule name; runs of older versions recorded a description (a non-empty string)
    "lr_schedule": (lambda v: isinstance(v, str) and v.strip() != "",
                    f"one of {', '.join(SCHEDULES)}"),
    "warmup_steps": (lambda v: is_int(v, 0), "an integer >= 0"),
    "max_grad_norm": (lambda v: is_num(v, 0.0, True), "a finite number > 0"),
    "beta": (lambda v: is_num(v, 0.0, False), "a finite number >= 0"),
    "ce_ramp_steps": (lambda v: is_int(v, 0), "an integer >= 0"),
    "train_subset": (lambda v: is_int(v, 0), "an integer >= 0"),
    "augment": (lambda v: isinstance(v, bool), "true or false"),
    "bg_seed": (lambda v: v is None or is_int(v, 0, MAX_SEED),
                "null or an integer in [0, 2**32 - 1]"),
    "world_size": (lambda v: is_int(v, 1), "an integer >= 1"),
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
            return f"{key!r} is {shown(config[key])}, expected {expected}"
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
            return f"{name} = {shown(value)} is not valid"
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
