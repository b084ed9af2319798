"""Every figure and table: name, inputs (result JSON), the command producing each, the builder.

A missing input never raises: :func:`run_item` prints one line per missing file naming the
command that produces it, builds what it can from the inputs present, and reports a status.
A malformed input (not JSON, non-finite numbers, a missing field) is named with what is wrong and
which row or item could not be made from it; the other rows and items are still made.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paper_figures import annulus_flow, attack_curves, empirical, learning, paired, tables, theory

RUNS = "models"
"""Where the shipped models live (``models/NAME``, written by ``python -m flows.package``)."""


class MissingResult(Exception):
    """An input exists but lacks the part a figure needs (e.g. no samples were drawn)."""


@dataclass(frozen=True)
class Need:
    """One input file (relative to the results directory) and the command that writes it."""

    path: str
    command: str  # "{R}" stands for the results directory


@dataclass
class Context:
    """Where results are read, where outputs go, and whether theory caches are recomputed."""

    results: Path
    out: Path
    recompute: bool = False
    problems: list[str] = field(default_factory=list)
    item: str = ""  # the item being built (prefix of the problem lines)

    def problem(self, msg: str) -> None:
        """Record (and print) an input that could not be used; the item becomes 'partial'."""
        line = f"{self.item}: {msg}" if self.item else msg
        self.problems.append(line)
        _say(line)

    def show(self, rel: str) -> str:
        """A results path as the user would type it."""
        p = self.results / rel
        try:
            r = os.path.relpath(p)
        except ValueError:
            return str(p)
        return str(p) if r.startswith("..") else r

    def show_path(self, p: Path) -> str:
        """Any path as the user would type it (relative when inside the working directory)."""
        try:
            r = os.path.relpath(p)
        except ValueError:
            return str(p)
        return str(p) if r.startswith("..") else r

    def command(self, need: Need) -> str:
        r = self.show(".")
        return need.command.replace("{R}", "results" if r == "results" else r)


Builder = Callable[[Context, list[Path]], list[Path]]


@dataclass(frozen=True)
class Item:
    """A figure or table of the paper (or a theory figure beyond it)."""

    name: str
    kind: str  # "figure" | "table"
    paper: str  # which figure/table of the paper, or "beyond the paper"
    description: str
    build: Builder
    needs: tuple[Need, ...] = ()
    require_all: bool = False  # otherwise: build from whichever inputs exist
    fallback: Callable[[Context], list[Path]] | None = None  # inputs used when all are missing


@dataclass
class Outcome:
    """What happened to one item."""

    name: str
    status: str  # "made" | "partial" | "skipped" | "failed"
    outputs: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "made"


# -- producing commands ----------------------------------------------------------------------
def _evaluate(table: str, name: str) -> Need:
    return Need(f"{table}/{name}.json",
                f"snakemake --cores 1 results/{table}/{name}.json  (python -m flows.evaluate "
                f"--run {RUNS}/{name} --out {{R}}/{table}/{name}.json; see workflow/Snakefile)")


def _experiment(exp: str, run: str, part: str = "") -> Need:
    """The result ``EXP/RUN[.PART].json`` of ``flows.experiments.EXP`` on ``models/RUN``."""
    name = f"{run}.{part}" if part else run
    return Need(f"{exp}/{name}.json",
                f"snakemake --cores 1 results/{exp}/{name}.json  (python -m "
                f"flows.experiments.{exp} --run {RUNS}/{run} --out {{R}}/{exp}/{name}.json ...; "
                "see workflow/Snakefile)")


BG_NEED = Need("bg_mnist/table3.json",
               "snakemake --cores 1 results/bg_mnist/table3.json  (python -m "
               "flows.experiments.bg_mnist "
               f"--run {RUNS}/mnist-reweighted-cpu --run {RUNS}/bg-mnist-5-reweighted-cpu "
               "... --out {R}/bg_mnist/table3.json; the runs are listed in workflow/Snakefile)")
TABLE1_RUNS = tuple(f"{d}-{o}-cpu" for d in ("mnist", "cifar10")
                    for o in ("base", "reweighted", "split"))
MAIN_RUNS = ("mnist-reweighted-cpu", "cifar10-reweighted-cpu")
BG_RUNS = tuple(f"bg-mnist-{x}-reweighted-cpu" for x in (5, 1, 0))
ATTACK_RUNS = tuple(f"{d}-{o}-cpu" for d in ("mnist", "cifar10") for o in ("reweighted", "split"))
BASELINE_DATASETS = ("mnist", "cifar10", "bg-mnist-5", "bg-mnist-1", "bg-mnist-0")


# -- builders ----------------------------------------------------------------------------------
#: Fields each kind of result must have (dotted keys; see :func:`paper_figures.empirical.require`).
EVAL_SPEC = {"config.dataset": "str", "config.objective": "str", "metrics.accuracy": "share",
             "metrics.bits_per_dim": "pos"}
ATTACK_SPEC = {"dataset": "str", "table2": "dict", "table2.*": "dict", "table2.*.*": "str"}
GAP_SPEC = {"dataset": "str", "n_test": "count", "accuracy": "share", "histogram.bin_edges": "nums",
            "histogram.counts_true": "nums", "histogram.counts_wrong": "nums",
            "gap_histogram.bin_edges": "nums", "gap_histogram.counts": "nums",
            "confidence_margin": "list", "gap.p50": "num", "spread.std_log_px_given_true": "num"}
INTERP_SPEC = {"dataset": "str", "alphas": "nums", "bpd_mean": "nums", "bpd_p05": "nums",
               "bpd_p95": "nums", "bpd_mean[]": "pos", "bpd_p05[]": "pos", "bpd_p95[]": "pos",
               "p_y0_mean": "shares", "p_y1_mean": "shares", "n_pairs": "count",
               "finding": "str"}
FIG1_SPEC = {"dataset": "str", "alphas": "nums", "examples": "list", "examples[].y0": "index",
             "examples[].y1": "index", "examples[].bpd": "nums", "examples[].bpd[]": "pos",
             "examples[].p_y0": "shares", "examples[].p_y1": "shares"}
ROW_SPEC = {"dataset": "str", "accuracy": "share", "bits_per_dim": "pos"}
BASELINE_SPEC = {"dataset": "str", "histogram.bits_per_dim": "pos", "gaussian.bits_per_dim": "pos"}
LEARNING_SPEC = {**EVAL_SPEC, "train_history": "list", "metrics.bits_per_dim_se": "nonneg",
                 "metrics.accuracy_wilson95": "shares", "config.epochs": "count"}


class NoUsableInput(Exception):
    """Every input of an item was malformed (each one was reported already)."""


#: What the theory caches (``results/theory/*.json``) must hold for their figures.
MIN_DIMENSION_SPEC = {"series": "items", "series[].eps": "str", "series[].delta": "str",
                      "series[].rows": "items", "series[].rows[].Delta": "pos",
                      "series[].rows[].search": "count", "series[].rows[].closed_form": "count",
                      "series[].rows[].exact": "count"}
KL_SPEC = {"params.eps": "str", "params.delta": "str", "params.Delta": "str", "d_star": "count",
           "rows": "items", "rows[].d": "count", "rows[].kl_q_p_joint": "nonneg",
           "rows[].kl_p_q_joint": "nonneg", "rows[].lemma2_joint": "pos",
           "rows[].lemma3_joint": "pos"}
MC_ATTACK_SPEC = {"params.Delta": "str", "n": "count", "d_star": "count", "lambda1": "share",
                  "lambda2": "share", "rows": "items", "rows[].d": "count",
                  "rows[].success_rate": "share", "rows[].ci99": "interval",
                  "rows[].exact_probability": "share"}
TV_SPEC = {"eps": "str", "delta": "str", "series": "items", "series[].Delta": "str",
           "series[].d_star": "count", "series[].rows": "items", "series[].rows[].d": "count",
           "series[].rows[].log10_tv": "num", "series[].rows[].lower_bound": "pos"}


def _theory(cache: str, compute: Callable[[], dict], plot: Callable,
            spec: dict[str, str]) -> Builder:
    def build(ctx: Context, _paths: list[Path]) -> list[Path]:
        path = ctx.results / "theory" / cache
        data = theory.cached(path, compute, ctx.recompute)
        shown = ctx.show("theory/" + cache)
        try:
            empirical.require(data, shown, spec)
            return plot(data, ctx.out)
        except empirical.ResultError as exc:
            raise empirical.ResultError(f"{exc}: malformed theory cache; rerun with --recompute"
                                        ) from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise empirical.ResultError(f"{shown}: malformed theory cache "
                                        f"({type(exc).__name__}: {exc}); rerun with --recompute"
                                        ) from None

    return build


def _fig2(ctx: Context, _paths: list[Path]) -> list[Path]:
    return theory.plot_figure2(theory.figure2_data(), ctx.out)


def _loaded(ctx: Context, paths: list[Path], spec: dict[str, str], what: str,
            named: bool = False) -> list[dict]:
    """The usable results among ``paths`` (``named``: each also of the model its file name
    says, :func:`_named_as_its_model`); each unusable one is reported as the ``what`` (a row or
    a panel) that could not be made from it. Raises :class:`NoUsableInput` if none is."""
    out = []
    for p in paths:
        try:
            res = empirical.require(empirical.load(p), ctx.show_path(p), spec)
            out.append(_named_as_its_model(ctx, res, p) if named else res)
        except empirical.ResultError as exc:
            ctx.problem(f"could not make the {what} from {exc}")
    if paths and not out:
        raise NoUsableInput(f"none of its {len(paths)} input(s) is usable")
    return out


def _baselines(ctx: Context) -> dict[str, dict]:
    """``results/baselines/<dataset>.json`` of ``flows.baselines`` (missing ones reported)."""
    out = {}
    for ds in BASELINE_DATASETS:
        p = ctx.results / "baselines" / f"{ds}.json"
        if not p.is_file():
            ctx.problem(f"missing {ctx.show('baselines/' + ds + '.json')} (python -m "
                        f"flows.baselines --dataset {ds} --out-dir {ctx.show('baselines')})")
            continue
        try:
            res = empirical.require(empirical.load(p), ctx.show_path(p), BASELINE_SPEC)
            if res["dataset"] != ds:  # a file of another dataset under this one's name
                raise empirical.ResultError(f"{ctx.show_path(p)}: its dataset is "
                                            f"{res['dataset']!r}, not {ds!r}")
            out[ds] = res
        except empirical.ResultError as exc:
            ctx.problem(f"could not make the baseline rows from {exc}")
    return out


def _named_as_its_model(ctx: Context, res: dict[str, Any], path: Path) -> dict[str, Any]:
    """An evaluation stored as ``<dataset>-<objective>-...json`` (how the workflow names them)
    must be of that dataset and objective: a copy under another model's name is refused."""
    want = f"{res['config']['dataset']}-{res['config']['objective']}-"
    if path.stem.endswith("-cpu") and not path.stem.startswith(want):
        raise empirical.ResultError(f"{ctx.show_path(path)}: it evaluates a "
                                    f"{res['config']['objective']} model of "
                                    f"{res['config']['dataset']}, not {path.stem}")
    return res


