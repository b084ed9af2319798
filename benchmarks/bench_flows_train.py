"""Training throughput of the default (fast) path against float32 eager, measured in one run.

    python benchmarks/bench_flows_train.py [--presets cpu-mnist cpu-cifar] [--threads 1]
        [--steps 6] [--curve-steps 60] [--data-dir ../shared/data]

For every preset: images/s of full optimisation steps (forward, Eq. (6) loss, backward,
clipping, Adam) on the path :func:`flows.precision.choose_fast_path` picks for this device
(bf16 coupling networks + channels_last where bf16 is native) and on the float32 eager
reference, interleaved, best of ``--repeats``; their ratio; and a same-seed loss curve of both
on the same real training batches (dequantised, as in training), so anyone can see that bf16
trains as well as float32. With ``--run DIR`` it also scores the first ``--images`` test images
of a trained run with its coupling networks in bf16 and in float32 (same weights, same noise) and
prints the bits/dim difference: how much bf16 moves a likelihood. Not a test: it prints ratios,
it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows import data as fdata  # noqa: E402
from flows.config import PRESETS, model_config  # noqa: E402
from flows.model import GlowClassifier  # noqa: E402
from flows.pixels import dequantize  # noqa: E402
from flows.precision import FastPath, choose_fast_path  # noqa: E402
from flows.train_step import TrainStep  # noqa: E402


def make_model(preset: str, channels: int, fast: FastPath, init: torch.Tensor,
               device: torch.device) -> TrainStep:
    """Same-seed model (actnorm initialised eagerly on ``init``) with Adam, as the training
    step of Eq. (6) that ``flows.train`` runs (guards included; clipping at 1e9, never in
    effect)."""
    torch.manual_seed(0)
    model = GlowClassifier(model_config(preset, channels, "reweighted")).to(device)
    model.set_autocast(torch.bfloat16 if fast.bf16 else None)
    fmt = torch.channels_last if fast.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    model.train()
    with torch.no_grad():
        model(init.to(device, memory_format=fmt))
    return TrainStep(model, torch.optim.Adam(model.parameters(), lr=1e-3), "reweighted",
                     max_grad_norm=1e9)


def train_step(step: TrainStep, x: torch.Tensor, y: torch.Tensor, fast: FastPath) -> float:
    """One step on ``x`` in the path's memory format; returns the loss."""
    fmt = torch.channels_last if fast.channels_last else torch.contiguous_format
    return float(step(x.to(memory_format=fmt), y).loss)


def batches(dataset: str, data_dir: str | None, n: int, batch: int, channels: int
            ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` fixed dequantised training batches (real data when present, else uniform noise)."""
    gen = torch.Generator().manual_seed(0)
    try:
        images, labels = fdata.load_split(dataset, "train", data_dir)
        idx = torch.randperm(images.shape[0], generator=gen)[: n * batch]
        xs = dequantize(images[idx], generator=gen)
        ys = labels[idx]
    except fdata.DataFileError:
        print(f"  ({dataset} not found: using uniform noise, the loss curve means little)")
        xs = torch.rand(n * batch, channels, 32, 32, generator=gen) - 0.5
        ys = torch.randint(0, 10, (n * batch,), generator=gen)
    return [(xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch]) for i in range(n)]


@torch.no_grad()
def bf16_vs_float32(run: str, n: int, data_dir: str | None) -> None:
    """Per-image bits/dim of a trained run's forward with bf16 vs float32 coupling networks."""
    from flows.pixels import bits_per_dim
    from flows.runs import load_run

    model, cfg = load_run(run)
    images, _ = fdata.load_split(cfg["dataset"], "test", data_dir)
    gen = torch.Generator().manual_seed(0)
    x = dequantize(images[:n], generator=gen)
    e = torch.rand(x.shape, generator=gen)
    bpd = {}
    for name, dtype in (("float32", None), ("bf16", torch.bfloat16)):
        model.set_autocast(dtype)
        lp = torch.logsumexp(model(x, noise=e) + model.log_prior(), 1)
        bpd[name] = bits_per_dim(lp, model.data_dims)
    d = bpd["bf16"] - bpd["float32"]
    print(f"{run}: {n} test images, bits/dim float32 {bpd['float32'].mean():.4f}, bf16 "
          f"{bpd['bf16'].mean():.4f}; bf16 - float32 per image: mean {d.mean():+.4f}, "
          f"sd {d.std():.4f}, range [{d.min():+.4f}, {d.max():+.4f}]")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["cpu-mnist", "cpu-cifar"],
                   choices=sorted(PRESETS))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=6, help="timed steps per repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--curve-steps", type=int, default=60)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--run", action="append", default=[],
                   help="trained run: compare its bf16 and float32 forward (repeatable)")
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fast = choose_fast_path(device, "auto", "auto", "off")
    ref = choose_fast_path(device, "auto", "auto", "off", fast=False)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"default path={fast.describe()}")
    for run in args.run:
        bf16_vs_float32(run, args.images, args.data_dir)
    for preset in [] if args.skip_throughput else args.presets:
        channels = 3 if "cifar" in preset else 1
        dataset = "cifar10" if channels == 3 else "mnist"
        data = batches(dataset, args.data_dir, max(args.curve_steps, args.steps + 2),
                       args.batch_size, channels)
        init = torch.cat([x for x, _ in data[:4]])
        models = {name: make_model(preset, channels, fp, init, device)
                  for name, fp in (("default", fast), ("float32", ref))}
        paths = {"default": fast, "float32": ref}
        best = {name: 0.0 for name in models}
        for _ in range(args.repeats):  # interleaved, so load changes hit both alike
            for name, step in models.items():
                for x, y in data[:2]:  # warm-up
                    train_step(step, x.to(device), y.to(device), paths[name])
                t0 = time.perf_counter()
                for x, y in data[2:args.steps + 2]:
                    train_step(step, x.to(device), y.to(device), paths[name])
                ips = args.steps * args.batch_size / (time.perf_counter() - t0)
                best[name] = max(best[name], ips)
        pr = PRESETS[preset]
        print(f"{preset:11s} hidden={pr.hidden:3d} steps/level={pr.steps_per_level:2d} "
              f"batch={args.batch_size}: default {best['default']:7.1f} images/s, float32 eager "
              f"{best['float32']:7.1f} images/s, ratio {best['default'] / best['float32']:.2f}",
              flush=True)
        curves = {}
        for name, fp in paths.items():
            step = make_model(preset, channels, fp, init, device)
            curves[name] = [train_step(step, x.to(device), y.to(device), fp)
                            for x, y in data[:args.curve_steps]]
        print("  same-seed loss curve (Eq. 6 loss, nats/dim + CE), every 10th step:")
        for i in range(0, args.curve_steps, 10):
            print(f"    step {i:4d}: default {curves['default'][i]:9.4f}   float32 "
                  f"{curves['float32'][i]:9.4f}")
        print(f"    last    : default {curves['default'][-1]:9.4f}   float32 "
              f"{curves['float32'][-1]:9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
