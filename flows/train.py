"""Train a GlowClassifier: ``python -m flows.train --dataset mnist --objective reweighted ...``.

Adam with the schedule of :mod:`flows.schedule` (``auto``: the paper's /10 every 60 epochs from 150
epochs on, else constant lr with a cosine anneal over the last 20%), linear warm-up, gradient-norm
clipping (the fraction of clipped steps is logged per epoch), a checkpoint every epoch
(atomic), ``--resume``, and a guard that stops on a non-finite loss or gradient, saving the last
good state (parameters before the failing update) to ``last_good.pt``.

Determinism: the data order, augmentation and dequantisation of epoch ``e`` come from a generator
seeded with ``(seed, e)`` and the padding noise from the global RNG reseeded the same way, so a
resumed run continues bit-identically on the CPU. Under ``torchrun`` the run uses
DistributedDataParallel, each rank taking every ``world_size``-th index of the epoch order.

Fast path (:mod:`flows.precision`): bf16 autocast of the coupling networks and channels_last
wherever bf16 is native (CUDA, CPUs with AVX512-BF16/AMX), ``torch.compile`` on CUDA; ``--no-fast``
is the float32 eager reference. CPU runs are bit-identical for a given seed, thread count and
fast path (bf16 results differ from float32 ones, but repeat exactly).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import torch
import torch.distributed as dist
from tqdm import tqdm

from flows import budget, devices
from flows import data as fdata
from flows.config import (
    GMM_CLASS_LATENTS,
    GMM_SCALES,
    OBJECTIVES,
    PAD_NOISES,
    PRESETS,
    SPLIT_CLASS_LATENTS,
    ModelConfig,
    model_config,
)
from flows.layout import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    LAST_GOOD_NAME,
    LINEAGE_NAME,
    SUMMARY_NAME,
    WEIGHTS_NAME,
)
from flows.lineage import lineage_record, trace_from
from flows.pixels import bits_per_dim, dequantize
from flows.precision import choose_fast_path
from flows.provenance import provenance
from flows.run_checks import MODEL_LIMITS, dtype_problem, model_section_problem
from flows.runs import (
    CHECKPOINT_KEYS,
    RunError,
    build_model,
    init_from_run,
    load_checkpoint,
    read_config,
    read_summary,
    save_checkpoint,
)
from flows.schedule import SCHEDULES, ce_weight_at, lr_at, resolve_schedule
from flows.train_step import NonFiniteStep, StepResult, TrainStep, training_batch
from foundation import cli, errors, runlock
from foundation.atomic import clean_stale_tmp, write_json
from foundation.provenance import portable_command, portable_path

PROG = "python -m flows.train"
INIT_BATCH = 512  # images for the data-dependent actnorm initialisation
STEADY_SKIP = 20  # steps of an invocation left out of its steady-state images/s
# Settings that must match when resuming.
RESUME_KEYS = ("dataset", "objective", "preset", "epochs", "batch_size", "seed", "train_subset",
               "lr", "lr_schedule", "beta", "augment", "model", "fast_path", "ce_ramp_steps")
# What a checkpoint written before a setting existed ran with.
RESUME_DEFAULTS = {"ce_ramp_steps": 0}


def default_device() -> str:
    return devices.default_device()


@dataclass
class TrainSettings:
    """One training run as the library takes it (``main`` builds it from the command line with
    :meth:`from_args`; the flags' help says what each field means). ``epochs`` and
    ``train_subset`` are rewritten when ``budget_minutes`` sizes the schedule."""

    dataset: str
    objective: str
    preset: str
    out: str | Path
    epochs: int = 150
    batch_size: int = 64
    seed: int = 0
    data_dir: str | Path | None = None
    resume: bool = False
    init_from: str | Path | None = None
    grow: bool = False
    budget_minutes: float | None = None
    lr: float = 1e-3
    lr_schedule: str = "auto"
    warmup_steps: int = 200
    max_grad_norm: float = 500.0
    hidden: int | None = None  # None: as the preset says (also the two below)
    steps_per_level: int | None = None
    first_level_steps: int | None = None
    factor_out_prior: str = "preset"
    squeeze_first: str = "preset"
    pad_noise: str = "preset"
    gmm_scale: str = "preset"
    gmm_class_latent: str = "preset"
    split_class_latent: str = "preset"
    beta: float = 1.0
    ce_ramp_steps: int = 0
    train_subset: int = 0
    augment: bool = True
    bg_seed: int = fdata.DEFAULT_BG_SEED
    device: str = "cpu"
    amp: str = "auto"
    channels_last: str = "auto"
    compile: str = "auto"
    fast: bool = True
    threads: int = 0
    stop_after: int = 0
    epochs_given: bool = False  # from_args: True where --epochs was on the command line

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainSettings:
        values = vars(args)  # every flag is a field: a new flag without one fails here
        given = values["epochs"] is not None
        return cls(**{**values, "epochs": values["epochs"] if given else cls.epochs},
                   epochs_given=given)


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=fdata.DATASETS)
    p.add_argument("--objective", required=True, choices=OBJECTIVES)
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--epochs", type=cli.positive_int, default=None, help="default: 150")
    p.add_argument("--batch-size", type=cli.positive_int, default=64, help="per-process batch size")
    p.add_argument("--seed", type=cli.seed, default=0)
    p.add_argument("--data-dir", type=cli.existing_dir_of("data directory"), default=None,
                   help="default: $ANNULUS_DATA_DIR or ../shared/data")
    p.add_argument("--out", type=cli.output_dir, required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--init-from", type=cli.existing_dir_of("run or model folder"), default=None,
                   help="start from the weights of this run or model folder (likelihood warm "
                        "start); its prior is kept when of the same kind, else initialised")
    p.add_argument("--grow", action="store_true",
                   help="with --init-from: the source may have fewer flow steps per level; its "
                        "steps are copied and the new ones (at the end of each level) start as "
                        "the identity, so training starts from the source's density")
    p.add_argument("--budget-minutes", type=cli.positive_float, default=None,
                   help="size --epochs and --train-subset to M minutes of this machine (measured "
                        "throughput; see flows.budget); the resolved values are stored")
    p.add_argument("--lr", type=cli.float_range(0.0, 1.0, lo_open=True), default=1e-3,
                   help="Adam's learning rate, in (0, 1] (the paper's: 1e-3)")
    p.add_argument("--lr-schedule", choices=SCHEDULES, default="auto",
                   help="auto: paper from 150 epochs, else anneal (see flows.schedule)")
    p.add_argument("--warmup-steps", type=cli.non_negative_int, default=200)
    p.add_argument("--max-grad-norm", type=cli.positive_float, default=500.0,
                   help="clip the gradient norm (a loose guard: see docs/flows.md)")
    for flag, what in (("hidden", "channels of the coupling networks' hidden layers"),
                       ("steps-per-level", "flow steps per level"),
                       ("first-level-steps",
                        "flow steps of the first level (full resolution unless --squeeze-first)")):
        lo, hi = MODEL_LIMITS[flag.replace("-", "_")]
        p.add_argument(f"--{flag}", type=cli.int_range(max(lo, 1), hi), default=None,
                       help=f"{what} (default: as the preset says)")
    p.add_argument("--factor-out-prior", choices=("preset", "on", "off"), default="preset",
                   help="Glow's learned prior at the splits (default: as the preset says)")
    p.add_argument("--squeeze-first", choices=("preset", "on", "off"), default="preset",
                   help="squeeze at the start of each level (Glow) instead of its end "
                        "(Appendix B); default: as the preset says")
    p.add_argument("--pad-noise", choices=("preset", *PAD_NOISES), default="preset",
                   help="distribution of the padding channels: uniform (Appendix B) or gaussian "
                        "(the same noise through the normal quantile; flows.layers.PadChannels); "
                        "default: as the preset says")
    p.add_argument("--gmm-scale", choices=("preset", *GMM_SCALES), default="preset",
                   help="scales of the Gaussian mixture prior: per-class (Appendix A.1) or one "
                        "shared by every class (flows.priors); default: as the preset says")
    p.add_argument("--gmm-class-latent", choices=("preset", *GMM_CLASS_LATENTS),
                   default="preset",
                   help="latent dimensions with class-specific mixture parameters: all "
                        "(Appendix A.1) or the top level's only (flows.priors); default: as the "
                        "preset says")
    p.add_argument("--split-class-latent", choices=("preset", *SPLIT_CLASS_LATENTS),
                   default="preset",
                   help="z_n dimensions with class-specific terms in the split prior: all "
                        "(Appendix A.4) or the top level's only (flows.priors); default: as the "
                        "preset says")
    p.add_argument("--beta", type=cli.non_negative_float, default=1.0,
                   help="IB weight of L_Y (objective ib)")
    p.add_argument("--ce-ramp-steps", type=cli.non_negative_int, default=0,
                   help="reweighted/split: ramp the weight of -log p(y|x) linearly to 1 over "
                        "the first N steps (then Eq. (6) exactly; 0: Eq. (6) from the start)")
    p.add_argument("--train-subset", type=cli.non_negative_int, default=0,
                   help="images per epoch, a fresh random subset each epoch (0: all)")
    p.add_argument("--no-augment", dest="augment", action="store_false")
    p.add_argument("--bg-seed", type=cli.seed, default=fdata.DEFAULT_BG_SEED,
                   help="seed of the BG-MNIST background assignment")
    p.add_argument("--device", type=devices.device, default=default_device())
    p.add_argument("--amp", choices=("auto", "none", "bf16"), default="auto",
                   help="auto: bf16 coupling networks where bf16 is native (CUDA, AVX512-BF16/AMX);"
                        " on --resume, as the checkpoint's run (also for the two below)")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="auto: on with bf16 and on every CPU")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile the training step (auto: on CUDA only)")
    p.add_argument("--no-fast", dest="fast", action="store_false",
                   help="float32 eager reference path (no bf16, channels_last or compile)")
    p.add_argument("--threads", type=cli.threads, default=0,
                   help="torch CPU threads (0: leave default)")
    p.add_argument("--stop-after", type=cli.non_negative_int, default=0,
                   help="stop after this many epochs in this invocation (0: run to --epochs)")
    return p


def check_flags(opts: TrainSettings) -> None:
    """Flags that contradict each other, refused before any work (exit 2)."""
    if opts.ce_ramp_steps and opts.objective not in ("reweighted", "split"):
        raise errors.UsageError(f"--ce-ramp-steps ramps Eq. (6)'s -log p(y|x); objective "
                                f"{opts.objective!r} has none to ramp (reweighted, split)")
    if opts.beta != 1.0 and opts.objective != "ib":
        raise errors.UsageError(f"--beta weighs L_Y of objective ib; objective "
                                f"{opts.objective!r} has no such term")
    if not opts.fast:
        chosen = [f"--{flag.replace('_', '-')} {value}" for flag, value, off in (
            ("amp", opts.amp, "none"), ("channels_last", opts.channels_last, "off"),
            ("compile", opts.compile, "off")) if value not in ("auto", off)]
        if chosen:
            raise errors.UsageError(f"--no-fast is the float32 eager reference path; it "
                                    f"contradicts {', '.join(chosen)}")
    if opts.grow and opts.init_from is None:
        raise errors.UsageError("--grow grows the model of --init-from; give --init-from")
    if opts.budget_minutes is not None and (opts.epochs_given or opts.train_subset):
        raise errors.UsageError("--budget-minutes sizes --epochs and --train-subset itself; "
                                "pass either the budget or those")
    out = Path(opts.out)
    if (out / WEIGHTS_NAME).exists():
        raise errors.UsageError(f"--out {out}: a model folder ({WEIGHTS_NAME}); training "
                                f"writes a run directory, choose another --out")


def check_out_dir(out: Path, resume: bool, rank: int) -> None:
    """Before any work: ``--resume`` needs ``OUT/checkpoint.pt``, a fresh run must not overwrite
    one, ``train_summary.json`` and ``config.json`` must be readable (a foreign file of that name
    is never replaced); stale temporary files are removed."""
    ckpt_path = out / CHECKPOINT_NAME
    if resume and not ckpt_path.is_file():
        raise errors.UsageError(f"--resume: no checkpoint {ckpt_path} to continue from")
    if not resume and ckpt_path.exists():
        raise errors.UsageError(f"{ckpt_path} exists; pass --resume to continue or choose another "
                             "--out")
    summary = out / SUMMARY_NAME
    if summary.exists():
        try:
            read_summary(summary)
        except RunError as exc:
            raise RunError(f"{exc}; move it away to continue") from None
    if (out / CONFIG_NAME).exists():  # a run's (killed before its first checkpoint), or foreign
        try:
            read_config(out)
        except RunError as exc:
            raise RunError(f"{exc}; it is not a flows.train config: move it away to continue"
                           ) from None
    if rank == 0 and out.is_dir():
        clean_stale_tmp(out)


class InvocationLog:
    """This invocation's entry in ``train_summary.json`` (``{"invocations": [...]}``, one entry
    per call of ``flows.train`` on the run directory), rewritten atomically at the start and
    after every epoch's checkpoint, so that an invocation that is killed stays recorded (its
    command, provenance, wall time and the epochs it completed) with ``finished: false``."""

    def __init__(self, path: Path, command: str, prov: dict, enabled: bool = True) -> None:
        self.path, self.command, self.prov, self.enabled = path, command, prov, enabled
        self.t_start = time.time()
        self.log: dict | None = None  # the file's content, read once (one writer: the run lock)

    def update(self, epochs_done: int, step: int, history: list[dict], finished: bool,
               steady_images_per_s: float | None = None) -> dict:
        entry = {"epochs_done": epochs_done, "step": step,
                 "wall_time_s": time.time() - self.t_start, "finished": finished,
                 "steady_images_per_s": steady_images_per_s, "history": history,
                 "command": self.command, "provenance": self.prov}
        if not self.enabled:
            return entry
        if self.log is None:
            self.log = (json.loads(self.path.read_text()) if self.path.exists()
                        else {"invocations": []})
            self.log["invocations"].append(entry)
        else:
            self.log["invocations"][-1] = entry
        write_json(self.path, self.log)
        return entry


def stop_non_finite(what: str, epoch: int, step: int, out: Path, rank: int, good: dict) -> NoReturn:
    """Save ``good`` (the last state known to be finite) to ``last_good.pt`` and stop."""
    if rank == 0:
        save_checkpoint(out / LAST_GOOD_NAME, good)
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    raise errors.CommandError(f"non-finite {what} at epoch {epoch + 1} step {step}; last good "
                           f"state (step {good['step']}) saved to {out / LAST_GOOD_NAME}")


def setup_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    """(rank, world_size, device); initialises torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(device_arg)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_arg.startswith("cuda") and torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return dist.get_rank(), world, torch.device("cuda", local_rank)
    return dist.get_rank(), world, torch.device("cpu")


