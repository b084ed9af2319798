"""Evaluate a run on the test split: ``python -m flows.evaluate --run RUN_DIR [--out FILE]``.

Writes JSON with test accuracy (Bayes rule on ``log p(x|y) + log p(y)``), bits/dim of
``log p(x)`` (marginal) and of ``log p(x|y_true)``, plus provenance (config, seed, git commit,
device, wall time). The model is in eval mode: deterministic inputs
(:func:`flows.preprocess.to_model_input`, bin centres) and padding noise fixed at 0.5.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from flows import data as fdata
from flows.metrics import bits_per_dim
from flows.provenance import provenance
from flows.runs import EVAL_NAME, load_run, write_json


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m flows.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run directory written by flows.train")
    p.add_argument("--out", default=None, help="extra JSON copy, e.g. results/table1/x.json")
    p.add_argument("--data-dir", default=None, help="default: the run's, $ANNULUS_DATA_DIR, ...")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N test images")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0)
    return p


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   dataset: str, batch_size: int, device: torch.device) -> dict:
    """Accuracy and bits/dim of ``model`` on uint8 ``images``."""
    model.eval()
    correct, bpd_sum, bpd_cond_sum, nll_sum = 0, 0.0, 0.0, 0.0
    d = model.data_dims
    for start in range(0, images.shape[0], batch_size):
        x = fdata.to_model_input(images[start:start + batch_size], dataset).to(device)
        y = labels[start:start + batch_size].to(device)
        joint = model.logits(x).double()
        log_px = torch.logsumexp(joint, 1)
        lp_true = (joint - model.log_prior().double()).gather(1, y[:, None]).squeeze(1)
        correct += int((joint.argmax(1) == y).sum())
        bpd_sum += float(bits_per_dim(log_px, d).sum())
        bpd_cond_sum += float(bits_per_dim(lp_true, d).sum())
        nll_sum += float(-log_px.sum())
    n = images.shape[0]
    return {"n_test": n, "accuracy": correct / n, "bits_per_dim": bpd_sum / n,
            "bits_per_dim_true_class": bpd_cond_sum / n, "nll_nats": nll_sum / n}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t0 = time.time()
    try:
        model, config = load_run(args.run, map_location=device)
        data_dir = args.data_dir
        if data_dir is None and not os.environ.get(fdata.ENV_VAR):
            data_dir = config.get("data_dir")
        images, labels = fdata.load_split(config["dataset"], "test", data_dir,
                                          bg_seed=config.get("bg_seed", fdata.DEFAULT_BG_SEED))
    except (FileNotFoundError, fdata.DataFileError) as exc:
        raise SystemExit(f"flows.evaluate: error: {exc}") from None
    if args.limit > 0:
        images, labels = images[:args.limit], labels[:args.limit]
    metrics = evaluate_model(model, images, labels, config["dataset"], args.batch_size, device)
    ckpt = torch.load(Path(args.run) / "checkpoint.pt", map_location="cpu", weights_only=False)
    train_summary = Path(args.run) / "train_summary.json"
    result = {
        "run": Path(args.run).name,
        "metrics": metrics,
        "config": config,
        "seed": config["seed"],
        "epochs_trained": ckpt["epoch"],
        "train_history": ckpt["history"],
        "train_wall_time_s": (sum(h["seconds"] for h in ckpt["history"])),
        "train_summary_present": train_summary.exists(),
        "eval_wall_time_s": time.time() - t0,
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", "flows.evaluate",
                               *sys.argv[1:]]),
        "provenance": provenance(device),
    }
    write_json(Path(args.run) / EVAL_NAME, result)
    if args.out:
        write_json(Path(args.out), result)
    print(f"{result['run']}: accuracy {metrics['accuracy']:.4f}  bits/dim "
          f"{metrics['bits_per_dim']:.4f}  (n={metrics['n_test']}, "
          f"{result['eval_wall_time_s']:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
