"""Where a training step's time goes: ``torch.profiler`` over full steps of the default path.

    python benchmarks/profile_train_step.py [--presets cpu-mnist cpu-cifar] [--threads 1]
        [--steps 5] [--objective reweighted] [--data-dir ../shared/data] [--rows 15]

Runs :class:`flows.train_step.TrainStep` on :func:`flows.train_step.training_batch` (what
``flows.train`` runs: augmentation, dequantisation, forward, loss, backward, clipping, Adam and
the non-finite guards) on the path :func:`flows.precision.choose_fast_path` picks here, after two
warm-up steps, and prints the operators by self CPU time and the share spent in convolutions
(forward and backward) against everything else. Not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_data import batch_source, preset_dataset  # noqa: E402
from flows.config import PRESETS, model_config  # noqa: E402
from flows.model import GlowClassifier  # noqa: E402
from flows.precision import choose_fast_path  # noqa: E402
from flows.provenance import device_description  # noqa: E402
from flows.train_step import TrainStep  # noqa: E402

CONV_OPS = ("convolution_backward", "mkldnn_convolution", "_slow_conv2d_forward",
            "_slow_conv2d_backward", "_convolution_depthwise", "conv_depthwise")


def is_conv(op: str) -> bool:
    """A convolution kernel (forward or backward), not its dispatching wrappers."""
    return any(op.endswith(k) for k in CONV_OPS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["cpu-mnist", "cpu-cifar"],
                   choices=sorted(PRESETS))
    p.add_argument("--objective", default="reweighted")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    fast = choose_fast_path(cpu, "auto", "auto", "off")
    fmt = torch.channels_last if fast.channels_last else torch.contiguous_format
    print(f"{device_description(cpu)}; torch {torch.__version__}; path {fast.describe()}")
    for preset in args.presets:
        _, channels = preset_dataset(preset)
        batch = batch_source(preset, args.data_dir, memory_format=fmt)
        torch.manual_seed(0)
        model = GlowClassifier(model_config(preset, channels, args.objective))
        model.set_autocast(torch.bfloat16 if fast.bf16 else None)
        model.to(memory_format=fmt).train()
        with torch.no_grad():
            model(torch.cat([batch()[0] for _ in range(8)]))  # actnorm initialisation
        step = TrainStep(model, torch.optim.Adam(model.parameters(), lr=1e-4), args.objective,
                         max_grad_norm=500.0)
        for _ in range(2):
            step(*batch())
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step(*batch())
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        conv = sum(e.self_cpu_time_total for e in events if is_conv(e.key))
        print(f"\n{preset} ({args.objective}, batch 64, {args.steps} steps): "
              f"{total / args.steps / 1e3:.0f} ms of self CPU time per step, convolutions "
              f"{conv / total:.0%}, everything else {1 - conv / total:.0%}")
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