def make_model_config(opts: TrainSettings) -> ModelConfig:
    """The preset's :class:`ModelConfig` with the architecture flags applied (``ValueError`` for
    a combination the model cannot have, e.g. a mixture option with the split prior)."""
    mc = model_config(opts.preset, fdata.num_channels(opts.dataset), opts.objective)
    if opts.factor_out_prior != "preset":
        mc = dataclasses.replace(mc, factor_out_prior=opts.factor_out_prior == "on")
    if opts.squeeze_first != "preset":
        mc = dataclasses.replace(mc, squeeze_first=opts.squeeze_first == "on")
    chosen = {f: v for f in ("pad_noise", "gmm_scale", "gmm_class_latent", "split_class_latent")
              if (v := getattr(opts, f)) != "preset"}
    chosen.update({f: v for f in ("hidden", "steps_per_level", "first_level_steps")
                   if (v := getattr(opts, f)) is not None})
    return dataclasses.replace(mc, **chosen)


def make_config(opts: TrainSettings, world: int, fast_path: dict,
                mc: ModelConfig | None = None) -> dict:
    """The run's ``config.json`` (``mc``: :func:`make_model_config`, made here when omitted)."""
    mc = make_model_config(opts) if mc is None else mc
    return {
        "dataset": opts.dataset,
        "objective": opts.objective,
        "preset": opts.preset,
        "epochs": opts.epochs,
        "batch_size": opts.batch_size,
        "seed": opts.seed,
        "lr": opts.lr,
        "lr_schedule": resolve_schedule(opts.lr_schedule, opts.epochs),
        "warmup_steps": opts.warmup_steps,
        "max_grad_norm": opts.max_grad_norm,
        "beta": opts.beta,
        "ce_ramp_steps": opts.ce_ramp_steps,
        "train_subset": opts.train_subset,
        "augment": opts.augment,
        "bg_seed": opts.bg_seed,
        "world_size": world,
        "fast_path": fast_path,
        "data_dir": str(fdata.resolve_data_dir(opts.data_dir)),
        "model": mc.to_dict(),
        "init_from": None,
        "budget": None,
    }