def _table1(ctx: Context, paths: list[Path]) -> list[Path]:
    extra = sorted(set((ctx.results / "table1").glob("*.json")) - set(paths))
    return tables.write(tables.table1(_loaded(ctx, list(paths) + extra, EVAL_SPEC, "row",
                                              named=True), _baselines(ctx)), ctx.out, "table1")


def _learning(ctx: Context, paths: list[Path]) -> list[Path]:
    loaded = _loaded(ctx, paths, LEARNING_SPEC, "panel", named=True)
    if not loaded:
        raise MissingResult("no evaluated run to plot")
    return learning.plot_learning_curves(loaded, _baselines(ctx), ctx.out)


ATTACK_CURVE_SPEC = {**ATTACK_SPEC, "eps_l2": "pos", "T_used_bpd": "pos",
                     "threshold_used": "str", "settings": "dict", "thresholds": "dict",
                     "thresholds.*.T_bpd": "pos?", "settings.*.per_image.l2": "items",
                     "settings.*.per_image.l2[]": "nonneg?",  # null: no adversarial found
                     "settings.*.per_image.bpd_adv": "items",
                     "settings.*.per_image.bpd_adv[]": "pos?",
                     "settings.*.per_image.label[]": "index",
                     "settings.*.per_image.pred_adv[]": "index",
                     "settings.*.boundary?.trajectory?.step[]": "index",
                     "settings.*.boundary?.trajectory?.l2[][]": "nonneg?"}


