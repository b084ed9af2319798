"""Training throughput (images/s) of every GlowClassifier preset on the current device.

    python benchmarks/bench_flows_train.py [--presets small-mnist small-cifar] [--steps 5]

Times full optimisation steps (forward, Eq. (6) loss, backward, clipping, Adam) on random inputs
after warm-up steps, and prints one line per preset and batch size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flows.config import PRESETS, model_config  # noqa: E402
from flows.model import GlowClassifier  # noqa: E402
from flows.objectives import objective_loss  # noqa: E402


def throughput(preset: str, channels: int, batch: int, steps: int, warmup: int,
               device: torch.device) -> float:
    """Images per second of training steps of ``preset``."""
    torch.manual_seed(0)
    model = GlowClassifier(model_config(preset, channels, "reweighted")).to(device)
    if device.type == "cuda":
        model.set_autocast(torch.bfloat16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, channels, 32, 32, device=device) - 0.5
    y = torch.randint(0, 10, (batch,), device=device)
    model.train()

    def one_step() -> None:
        loss = objective_loss(model(x), y, model.log_prior(), "reweighted", model.data_dims)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 50.0)
        opt.step()

    for _ in range(warmup):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=sorted(PRESETS), choices=sorted(PRESETS))
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[64])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()}")
    for preset in args.presets:
        channels = 3 if "cifar" in preset else 1
        for batch in args.batch_sizes:
            ips = throughput(preset, channels, batch, args.steps, args.warmup, device)
            hidden, steps = PRESETS[preset]
            print(f"{preset:12s} C={channels} hidden={hidden:3d} steps/level={steps:2d} "
                  f"batch={batch:4d}: {ips:8.1f} images/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