def images_per_epoch_of(config: dict, num_images: int) -> int:
    """Images per epoch: ``--train-subset`` of the ``num_images`` (all of them for 0)."""
    subset = config["train_subset"]
    return subset if 0 < subset < num_images else num_images


def steps_per_epoch_of(config: dict, num_images: int, world: int) -> int:
    """Optimisation steps per epoch (:func:`images_per_epoch_of`, split over ``world`` ranks)."""
    return (images_per_epoch_of(config, num_images) // world) // config["batch_size"]


def epochs_change_is_safe(old: dict, new: dict, steps_done: int, num_images: int,
                          world: int) -> bool:
    """May a resumed run change ``--epochs``? Only if the new total is not already passed and
    every step done so far had the same learning rate under the old and the new total (e.g. a
    run shortened or extended while still before its anneal): then the result is exactly the run
    that was started with the new total."""
    spe = steps_per_epoch_of(new, num_images, world)
    if spe < 1 or new["epochs"] * spe <= steps_done:
        return False
    return all(
        lr_at(s, spe, old["epochs"], old["lr"], old["warmup_steps"], old["lr_schedule"])
        == lr_at(s, spe, new["epochs"], new["lr"], new["warmup_steps"], new["lr_schedule"])
        for s in range(steps_done))


def _check_same_init(path: Path, recorded: dict | None) -> None:
    """On ``--resume``, a given ``--init-from`` must be the weights the run started from."""
    from flows.weights import sha256_file

    if recorded is None:
        raise errors.UsageError("--resume --init-from: the checkpoint's run did not start from "
                                "other weights")
    file = Path(path) / recorded["weights"]["file"]
    if not file.is_file() or sha256_file(file) != recorded["weights"]["sha256"]:
        raise errors.UsageError(
            f"--resume --init-from {path}: not the weights this run started from "
            f"({recorded['path']}, sha256 {recorded['weights']['sha256'][:12]}...)")


def _set_schedule(opts: TrainSettings, config: dict, resolved: budget.BudgetPlan) -> None:
    """Put a budget's epochs and images per epoch into ``opts`` and ``config``."""
    opts.epochs, opts.train_subset = resolved.epochs, resolved.train_subset
    config.update(epochs=resolved.epochs, train_subset=resolved.train_subset,
                  lr_schedule=resolve_schedule(opts.lr_schedule, resolved.epochs),
                  budget=resolved.to_dict())


def _resume_budget(opts: TrainSettings, config: dict, old: dict) -> None:
    """``--resume --budget-minutes M`` continues the schedule the run resolved for ``M``."""
    recorded = old.get("budget")
    if not isinstance(recorded, dict) or recorded.get("minutes") != opts.budget_minutes:
        raise errors.UsageError(
            f"--resume --budget-minutes {opts.budget_minutes:g}: the checkpoint's run was not "
            f"sized for that budget (its budget: "
            f"{recorded.get('minutes') if isinstance(recorded, dict) else None})")
    _set_schedule(opts, config, budget.BudgetPlan(**recorded))


def _with_model_defaults(model: object) -> object:
    """A checkpoint's ``model`` section with the fields added since it was written at their
    defaults (which is what it was trained with); anything unusable is returned unchanged, and
    fails the comparison."""
    if not isinstance(model, dict):
        return model
    try:
        return ModelConfig(**model).to_dict()
    except (TypeError, ValueError):
        return model


def _model_fields_differing(old: object, new: dict) -> str:
    """`` (model.F: checkpoint A, now B; ...)`` for the model fields that differ, or ``""``."""
    if not isinstance(old, dict):
        return ""
    fields = [f"model.{k}: checkpoint {old.get(k)!r}, now {v!r}" for k, v in new.items()
              if old.get(k) != v]
    return f" ({'; '.join(fields)})" if fields else ""


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def train(opts: TrainSettings, argv: list[str] | None = None) -> dict:
    """Run (or resume) training; returns the final state summary. One writer per run: the
    process of rank 0 holds ``OUT/.lock`` (:mod:`foundation.runlock`) throughout, so a second
    ``flows.train`` with the same ``--out`` is refused at start, naming the holder's PID.
    ``argv``: the command-line arguments to record (default ``sys.argv[1:]``)."""
    command = portable_command("flows.train", list(sys.argv[1:] if argv is None else argv))
    if int(os.environ.get("RANK", "0")) != 0:
        return _train(opts, command)
    out = Path(opts.out)
    with runlock.hold(runlock.dir_lock_path(out), out):
        return _train(opts, command)


def inherit_fast_path(opts: TrainSettings, old: dict) -> TrainSettings:
    """On ``--resume``, the fast-path flags left at ``auto`` take the checkpoint's choice, so a
    run continues on another CPU (say, one without native bf16 after one with it) as it began;
    a flag given explicitly is kept and must then match (``RESUME_KEYS``)."""
    fast = old.get("fast_path")
    if not isinstance(fast, dict) or not opts.fast:  # --no-fast: float32 eager, compared as is
        return opts
    chosen = {"amp": "bf16" if fast.get("bf16_coupling") else "none",
              "channels_last": "on" if fast.get("channels_last") else "off",
              "compile": "on" if fast.get("compile") else "off"}
    return dataclasses.replace(opts, **{k: v for k, v in chosen.items()
                                        if getattr(opts, k) == "auto"})


def _restore_or_initialise(opts: TrainSettings, config: dict, model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer, images: torch.Tensor, world: int,
                           device: torch.device, memory_format: torch.memory_format,
                           state: dict | None) -> tuple[int, int, list]:
    """The run's starting point, as ``(epoch, step, history)``: ``--resume`` restores ``state``
    (the checkpoint; its settings must match, ``--epochs`` only where the lr of every step taken
    is unchanged); ``--init-from`` copies another run's weights (actnorm comes initialised);
    else actnorm is initialised on ``INIT_BATCH`` dequantised training images (Glow's
    data-dependent initialisation). Records the weights started from in ``config["init_from"]``."""
    if state is not None:
        ckpt_path = Path(opts.out) / CHECKPOINT_NAME
        old = state["config"]  # a valid config (flows.run_checks.checkpoint_problem)
        if opts.budget_minutes is not None:
            _resume_budget(opts, config, old)
        old = {**old, "model": _with_model_defaults(old.get("model"))}
        diff = [k for k in RESUME_KEYS if old.get(k, RESUME_DEFAULTS.get(k)) != config.get(k)]
        if diff == ["epochs"] and epochs_change_is_safe(old, config, int(state["step"]),
                                                        images.shape[0], world):
            diff = []  # the lr of every step done so far is the same under both totals
        if diff:
            raise errors.UsageError(
                f"--resume with different settings than the checkpoint: {', '.join(diff)}"
                + _model_fields_differing(old.get("model"), config["model"]))
        if why := dtype_problem(model, state["model"]):
            raise RunError(f"{ckpt_path}: cannot resume from it: {why}")
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"{ckpt_path}: cannot resume from it: {errors.one_line(exc)[:300]}"
                           ) from None
        config["init_from"] = old.get("init_from")
        if opts.init_from is not None:
            _check_same_init(opts.init_from, config["init_from"])
        return state["epoch"], state["step"], state["history"]
    if opts.init_from is not None:  # warm start: actnorm comes initialised with the weights
        done = init_from_run(model, opts.init_from, grow=opts.grow)
        config["init_from"] = {**done, "path": portable_path(str(Path(done["path"]).absolute()))}
        model.to(memory_format=memory_format)
        return 0, 0, []
    g = torch.Generator().manual_seed(epoch_seed(opts.seed, -1))
    idx = torch.randperm(images.shape[0], generator=g)[:INIT_BATCH]
    torch.manual_seed(epoch_seed(opts.seed, -1))
    model.train()
    with torch.no_grad():
        model(dequantize(images[idx], generator=g).to(device, memory_format=memory_format))
    return 0, 0, []


