"""Print Table 1 / Table 3 (ours, from results/*/*.json) beside the paper's numbers, as Markdown.

    python scripts/flows_results_table.py [--results results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# Fetaya et al. (ICLR 2020), Table 1 and Table 3 (accuracy %, bits/dim).
PAPER_T1 = {
    ("mnist", "base"): (96.9, 0.95), ("mnist", "reweighted"): (99.0, 1.10),
    ("mnist", "split"): (99.3, 1.00), ("cifar10", "base"): (56.8, 3.47),
    ("cifar10", "reweighted"): (83.2, 3.54), ("cifar10", "split"): (84.0, 3.53),
}
PAPER_T3 = {"mnist": (99, 1.10), "bg-mnist-5": (99, 1.67), "bg-mnist-1": (99, 3.30),
            "bg-mnist-0": (98, 4.58), "cifar10": (84, 3.53)}


ORDER = ["mnist", "bg-mnist-5", "bg-mnist-1", "bg-mnist-0", "cifar10"]
OBJ_ORDER = ["base", "reweighted", "split", "ib"]


def load(folder: Path) -> list[dict]:
    """All result JSON in ``folder``, ordered as in the paper's tables."""
    rs = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return sorted(rs, key=lambda r: (ORDER.index(r["config"]["dataset"]),
                                     OBJ_ORDER.index(r["config"]["objective"])))


def row(r: dict, paper: tuple[float, float] | None) -> str:
    """One Markdown row: our accuracy and bits/dim, the paper's, and the training budget."""
    c, m = r["config"], r["metrics"]
    pa = f"{paper[0]} | {paper[1]}" if paper else "- | -"
    return (f"| {c['dataset']} | {c['objective']} | {100 * m['accuracy']:.2f} | "
            f"{m['bits_per_dim']:.3f} | {pa} | {c['preset']} | {r['epochs_trained']} x "
            f"{c['train_subset'] or 'all'} | {r['train_wall_time_s'] / 60:.1f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=str(Path(__file__).resolve().parent.parent / "results"))
    args = p.parse_args()
    head = ("| dataset | objective | acc % (ours) | bits/dim (ours) | acc % (paper) | "
            "bits/dim (paper) | preset | epochs x images/epoch | train min |\n"
            "|---|---|---|---|---|---|---|---|---|")
    print("Table 1\n\n" + head)
    for r in load(Path(args.results) / "table1"):
        c = r["config"]
        print(row(r, PAPER_T1.get((c["dataset"], c["objective"]))))
    medium = load(Path(args.results) / "table1-medium")
    if medium:
        print("\nTable 1 with a larger CPU budget (4 epochs; MNIST all 60000 images, CIFAR-10 25000)\n\n" + head)
        for r in medium:
            c = r["config"]
            print(row(r, PAPER_T1.get((c["dataset"], c["objective"]))))
    t3 = load(Path(args.results) / "table3")
    if t3:
        print("\nTable 3 (reweighted)\n\n" + head)
        for r in t3:
            print(row(r, PAPER_T3.get(r["config"]["dataset"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
