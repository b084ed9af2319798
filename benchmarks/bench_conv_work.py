"""Coupling-convolution work per second of this project's training step against y0ast's Glow.

    python benchmarks/bench_conv_work.py [--presets cpu-mnist cpu-cifar] [--threads 1]
        [--peer ../shared/peer/y0ast] [--data-dir ../shared/data] [--steps 8] [--repeats 3]
        [--compile] [--first-level-steps N] [--steps-per-level K]

The two models differ (we pad the channels and use four levels; y0ast uses three), so images/s
alone does not compare them. What does: the multiply-adds of the *coupling networks' convolutions*
an image costs in the forward pass (counted with hooks: ``2 * C_out * C_in/groups * k_h * k_w *
H_out * W_out`` per convolution), times the images/s of full training steps. Per preset it prints
that work per second for

* ``default``  this project's training step (:class:`flows.train_step.TrainStep`, objective
  ``base``, with its guards) on the path :func:`flows.precision.choose_fast_path` picks here;
* ``float32``  the same step on the float32 eager reference path;
* ``float32-cl`` float32 with channels_last (what ``--channels-last on --amp none`` trains with);
* ``compiled`` (with ``--compile``) the default path with ``torch.compile`` (``--compile on``);
  its compilation runs in the untimed warm-up steps of the first repeat and is reported;
* ``nets-only`` the default path's coupling networks alone, forward and backward on the inputs
  they see in a step, nothing else: a bound on what removing the rest of the step can reach;
* ``y0ast``    y0ast/Glow-PyTorch's float32 Glow at the same hidden width and steps per level,
  3 levels, affine coupling, LU 1x1 convolutions, learned top prior (as
  ``../shared/peer/peer_quality.py`` trains it): forward, mean NLL, backward, Adam;

and the ratio of each to y0ast, all measured in this run, interleaved, best of ``--repeats``, one
thread unless told otherwise. ``--first-level-steps``/``--steps-per-level`` change this project's
shape from the preset's (as ``flows.train`` does; e.g. ``1``/``12``, the shape of the BG-MNIST
models); y0ast's arm keeps the preset's hidden width and steps per level. The backward pass
costs about twice the forward in both models, so the forward count is a fair unit. It names the
CPU. Not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data import batch_source, preset_dataset  # noqa: E402
from flows.config import PRESETS, ModelConfig, model_config  # noqa: E402
from flows.layers import AffineCoupling  # noqa: E402
from flows.model import GlowClassifier  # noqa: E402
from flows.precision import FastPath, choose_fast_path  # noqa: E402
from flows.provenance import device_description  # noqa: E402
from flows.train_step import TrainStep  # noqa: E402

BATCH = 64


def conv_flops_per_image(convs: list[nn.Conv2d], x: torch.Tensor,
                         run: Callable[[torch.Tensor], object]) -> float:
    """Forward multiply-add FLOPs (x2) per image of the convolutions ``convs`` on input ``x``."""
    total = [0.0]

    def hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        per_out = 2 * module.in_channels // module.groups * kh * kw
        total[0] += per_out * output[0].numel()

    handles = [c.register_forward_hook(hook) for c in convs]
    try:
        with torch.no_grad():
            run(x)
    finally:
        for h in handles:
            h.remove()
    return total[0]  # the hook counted one image (output[0]) per call


def _model(cfg: ModelConfig, fast: FastPath, init: torch.Tensor
           ) -> tuple[GlowClassifier, torch.memory_format, float]:
    """This project's model ``cfg`` on ``fast``, initialised on ``init``; its memory format and
    its coupling networks' convolution FLOPs per image."""
    torch.manual_seed(0)
    model = GlowClassifier(cfg)
    model.set_autocast(torch.bfloat16 if fast.bf16 else None)
    fmt = torch.channels_last if fast.channels_last else torch.contiguous_format
    model.to(memory_format=fmt).train()
    with torch.no_grad():
        model(init.to(memory_format=fmt))  # data-dependent actnorm initialisation
    convs = [m for c in model.modules() if isinstance(c, AffineCoupling)
             for m in c.net.modules() if isinstance(m, nn.Conv2d)]
    flops = conv_flops_per_image(convs, init[:8].to(memory_format=fmt), model)
    return model, fmt, flops


def ours(cfg: ModelConfig, fast: FastPath, init: torch.Tensor
         ) -> tuple[Callable[[torch.Tensor, torch.Tensor], None], float]:
    """This project's training step for the model ``cfg`` on ``fast``, and its coupling-conv
    FLOPs per image."""
    model, fmt, flops = _model(cfg, fast, init)
    net = torch.compile(model) if fast.compile else model  # as flows.train does
    step = TrainStep(model, torch.optim.Adam(model.parameters(), lr=1e-4), "base",
                     max_grad_norm=500.0, net=net)

    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        step(x.to(memory_format=fmt), y)

    return run, flops


