"""Markdown tables of the stored Section-4 results next to the paper's numbers.

``python -m flows.experiments.summarize [--results results]`` prints the tables used in
``docs/experiments.md`` from the JSON files only (no model, no data), so the document's numbers
can be regenerated and checked.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flows.experiments import paper_numbers

PAPER_TABLE2 = paper_numbers.TABLE2
"""Paper Table 2 (single source: ``flows.experiments.paper_numbers``)."""

PAPER_FIG4 = {
    "mnist": "likelihood drops between the images; 0.5% of 1487 paths stay accepted",
    "cifar10": "interpolants more likely than endpoints; 100% of 1179 paths stay accepted",
    "bg-mnist-0": "same as CIFAR-10 (Figure 6)",
}


def _load(d: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) | {"_file": str(p)} for p in sorted(d.glob("*.json"))]


def _run_name(res: dict[str, Any]) -> str:
    """The result file's stem (the run name, plus a suffix for extra settings of the same run)."""
    if "_name" in res:
        return str(res["_name"])
    return Path(res["_file"]).name.removesuffix(".json")


def _objective(res: dict[str, Any]) -> str:
    cfg = res.get("provenance", {}).get("run_config") or {}
    return str(cfg.get("objective", "?"))


def gap_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | acc | test bits/dim | median gap (nats) | std log p(x\\|y) (nats) | "
        "share gap >= m(1e-5)=13.8 nats | T quantile (accepted) | T paper (accepted) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        th = r["thresholds"]
        tp = th["paper"]
        paper = (
            "-"
            if tp["T_bpd"] is None
            else f"{tp['T_bpd']} ({100 * tp['accepted_share_test']:.1f}%)"
        )
        m = [c for c in r["confidence_margin"] if c["delta"] == 1e-5][0]
        lines.append(
            f"| {_run_name(r)} | {100 * r['accuracy']:.2f}% | {r['bits_per_dim']['mean']:.3f} | "
            f"{r['gap']['p50']:.1f} | {r['spread']['std_log_px_given_true']:.1f} | "
            f"{100 * m['share_gap_at_least_margin']:.2f}% | "
            f"{th['quantile']['T_bpd']:.3f} ({100 * th['quantile']['accepted_share_test']:.1f}%) | "
            f"{paper} |"
        )
    return "\n".join(lines)


def attack_table(results: list[dict[str, Any]]) -> str:
    order = ["cw", "boundary", "cw-det", "boundary-det"]
    lines = [
        "| run | threshold | n | CW-L2 | Boundary | CW-L2 + det. | Boundary + det. |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for th in ("quantile", "paper"):
            row = r["table2"].get(th)
            if not row:
                continue
            t = r["thresholds"][th]["T_bpd"]
            # detection-aware attacks only target the threshold they were run with
            cells = [
                "n/a" if k.endswith("-det") and th != r["threshold_used"] else row.get(k, "-")
                for k in order
            ]
            used = " (attacked)" if th == r["threshold_used"] else ""
            lines.append(
                f"| {_run_name(r)} | {th} T={t:.3f}{used} | {r['n_images']} | "
                + " | ".join(cells)
                + " |"
            )
        p = PAPER_TABLE2.get(r["dataset"], {}).get(_objective(r))
        if p:
            lines.append(
                f"| paper ({r['dataset']} {_objective(r)}) | paper T | - | "
                + " | ".join(p[k] for k in order)
                + " |"
            )
    return "\n".join(lines)


def interp_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| run | pairs | endpoint bits/dim | mid bits/dim | mid - endpoints "
        "| mid more likely than both | paths all accepted (quantile / paper T) | finding | paper |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        sp = r["share_paths_all_accepted"]
        paper_share = "-" if "paper" not in sp else f"{100 * sp['paper']:.1f}%"
        lines.append(
            f"| {_run_name(r)} | {r['n_pairs']} | {r['endpoint_bpd_mean']:.3f} | "
            f"{r['mid_bpd_mean']:.3f} | {r['mid_minus_endpoints_bpd']:+.3f} | "
            f"{100 * r['share_mid_more_likely_than_both']:.1f}% | "
            f"{100 * sp['quantile']:.1f}% / {paper_share} | {r['finding']} | "
            f"{PAPER_FIG4.get(r['dataset'], '-')} |"
        )
    return "\n".join(lines)


def table3(res: dict[str, Any]) -> str:
    lines = ["| dataset | run | acc (ours) | bits/dim (ours) | acc (paper) | bits/dim (paper) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["rows"]:
        lines.append(
            f"| {r['dataset']} | {Path(r['run_dir']).name} | {100 * r['accuracy']:.2f}% | "
            f"{r['bits_per_dim']:.3f} | {r['paper_accuracy_pct']}% | {r['paper_bits_per_dim']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flows.experiments.summarize")
    p.add_argument("--results", default="results")
    args = p.parse_args(argv)
    root = Path(args.results)
    parts = []
    if (root / "likelihood_gap").is_dir():
        parts += ["### Figure 3 (likelihood gap)", gap_table(_load(root / "likelihood_gap"))]
    if (root / "attacks").is_dir():
        parts += ["### Table 2 (attacks)", attack_table(_load(root / "attacks"))]
    if (root / "interpolation").is_dir():
        parts += ["### Figures 1/4 (interpolations)", interp_table(_load(root / "interpolation"))]
    t3 = root / "bg_mnist" / "table3.json"
    if t3.is_file():
        res = json.loads(t3.read_text())
        parts += ["### Table 3 (BG-MNIST)", table3(res)]
        smp = res.get("samples")
        if smp:
            preds = smp["pred_of_samples"]
            agree = sum(p == k for k, row in enumerate(preds) for p in row)
            total = sum(len(row) for row in preds)
            bpds = [b for row in smp["bits_per_dim_of_samples"] for b in row]
            parts.append(
                f"Figure 5 samples ({smp['dataset']}, T = {smp['temperature']}, "
                f"{smp['per_class']} per class): classified as their class {agree}/{total}; "
                f"mean bits/dim of the samples {sum(bpds) / len(bpds):.3f}."
            )
        if res.get("interpolation"):
            smp = res.get("samples")
            name = f"{Path(smp['run_dir']).name} (table3.json)" if smp else "table3.json"
            parts += [
                "### Figure 6 (BG-MNIST-0 interpolations)",
                interp_table([res["interpolation"] | {"_name": name}]),
            ]
    print("\n\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