def _attack_results(ctx: Context, paths: list[Path], what: str) -> list[dict]:
    """The usable ``flows.experiments.attacks`` results among ``paths`` (:func:`_loaded` with
    :data:`ATTACK_CURVE_SPEC`), each re-counted from its per-image outcomes: every setting under
    the threshold the run used (:func:`paper_figures.paired.outcomes`) and every stored Table-2
    cell (:func:`paper_figures.paired.table2_cell`), which must be what the outcomes give."""
    loaded = []
    for p in paths:
        shown = ctx.show_path(p)
        try:
            res = empirical.require(empirical.load(p), shown, ATTACK_CURVE_SPEC)
            for name in res["settings"]:  # re-counted as Table 2 counts, checked against it
                paired.outcomes(res, name, res["threshold_used"])
            for th, cells in res["table2"].items():
                for name, cell in cells.items():
                    if cell != (want := paired.table2_cell(res, name, th)):
                        raise empirical.ResultError(
                            f"{shown}: table2.{th}.{name} is {cell[:40]!r}, its per-image "
                            f"outcomes give {want!r}")
        except empirical.ResultError as exc:
            ctx.problem(f"could not make the {what} from {exc}")
            continue
        except (KeyError, TypeError, ValueError) as exc:
            ctx.problem(f"could not make the {what} from {shown}: {type(exc).__name__}: {exc}")
            continue
        loaded.append(res)
    if not loaded:
        raise NoUsableInput(f"none of its {len(paths)} input(s) is usable")
    return loaded