def networks_only(cfg: ModelConfig, fast: FastPath, init: torch.Tensor
                  ) -> tuple[Callable[[torch.Tensor, torch.Tensor], None], float]:
    """The coupling networks of ``ours`` alone: forward and backward of every ``net`` (its
    convolutions and ReLUs, under the same autocast and memory format) on the inputs it sees in
    a training step of a 64-image batch, gradients into the inputs and the weights, and nothing
    else (no flow layers, prior, loss, clipping or Adam). Every training step does at least this
    work, so this arm's work per second bounds what removing the rest of a step could reach."""
    model, fmt, flops = _model(cfg, fast, init)
    couplings = [c for c in model.modules() if isinstance(c, AffineCoupling)]
    seen: list[torch.Tensor] = []
    handles = [c.net.register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach().clone()))
               for c in couplings]
    try:
        with torch.no_grad():
            model(init[:BATCH].to(memory_format=fmt))
    finally:
        for h in handles:
            h.remove()
    inputs = [x.requires_grad_() for x in seen]
    grads = [torch.randn_like(c.run_net(x)) for c, x in zip(couplings, inputs, strict=True)]

    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        del x, y  # the networks' inputs were taken from a step's forward pass above
        outs = [c.run_net(h) for c, h in zip(couplings, inputs, strict=True)]
        torch.autograd.backward(outs, grads)
        model.zero_grad(set_to_none=True)
        for h in inputs:
            h.grad = None

    return run, flops


def peer(peer_dir: Path, preset: str, channels: int, init: torch.Tensor
         ) -> tuple[Callable[[torch.Tensor, torch.Tensor], None], float]:
    """y0ast's float32 Glow at the preset's width and depth (3 levels), its training step and
    coupling-conv FLOPs per image (the convolutions of every flow step's ``block``)."""
    if str(peer_dir) not in sys.path:
        sys.path.insert(0, str(peer_dir))
    from model import Glow  # type: ignore[import-not-found]

    pr = PRESETS[preset]
    torch.manual_seed(0)
    model = Glow((32, 32, channels), pr.hidden, pr.steps_per_level, 3, 1.0, "invconv", "affine",
                 True, 10, True, False)
    model.train()
    with torch.no_grad():
        model(init)
    convs = [m for name, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and ".block." in f".{name}."]
    flops = conv_flops_per_image(convs, init[:8], model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run(x: torch.Tensor, y: torch.Tensor) -> None:
        _, nll, _ = model(x)
        opt.zero_grad()
        nll.mean().backward()
        opt.step()

    return run, flops


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["cpu-mnist", "cpu-cifar"],
                   choices=sorted(PRESETS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=8, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peer", default=str(Path(__file__).resolve().parents[2] / "shared" / "peer"
                                          / "y0ast"), help="folder with y0ast's model.py")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--compile", action="store_true",
                   help="also time the default path under torch.compile (compiles for minutes)")
    p.add_argument("--first-level-steps", type=int, default=None,
                   help="this project's flow steps at 32x32 (default: the preset's)")
    p.add_argument("--steps-per-level", type=int, default=None,
                   help="this project's flow steps at each level above (default: the preset's)")
    args = p.parse_args()
    shape = {k: v for k, v in (("first_level_steps", args.first_level_steps),
                               ("steps_per_level", args.steps_per_level)) if v is not None}
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    paths = {"default": choose_fast_path(cpu, "auto", "auto", "off"),
             "float32": choose_fast_path(cpu, "auto", "auto", "off", fast=False),
             "float32-cl": FastPath(False, True, False)}
    if args.compile:
        paths["compiled"] = choose_fast_path(cpu, "auto", "auto", "on")
    peer_dir = Path(args.peer)
    have_peer = (peer_dir / "model.py").is_file()
    print(f"{device_description(cpu)}; torch {torch.__version__}; default path "
          f"{paths['default'].describe()}; peer {'y0ast' if have_peer else 'absent: ' + args.peer}")
    for preset in args.presets:
        _, channels = preset_dataset(preset)
        next_batch = batch_source(preset, args.data_dir, BATCH)
        n = args.steps + 2
        data = [next_batch() for _ in range(n + 8)]
        init = torch.cat([x for x, _ in data[n:]])
        cfg = dataclasses.replace(model_config(preset, channels, "base"), **shape)
        arms = {name: ours(cfg, fp, init) for name, fp in paths.items()}
        arms["nets-only"] = networks_only(cfg, paths["default"], init)
        if have_peer:
            arms["y0ast"] = peer(peer_dir, preset, channels, init)
        best = dict.fromkeys(arms, 0.0)
        warmup = dict.fromkeys(arms, 0.0)  # the first repeat's untimed steps (compilation)
        for r in range(args.repeats):  # interleaved: a load change hits every arm alike
            for name, (run, _) in arms.items():
                t0 = time.perf_counter()
                for x, y in data[:2]:
                    run(x, y)
                if r == 0:
                    warmup[name] = time.perf_counter() - t0
                t0 = time.perf_counter()
                for x, y in data[2:n]:
                    run(x, y)
                best[name] = max(best[name], args.steps * BATCH / (time.perf_counter() - t0))
        pr = PRESETS[preset]
        print(f"{preset} (hidden {pr.hidden}, batch {BATCH}; ours: {cfg.steps_at(0)} "
              f"steps at 32x32, {cfg.steps_per_level} per level above; y0ast: "
              f"{pr.steps_per_level} per level):")
        ref = best["y0ast"] * arms["y0ast"][1] if have_peer else None
        for name, (_, flops) in arms.items():
            work = best[name] * flops / 1e9
            ratio = f"{work * 1e9 / ref:5.2f}x y0ast" if ref else ""
            print(f"  {name:10s} {best[name]:7.1f} images/s x {flops / 1e9:6.3f} GFLOP/image "
                  f"(coupling convs, forward) = {work:6.2f} GFLOP/s  {ratio}  "
                  f"(first 2 steps {warmup[name]:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
