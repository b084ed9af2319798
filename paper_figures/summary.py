"""Markdown tables of the stored Section-4 results next to the paper's numbers.

``python -m paper_figures.summary [--results results] [--out FILE]`` builds the tables used
in ``docs/experiments.md`` from the JSON files only (no model, no data), so the document's numbers
can be regenerated and checked. Every percentage is printed with its 95% Wilson interval and n.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from foundation import atomic, cli, errors, paper_numbers, runlock
from foundation.percent import share_text
from paper_figures import empirical, paired, registry
from paper_figures.tables import Table

PAPER_TABLE2 = paper_numbers.TABLE2
"""Paper Table 2 (single source: ``foundation.paper_numbers``)."""

PAPER_FIG4 = {
    "mnist": "likelihood drops between the images; 0.5% of 1487 paths stay accepted",
    "cifar10": "interpolants more likely than endpoints; 100% of 1179 paths stay accepted",
    "bg-mnist-0": "same as CIFAR-10 (Figure 6)",
}
ORDER = ("cw", "boundary", "cw-det", "boundary-det", "cw-cont")
PROG = "python -m paper_figures.summary"


def _no_nan(token: str) -> float:
    raise ValueError(f"non-finite number {token}")


#: What each experiment's results must hold (the specs ``python -m paper_figures`` checks).
SPECS = {"likelihood_gap": registry.GAP_SPEC, "attacks": registry.ATTACK_CURVE_SPEC,
         "interpolation": registry.INTERP_SPEC,
         "bg_mnist": {"rows": "items", "rows[].n_test": "count",
                      **{f"rows[].{k}": kind for k, kind in registry.ROW_SPEC.items()}}}


def _load(d: Path, pattern: str = "*.json") -> list[dict[str, Any]]:
    """Every ``pattern`` file of ``d``: an experiment result (a JSON object whose ``experiment``
    is the folder's name, finite numbers, the fields of :data:`SPECS` in range), else a
    :class:`foundation.errors.CommandError` naming the file."""
    out = []
    for p in sorted(d.glob(pattern)):
        try:
            res = json.loads(p.read_text(), parse_constant=_no_nan)
        except (json.JSONDecodeError, ValueError, OSError) as exc:
            raise errors.CommandError(
                f"{p}: not a valid result JSON ({errors.one_line(exc)})") from None
        if not isinstance(res, dict) or res.get("experiment") != d.name:
            raise errors.CommandError(f"{p}: not a {d.name} result (no \"experiment\": "
                                   f"\"{d.name}\" object)")
        try:
            empirical.require(res, p, SPECS.get(d.name, {}))
        except empirical.ResultError as exc:
            raise errors.CommandError(str(exc)) from None
        out.append(res | {"_file": str(p)})
    return out


def _run_name(res: dict[str, Any]) -> str:
    """The result file's stem (the run name, plus a suffix for extra settings of the same run)."""
    if "_name" in res:
        return str(res["_name"])
    return Path(res["_file"]).name.removesuffix(".json")


def _objective(res: dict[str, Any]) -> str:
    cfg = res.get("provenance", {}).get("run_config") or {}
    return str(cfg.get("objective", "?"))


def _is_new(res: dict[str, Any]) -> bool:
    return "draws" in res  # results of the 8-bit / flows.scoring code


def _grid(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table, rendered as the paper tables are (:class:`paper_figures.tables.Table`)."""
    return Table("", header, rows).markdown_grid()


def gap_table(results: list[dict[str, Any]]) -> str:
    header = ["run", "n test", "S", "acc [95% CI]", "test bits/dim", "median gap (nats)",
              "std log p(x|y) (nats)", "gap >= m(1e-5)=13.8 nats", "T quantile (recall)",
              "T paper (recall)"]
    rows = []
    for r in results:
        if not _is_new(r):
            continue
        th = r["thresholds"]
        tp, tq = th["paper"], th["quantile"]
        paper = ("-" if tp["T_bpd"] is None
                 else f"{tp['T_bpd']} ({share_text(tp['recall_test'], 1)})")
        m = [c for c in r["confidence_margin"] if c["delta"] == 1e-5][0]
        rows.append([_run_name(r), str(r["n_test"]), str(r["draws"]),
                     share_text(r["accuracy_ci"], 1),
                     f"{r['bits_per_dim']['mean']:.3f}", f"{r['gap']['p50']:.1f}",
                     f"{r['spread']['std_log_px_given_true']:.1f}",
                     share_text(m["gap_at_least_margin"], 1),
                     f"{tq['T_bpd']:.3f} ({share_text(tq['recall_test'], 1)})", paper])
    return _grid(header, rows)


def attack_table(results: list[dict[str, Any]]) -> str:
    """Table 2: ``U% [CI] (F% [CI])`` per setting and threshold, n attacked images."""
    header = ["run", "threshold", "n", "CW-L2", "Boundary", "CW-L2 + det.", "Boundary + det.",
              "CW-L2 continuous, rounded after"]
    rows = []
    for r in results:
        if not _is_new(r):
            continue
        for th in ("quantile", "paper"):
            t = r["thresholds"][th]["T_bpd"]
            if t is None:
                continue
            cells = []
            for k in ORDER:
                s = r["settings"].get(k)
                if s is None:
                    cells.append("-")
                elif k.endswith("-det") and th != r["threshold_used"]:
                    cells.append("n/a")  # detection-aware attacks target one threshold
                else:
                    e = s["table2"][th]
                    cells.append(f"{share_text(e['undetected_within_eps'])} "
                                 f"({share_text(e['fooled_within_eps'])})")
            used = " (attacked)" if th == r["threshold_used"] else ""
            if not r.get("complete", True):
                used += " PARTIAL (interrupted: only the settings shown ran)"
            rec = r["thresholds"][th]["recall_test"]
            rows.append([_run_name(r), f"{th} T={t:.3f}{used}, recall {share_text(rec, 1)}",
                         str(r["n_images"]), *cells])
        p = PAPER_TABLE2.get(r["dataset"], {}).get(_objective(r))
        if p:
            rows.append([f"paper ({r['dataset']} {_objective(r)})", "paper T", "-",
                         *(p.get(k, "-") for k in ORDER[:4]), "-"])
    return _grid(header, rows)


def attack_details(results: list[dict[str, Any]]) -> str:
    """Per setting: in-loop successes, final-check and rounding failures, L2, detection."""
    header = ["run", "setting", "n", "in-loop success", "final-check failures",
              "median L2 (fooled)", "median max pixel change", "rejected among fooled (T used)",
              "detection term / boundary", "wall s"]
    rows = []
    for r in results:
        if not _is_new(r):
            continue
        for k in ORDER:
            s = r["settings"].get(k)
            if s is None:
                continue
            pi = s["per_image"]
            fooled = [bool(f) and p != y for f, p, y in
                      zip(pi["found"], pi["pred_adv"], pi["label"], strict=True)]
            mpc = sorted(m for m, f in zip(pi["max_pixel_change"], fooled, strict=True) if f)
            med_mpc = f"{mpc[len(mpc) // 2]}" if mpc else "-"
            l2 = s["l2_fooled"].get("p50")
            extra = []
            if "rounding_failures" in s:
                rf = s["rounding_failures"]
                # re-counted from the per-image record: an image rounded back to the original
                # never counts as fooled (the stored count of results written before that rule
                # was applied here too could count a re-scoring flip of an unchanged image)
                failed = paired.final_check_breakdown(r, k)["not_fooled"]
                changed = failed - rf['identical_after_rounding']
                extra.append(f"{failed} of {rf['continuous_successes']} "
                             f"continuous successes fail after rounding: "
                             f"{rf['identical_after_rounding']} round to the original, "
                             f"{changed} change pixels but are not misclassified under the "
                             f"S-draw re-scoring (rounding and scoring noise not separated)")
            de = s.get("detection_evidence")
            if de and "iterates" in de:
                extra.append(f"det. term active in {de['iterates_det_term_active']} of "
                             f"{de['iterates']} iterates, {de['iterates_blocked']} fooling "
                             f"iterates blocked; images with blocked iterates "
                             f"{share_text(de['images_with_blocked_iterates'])}")
            if de and "queries_blocked" in de:
                extra.append(f"{de['queries_blocked']} fooling queries blocked; images "
                             f"{share_text(de['images_with_blocked_queries'])}")
            b = s.get("boundary")
            if b:
                extra.append(f"{b['steps_done']} steps ({b['stopped_by']}), converged "
                             f"{share_text(b['converged'])}, not attacked {s['not_attacked']}")
            rows.append([_run_name(r), k, str(r["n_images"]), share_text(s["in_loop_success"]),
                         _failures(r, k), "-" if l2 is None else f"{l2:.3f}", med_mpc,
                         share_text(s["rejected_share_of_fooled_T_used"]), "; ".join(extra) or "-",
                         f"{s['wall_time_s']:.0f}"])
    return _grid(header, rows)


def _failures(res: dict[str, Any], setting: str) -> str:
    """Final-check failures with their reasons (:func:`paired.final_check_breakdown`)."""
    n = res["settings"][setting]["final_check_failures"]
    if not n:
        return "0"
    why = paired.final_check_breakdown(res, setting)
    parts = [f"{why['not_fooled']} not fooled under S draws"]
    if why["rejected"]:
        parts.append(f"{why['rejected']} fooled but rejected")
    return f"{n} ({', '.join(parts)})"


PAIRS = (("cw", "cw-det"), ("boundary", "boundary-det"), ("cw", "boundary"),
         ("cw-det", "boundary-det"))
"""Settings compared on the same images: each attack with and without the detection term (Table 2
left vs right), and CW against the boundary attack (the paper: CW easily detected, boundary not)."""


def paired_table(results: list[dict[str, Any]]) -> str:
    """McNemar (exact) between two settings run on the same images (same seed, same pool), on
    "undetected within eps" under the threshold the run attacked with."""
    header = ["run", "A", "B", "n", "undetected within eps: A", "B", "only A", "only B",
              "McNemar exact p"]
    rows = []
    by_run: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        if _is_new(r):
            for k in r["settings"]:
                by_run.setdefault(_run_name(r).split(".")[0], {})[k] = r
    for run, settings in sorted(by_run.items()):
        for a, b in PAIRS:
            if a not in settings or b not in settings:
                continue
            ra, rb = settings[a], settings[b]
            m = paired.compare(ra, a, rb, b, ra["threshold_used"])
            rows.append([run, a, b, str(m["n"]), str(m["a"]), str(m["b"]), str(m["a_only"]),
                         str(m["b_only"]), f"{m['p_exact']:.2g}"])
    return _grid(header, rows)


def interp_table(results: list[dict[str, Any]]) -> str:
    header = ["run", "pairs", "S", "endpoint bits/dim", "mid bits/dim",
              "mid - endpoints (+- s.e.)", "mid more likely than both",
              "mid less likely than both", "paths all accepted (quantile T)", "(paper T)",
              "finding", "paper"]
    rows = []
    for r in results:
        if not _is_new(r):
            continue
        pa = r["paths_all_accepted"]
        se = r.get("mid_minus_endpoints_bpd_se")
        rows.append([_run_name(r), str(r["n_pairs"]), str(r["draws"]),
                     f"{r['endpoint_bpd_mean']:.3f}", f"{r['mid_bpd_mean']:.3f}",
                     f"{r['mid_minus_endpoints_bpd']:+.3f} (+- {se:.3f})",
                     share_text(r["mid_more_likely_than_both"], 1),
                     share_text(r["mid_less_likely_than_both"], 1),
                     share_text(pa.get("quantile"), 1), share_text(pa.get("paper"), 1),
                     r["finding"],
                     PAPER_FIG4.get(r["dataset"], "-")])
    return _grid(header, rows)


def table3(res: dict[str, Any]) -> str:
    header = ["dataset", "run", "n test", "acc (ours) [95% CI]", "bits/dim (ours)",
              "acc (paper)", "bits/dim (paper)"]
    rows = [[r["dataset"], Path(r["run_dir"]).name, str(r["n_test"]),
             share_text(r.get("accuracy_ci"), 1),
             f"{r['bits_per_dim']:.3f}", f"{r['paper_accuracy_pct']}%",
             str(r["paper_bits_per_dim"])] for r in res["rows"]]
    return _grid(header, rows)


MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError)
"""What a table builder raises on a result that lacks what it reads."""


T = TypeVar("T")


def _table(make: Callable[[list[dict[str, Any]]], T], results: list[dict[str, Any]]) -> T:
    """``make(results)``; where it fails, the first result it fails on alone names the file
    (exit 1)."""
    try:
        return make(results)
    except MALFORMED as exc:
        bad = next((r for r in results if _fails(make, r)), None)
        where = bad["_file"] if bad else ", ".join(r["_file"] for r in results)
        raise errors.CommandError(
            f"{where}: lacks what the tables need ({errors.one_line(exc)}); see the "
            "experiments' docstrings") from None


def _fails(make: Callable[[list[dict[str, Any]]], object], result: dict[str, Any]) -> bool:
    try:
        make([result])
    except MALFORMED:
        return True
    return False


def build(root: Path) -> str:
    """All tables from ``root`` (``results``); a malformed result names its file, a folder
    without any result is an error too (exit 1)."""
    parts = []
    if (root / "likelihood_gap").is_dir():
        parts += ["### Figure 3 (likelihood gap)",
                  _table(gap_table, _load(root / "likelihood_gap"))]
    if (root / "attacks").is_dir():
        att = _load(root / "attacks")
        parts += ["### Table 2 (attacks on 8-bit images): U% [95% CI] (F% [95% CI])",
                  _table(attack_table, att), "### Table 2, per setting",
                  _table(attack_details, att),
                  "### Table 2, paired comparisons on the same images",
                  _table(paired_table, att)]
    if (root / "interpolation").is_dir():
        parts += ["### Figures 1/4 (interpolations of 8-bit images)",
                  _table(interp_table, _load(root / "interpolation"))]
    if (root / "bg_mnist").is_dir():
        parts += _table(_bg_mnist_parts, _load(root / "bg_mnist", "table3.json"))
    if not parts:
        raise errors.CommandError(f"{root}: no results to tabulate (none of likelihood_gap/, "
                                  "attacks/, interpolation/, bg_mnist/table3.json)")
    return "\n\n".join(parts) + "\n"


def _bg_mnist_parts(results: list[dict[str, Any]]) -> list[str]:
    """Table 3 and Figure 6 from ``bg_mnist/table3.json`` (none where it is absent)."""
    parts: list[str] = []
    for res in results:
        parts += ["### Table 3 (BG-MNIST)", table3(res)]
        if res.get("interpolation"):
            smp = res.get("samples")
            name = f"{Path(smp['run_dir']).name} (table3.json)" if smp else "table3.json"
            parts += ["### Figure 6 (BG-MNIST-0 interpolations)",
                      interp_table([res["interpolation"] | {"_name": name}])]
    return parts


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description="Markdown tables from results/*.json.")
    p.add_argument("--results", type=cli.existing_dir, default=Path("results"))
    p.add_argument("--out", type=cli.output_file, default=None, help="also write them here")
    return p


@errors.guard(PROG)
@runlock.releasing
def main(argv: Sequence[str] | None = None) -> int:
    """Print (and with ``--out`` write, atomically; one writer per file) the tables."""
    args = build_parser().parse_args(argv)
    if args.out and Path(args.out).suffix != ".md":  # never over a result JSON or a run's file
        raise errors.UsageError(f"--out {args.out}: the tables are markdown; name it *.md")
    if args.out:
        runlock.acquire(runlock.file_lock_path(args.out), args.out)
    text = build(Path(args.results))
    print(text, end="")
    if args.out:
        atomic.write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