def _table2(ctx: Context, paths: list[Path]) -> list[Path]:
    return tables.write(tables.table2(_attack_results(ctx, paths, "column")), ctx.out, "table2")


def _attack_curves(ctx: Context, paths: list[Path]) -> list[Path]:
    loaded = _attack_results(ctx, paths, "panel")
    return (attack_curves.plot_attack_curves(loaded, ctx.out)
            + attack_curves.plot_boundary_trajectories(loaded, ctx.out))


def _table3_fallback(ctx: Context) -> list[Path]:
    names = [f"table3/{r}.json" for r in BG_RUNS]
    names += [f"table1/{r}.json" for r in MAIN_RUNS]
    return [ctx.results / n for n in names if (ctx.results / n).is_file()]


def _table3(ctx: Context, paths: list[Path]) -> list[Path]:
    if len(paths) == 1 and paths[0].name == "table3.json":
        shown = ctx.show_path(paths[0])
        res = empirical.require(empirical.load(paths[0]), shown, {"rows": "items"})
        rows = []
        for i, r in enumerate(res["rows"]):
            try:
                if not isinstance(r, dict):
                    raise empirical.ResultError(f"{shown}: rows[{i}] is not an object")
                rows.append(empirical.require(r, f"{shown} rows[{i}]", ROW_SPEC))
            except empirical.ResultError as exc:
                ctx.problem(f"could not make the row from {exc}")
        t = tables.table3(rows, ctx.show("bg_mnist/table3.json")
                          + " (python -m flows.experiments.bg_mnist)", _baselines(ctx))
    else:  # fallback: the flows evaluate JSON
        spec = {k: v for k, v in EVAL_SPEC.items() if k != "config.objective"}
        loaded = _loaded(ctx, paths, spec, "row")
        rows = [{"dataset": r["config"]["dataset"], "accuracy": r["metrics"]["accuracy"],
                 "bits_per_dim": r["metrics"]["bits_per_dim"],
                 "n_test": r["metrics"].get("n_test"), "run_eval": r} for r in loaded]
        t = tables.table3(rows, "the flows evaluate JSON (results/table3, results/table1)",
                          _baselines(ctx))
    return tables.write(t, ctx.out, "table3")


def _fig3(ctx: Context, paths: list[Path]) -> list[Path]:
    return empirical.plot_fig3(_loaded(ctx, paths, GAP_SPEC, "panel"), ctx.out)


def _fig1(ctx: Context, paths: list[Path]) -> list[Path]:
    return empirical.plot_fig1(_loaded(ctx, paths, FIG1_SPEC, "panel"), ctx.out, ctx.results)


def _fig4(ctx: Context, paths: list[Path]) -> list[Path]:
    return empirical.plot_interpolation(
        _loaded(ctx, paths, INTERP_SPEC, "panel"), ctx.out, "fig4_interpolation",
        "Figure 4: mean likelihood and class probabilities along interpolations")


def _bg(ctx: Context, paths: list[Path], key: str) -> dict:
    res = empirical.load(paths[0])
    if not res.get(key):
        raise MissingResult(f"{ctx.show_path(paths[0])} has no '{key}' (run the bg_mnist "
                            f"experiment with "
                            f"{'--samples-run' if key == 'samples' else '--n-pairs > 0'})")
    return res


