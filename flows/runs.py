"""Run directories (``config.json``, ``checkpoint.pt`` (atomic), ``eval.json``) and model folders
(``config.json``, ``model.safetensors`` + ``model.sha256``: :mod:`flows.weights`).

Checkpoints are read with ``torch.load(..., weights_only=True)`` only (:func:`load_checkpoint`):
a file that carries pickled objects other than tensors and plain containers is refused, so
loading a checkpoint never runs code. Every problem with a run directory (missing, truncated,
empty or non-torch checkpoint, missing keys, a checkpoint of another preset, an unreadable or
wrongly typed ``config.json``) raises :class:`RunError`, whose one-line message names the file.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import torch

from flows.config import ModelConfig
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
from flows.run_checks import (
    checkpoint_problem,
    config_problem,
    dtype_problem,
    history_problem,
    is_int,
    shown,
)
from flows.weights import (
    load_weights,
    non_finite_tensors,
    sha256_file,
)
from foundation.atomic import atomic_write_bytes
from foundation.errors import CommandError, UsageError, one_line, reason

__all__ = [
    "CHECKPOINT_NAME", "CONFIG_NAME", "EVAL_NAME", "LAST_GOOD_NAME", "RunError",
    "RunNotFoundError", "SUMMARY_NAME", "WEIGHTS_NAME", "build_model", "init_from_run",
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
        if not is_int(entry.get("epochs_done"), 0):
            raise refuse(f"invocations[{i}].epochs_done is {shown(entry.get('epochs_done'))}")
        if not isinstance(entry.get("command"), str):
            raise refuse(f"invocations[{i}] has no command")
        if why := history_problem(entry.get("history")):
            raise refuse(f"invocations[{i}]: {why}")
    return summary


def build_model(config: dict) -> GlowClassifier:
    """A fresh :class:`GlowClassifier` from a run config's ``model`` section."""
    try:
        return GlowClassifier(ModelConfig(**config["model"]))
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise RunError(f"cannot build the model of this run's config: {one_line(exc)}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    keys: Iterable[str] = ("model",)) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, checked to be a dict holding ``keys``.

    Pickled code is refused, never run; a truncated, empty or non-torch file, one without the
    expected keys, non-finite weights or optimizer moments (a checkpoint is saved only after
    finite updates) or malformed progress entries (:func:`~flows.run_checks.checkpoint_problem`)
    raise :class:`RunError` naming ``path``.
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
    if "model" in state and (bad := non_finite_tensors(state["model"])):
        raise RunError(f"{path}: non-finite values in {', '.join(bad[:5])}")
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