class EpochStats:
    """Running means of an epoch's training statistics: the loss, the accuracy and bits/dim of
    the batch under the model (Bayes rule on ``log p(x|y) + log p(y)``), the gradient norm and
    the share of clipped steps."""

    def __init__(self, max_grad_norm: float) -> None:
        self.max_grad_norm = max_grad_norm
        self.sums = {"loss": 0.0, "acc": 0.0, "bpd": 0.0, "clipped": 0.0, "grad_norm": 0.0}
        self.n = 0

    @torch.no_grad()
    def add(self, result: StepResult, y: torch.Tensor, log_py: torch.Tensor, dims: int) -> None:
        joint = result.log_px_given_y.float() + log_py
        gnorm = result.grad_norm
        self.sums["loss"] += result.loss.item()
        self.sums["acc"] += (joint.argmax(1) == y).float().mean().item()
        self.sums["bpd"] += bits_per_dim(torch.logsumexp(joint, 1), dims).mean().item()
        self.sums["grad_norm"] += float(gnorm)
        self.sums["clipped"] += float(gnorm > self.max_grad_norm)
        self.n += 1

    def means(self) -> dict[str, float]:
        return {k: v / max(self.n, 1) for k, v in self.sums.items()}


def _train(opts: TrainSettings, command: str) -> dict:
    rank, world, device = setup_distributed(opts.device)
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    out = Path(opts.out)
    ckpt_path = out / CHECKPOINT_NAME
    check_out_dir(out, opts.resume, rank)
    if opts.epochs < 1 or opts.batch_size < 1:
        raise errors.UsageError("--epochs and --batch-size must be positive")
    check_flags(opts)
    state, given_amp = None, opts.amp
    if opts.resume:
        state = load_checkpoint(ckpt_path, device, keys=CHECKPOINT_KEYS)
        opts = inherit_fast_path(opts, state["config"])
    try:
        fast = choose_fast_path(device, opts.amp, opts.channels_last, opts.compile, opts.fast)
    except ValueError as exc:
        if given_amp == "auto":  # inherited from the checkpoint
            raise errors.UsageError(
                f"--resume: the checkpoint's run trained its coupling networks in bf16, which "
                f"is not native on {device}; continue it where it is (AVX512-BF16/AMX or CUDA)"
            ) from None
        raise errors.UsageError(str(exc)) from None
    try:  # flag combinations the model cannot have (ModelConfig says which)
        model_cfg = make_model_config(opts)
    except ValueError as exc:
        raise errors.UsageError(f"objective {opts.objective!r}: {exc}") from None
    if why := model_section_problem(model_cfg.to_dict()):  # e.g. too large, before allocating
        raise errors.UsageError(f"the model of these flags: {why}")
    config = make_config(opts, world, fast.describe(), model_cfg)
    images, labels = fdata.load_split(opts.dataset, "train", opts.data_dir, bg_seed=opts.bg_seed)
    flip = fdata.is_cifar(opts.dataset)

    torch.manual_seed(opts.seed)
    model = build_model(config).to(device)
    model.set_autocast(torch.bfloat16 if fast.bf16 else None)
    memory_format = torch.channels_last if fast.channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    start_epoch, step, history = _restore_or_initialise(opts, config, model, optimizer, images,
                                                        world, device, memory_format, state)
    if start_epoch >= opts.epochs:  # --resume of a finished run: no invocation to record
        if rank == 0:
            print(f"{PROG}: note: {out} has done all {opts.epochs} epochs; nothing to train "
                  "(a larger --epochs continues it where the schedule allows)", file=sys.stderr)
        if world > 1:
            dist.destroy_process_group()
        return {"epochs_done": start_epoch, "step": step, "history": history, "finished": True}
    if opts.budget_minutes is not None and not opts.resume:
        ips = budget.measure_images_per_s(
            model, images, labels, opts.objective, opts.batch_size, opts.lr, flip,
            memory_format, device, augment_images=opts.augment, max_grad_norm=opts.max_grad_norm)
        _set_schedule(opts, config, budget.plan(opts.budget_minutes, ips, images.shape[0],
                                                opts.batch_size * world))
    n_epoch = images_per_epoch_of(config, images.shape[0])
    if config["train_subset"] > images.shape[0] and rank == 0 and not opts.resume:
        print(f"{PROG}: note: --train-subset {config['train_subset']} exceeds the "
              f"{images.shape[0]} training images; an epoch uses all of them", file=sys.stderr)
    steps_per_epoch = steps_per_epoch_of(config, images.shape[0], world)
    if steps_per_epoch == 0:  # before anything is written
        sized = (f" (--budget-minutes {opts.budget_minutes:g} sized it)"
                 if opts.budget_minutes is not None else "")
        raise errors.UsageError(f"--batch-size {opts.batch_size} x {world} process(es) exceeds "
                                f"the {n_epoch} images of an epoch{sized}")
    total_steps = steps_per_epoch * opts.epochs
    if opts.ce_ramp_steps and opts.ce_ramp_steps >= total_steps:
        raise errors.UsageError(f"--ce-ramp-steps {opts.ce_ramp_steps} must end before the last "
                                f"of the {total_steps} steps: the last phase is Eq. (6) exactly")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_NAME, config)
        if config.get("init_from") is not None and not opts.resume:  # the source just verified
            write_json(out / LINEAGE_NAME, lineage_record(trace_from(config["init_from"])))

    net: torch.nn.Module = model
    if fast.compile:  # after the eager actnorm initialisation above
        net = torch.compile(model)  # type: ignore[assignment]
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)

    end_epoch = opts.epochs
    if opts.stop_after > 0:
        end_epoch = min(opts.epochs, start_epoch + opts.stop_after)
    d = model.data_dims
    prov = provenance(device)

    def snapshot(epoch: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "step": step, "history": history, "config": config}

    train_step = TrainStep(model, optimizer, opts.objective, beta=opts.beta,
                           max_grad_norm=opts.max_grad_norm, world=world, net=net)
    start_step, t_steady = step, None
    log = InvocationLog(out / SUMMARY_NAME, command, prov, enabled=rank == 0)
    log.update(start_epoch, step, history, finished=False)
    for epoch in range(start_epoch, end_epoch):
        model.train()
        g = torch.Generator().manual_seed(epoch_seed(opts.seed, epoch))
        torch.manual_seed(epoch_seed(opts.seed, epoch))
        order = torch.randperm(images.shape[0], generator=g)[:n_epoch][rank::world]
        stats = EpochStats(opts.max_grad_norm)
        t0 = time.time()
        bar = tqdm(range(steps_per_epoch), disable=rank != 0,
                   desc=f"epoch {epoch + 1}/{opts.epochs}",
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)
        for i in bar:
            idx = order[i * opts.batch_size:(i + 1) * opts.batch_size]
            x, y = training_batch(images, labels, idx, augment_images=opts.augment, flip=flip,
                                  generator=g, device=device, memory_format=memory_format)
            lr = lr_at(step, steps_per_epoch, opts.epochs, opts.lr, opts.warmup_steps,
                       config["lr_schedule"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            train_step.ce_weight = ce_weight_at(step, opts.ce_ramp_steps)
            # Non-finite guard, agreed across ranks (all_reduce) so that all ranks stop together.
            # last_good.pt: the state at the start of the failing step, or the state before the
            # update when the update itself made a parameter non-finite (never non-finite).
            try:
                result = train_step(x, y)
            except NonFiniteStep as exc:
                stop_non_finite(exc.what, epoch, step, out, rank, snapshot(epoch))
            step += 1
            if step == start_step + STEADY_SKIP:
                t_steady = time.time()
            stats.add(result, y, model.log_prior(), d)
            if rank == 0 and (i % 10 == 0 or i == steps_per_epoch - 1):
                m = stats.means()
                bar.set_postfix(loss=f"{m['loss']:.4f}", acc=f"{m['acc']:.3f}",
                                bpd=f"{m['bpd']:.3f}", lr=f"{lr:.1e}")
        record = stats.means()
        record.update(epoch=epoch + 1, step=step, seconds=time.time() - t0,
                      images_per_s=steps_per_epoch * opts.batch_size * world / (time.time() - t0))
        history.append(record)
        if rank == 0:
            save_checkpoint(ckpt_path, snapshot(epoch + 1))
            log.update(epoch + 1, step, history, finished=False)
            print(json.dumps({"train_epoch": record}), flush=True)
    steady = None
    if t_steady is not None and step > start_step + STEADY_SKIP:
        steady = ((step - start_step - STEADY_SKIP) * opts.batch_size * world
                  / (time.time() - t_steady))
    summary = log.update(end_epoch, step, history, finished=True, steady_images_per_s=steady)
    if world > 1:
        dist.destroy_process_group()
    return summary


@errors.guard(PROG)
def main(argv: list[str] | None = None) -> int:
    """Parse (bad usage: one line, exit 2), train (expected failures: one line, exit 1)."""
    train(TrainSettings.from_args(build_parser().parse_args(argv)), argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