#: The samples of ``bg_mnist`` (Figure 5): one row per conditioning class, the same shape.
SAMPLES_SPEC = {"samples.bits_per_dim_of_samples": "grid",
                "samples.bits_per_dim_of_samples[][]": "pos",
                "samples.pred_of_samples": "class_grid"}


def _fig5(ctx: Context, paths: list[Path]) -> list[Path]:
    res = _bg(ctx, paths, "samples")
    shown = ctx.show_path(paths[0])
    s = empirical.require(res, shown, SAMPLES_SPEC)["samples"]
    bpd, pred = s["bits_per_dim_of_samples"], s["pred_of_samples"]
    if (len(bpd), len(bpd[0])) != (len(pred), len(pred[0])):
        raise empirical.ResultError(
            f"{shown}: samples.bits_per_dim_of_samples is {len(bpd)} x {len(bpd[0])} (classes x "
            f"samples), samples.pred_of_samples {len(pred)} x {len(pred[0])}")
    return empirical.plot_fig5(res, ctx.out, ctx.results)


def _fig6(ctx: Context, paths: list[Path]) -> list[Path]:
    res = _bg(ctx, paths, "interpolation")
    empirical.require(res, ctx.show_path(paths[0]),
                      {f"interpolation.{k}": v for k, v in INTERP_SPEC.items()})
    interp = dict(res["interpolation"])
    if not interp.get("provenance"):  # state the scale of the run it came from
        cfgs = (res.get("provenance") or {}).get("run_config") or []
        match = [c for c in cfgs if c and c.get("dataset") == interp.get("dataset")]
        interp["provenance"] = {"run_config": match[:1]}
    return empirical.plot_interpolation(
        [interp], ctx.out, "fig6_interpolation_bg_mnist",
        "Figure 6: interpolations on BG-MNIST-0 (paper: they behave like CIFAR-10)")


ANNULUS_FLOW_NEED = Need("annulus_flow/annulus_flow.json",
                        "python -m flows.experiments.annulus_flow "
                        "--out {R}/annulus_flow/annulus_flow.json")
ANNULUS_FLOW_SPEC = {"dims": "list", "params.eps": "str", "lambda1.value": "num",
                     "config.flow": "dict", "config.eval": "dict"}


def _annulus_flow(ctx: Context, paths: list[Path]) -> list[Path]:
    res = _loaded(ctx, paths, ANNULUS_FLOW_SPEC, "figure")[0]
    if not res["dims"]:
        raise MissingResult(f"{ctx.show_path(paths[0])} has no dimensions")
    return annulus_flow.plot_annulus_flow(res, ctx.out)


ITEMS: tuple[Item, ...] = (
    Item("fig2", "figure", "Figure 2", "counter-example: class densities of p and q vs. radius, "
         "decision regions, attack arrows (d = 201, eps 0.1, delta 1e-3, Delta 0.1)", _fig2),
    Item("theory_min_dimension", "figure", "beyond the paper",
         "minimal dimension vs. Delta for several (eps, delta): search, closed form, exact",
         _theory("min_dimension.json", theory.compute_min_dimension, theory.plot_min_dimension,
                 MIN_DIMENSION_SPEC)),
    Item("theory_kl", "figure", "beyond the paper",
         "exact joint KLs vs. the Lemma 2/3 bounds as functions of d",
         _theory("kl_vs_d.json", theory.compute_kl_vs_d, theory.plot_kl_vs_d, KL_SPEC)),
    Item("theory_mc_attack", "figure", "beyond the paper",
         "Monte Carlo attack success (99% intervals) vs. the exact probability, as a function of d",
         _theory("mc_attack.json", theory.compute_mc_attack, theory.plot_mc_attack,
                 MC_ATTACK_SPEC)),
    Item("theory_tv", "figure", "beyond the paper",
         "total variation of the data density vs. d",
         _theory("tv_vs_d.json", theory.compute_tv, theory.plot_tv, TV_SPEC)),
    Item("annulus_flow", "figure", "beyond the paper",
         "trained conditional flow (zuko MAF) on the Appendix-D data vs. the theorem's q and the "
         "Bayes classifier: attack success, undetectable share, KL vs. d", _annulus_flow,
         (ANNULUS_FLOW_NEED,)),
    Item("table1", "table", "Table 1", "accuracy and bits/dim: Base / Reweighted / Split",
         _table1, tuple(_evaluate("table1", r) for r in TABLE1_RUNS)),
    Item("learning_curves", "figure", "beyond the paper",
         "learning curves of the trained flows against the targets and the trivial baselines",
         _learning, tuple(_evaluate("table1", r) for r in TABLE1_RUNS)
         + tuple(_evaluate("table3", r) for r in BG_RUNS)),
    Item("fig3", "figure", "Figure 3", "log p(x|y_true) vs. log p(x|y_wrong) over the test set",
         _fig3, tuple(_experiment("likelihood_gap", r) for r in MAIN_RUNS)),
    Item("table2", "table", "Table 2", "attack detection: CW-L2 and boundary, plain and "
         "detection-aware", _table2, tuple(_experiment("attacks", r) for r in ATTACK_RUNS)
         + tuple(_experiment("attacks", r, "boundary") for r in ATTACK_RUNS)),
    Item("attack_curves", "figure", "beyond the paper",
         "Table 2 as curves: fooled and undetected share vs. the L2 budget; boundary attacks' "
         "median L2 per step", _attack_curves,
         tuple(_experiment("attacks", r) for r in ATTACK_RUNS)
         + tuple(_experiment("attacks", r, "boundary") for r in ATTACK_RUNS)),
    Item("fig1", "figure", "Figure 1", "single interpolations: bits/dim and class probabilities",
         _fig1, tuple(_experiment("interpolation", r) for r in MAIN_RUNS)),
    Item("fig4", "figure", "Figure 4", "mean bits/dim and class probabilities along "
         "interpolations", _fig4,
         tuple(_experiment("interpolation", r) for r in MAIN_RUNS)),
    Item("table3", "table", "Table 3", "BG-MNIST accuracy and bits/dim", _table3, (BG_NEED,),
         fallback=_table3_fallback),
    Item("fig5", "figure", "Figure 5", "class-conditional samples on BG-MNIST-0", _fig5,
         (BG_NEED,), require_all=True),
    Item("fig6", "figure", "Figure 6", "interpolations on BG-MNIST-0", _fig6, (BG_NEED,),
         require_all=True),
)
BY_NAME: dict[str, Item] = {it.name: it for it in ITEMS}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_item(item: Item, ctx: Context) -> Outcome:
    """Build one item from whatever inputs exist; never raises for missing or malformed inputs.

    Status: "made"; "partial" (an input missing or unusable, the rest made); "skipped" (nothing
    to build from); "failed" (the item could not be made; the message names the input files).
    """
    out = Outcome(item.name, "made")
    ctx.problems, ctx.item = [], item.name
    present = [ctx.results / n.path for n in item.needs if (ctx.results / n.path).is_file()]
    missing = [n for n in item.needs if not (ctx.results / n.path).is_file()]
    for n in missing:
        msg = f"{item.name}: missing {ctx.show(n.path)} -- produce it with: {ctx.command(n)}"
        out.messages.append(msg)
        _say(msg)
    if missing and item.needs and not present and item.fallback is not None:
        present = item.fallback(ctx)
        if present:
            _say(f"{item.name}: building from {len(present)} fallback file(s) instead")
    if missing and (item.require_all or not present):
        out.status = "skipped"
        _say(f"{item.name}: skipped ({item.paper})")
        return out
    try:
        out.outputs = item.build(ctx, present)
    except MissingResult as exc:
        out.status = "skipped"
        out.messages.append(f"{item.name}: {exc}")
        _say(f"{item.name}: skipped: {exc}")
        return out
    except Exception as exc:  # a malformed result must not stop the other figures
        out.status = "failed"
        out.messages.extend(ctx.problems)
        if isinstance(exc, (empirical.ResultError, NoUsableInput)):
            reason = str(exc)
        else:
            inputs = ", ".join(ctx.show_path(p) for p in present) or "no input files"
            reason = f"{type(exc).__name__}: {exc} (inputs: {inputs})"
        msg = f"{item.name}: could not make {item.paper} ({item.kind}): {' '.join(reason.split())}"
        out.messages.append(msg)
        _say(msg)
        return out
    out.messages.extend(ctx.problems)
    if missing or ctx.problems:
        out.status = "partial"
    return out
