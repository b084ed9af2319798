"""Figures 1, 3, 4, 5 and 6 from the stored Section-4 result JSON (no model, no data).

Schemas: see the docstrings of :mod:`flows.experiments.likelihood_gap`, ``interpolation`` and
``bg_mnist``. Every figure states our scale (preset, epochs, images per epoch) and, where the
paper gives numbers, shows them beside ours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from foundation import paper_numbers as pn
from foundation.percent import percent
from paper_figures import style


class ResultError(Exception):
    """A stored result cannot be used (unreadable, not JSON, non-finite, lacks a field); the
    message names the file and what is wrong."""


def _first_non_finite(obj: Any, where: str = "") -> str | None:
    """Dotted path of the first NaN or infinity in ``obj`` (``None`` when all are finite)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "top level"
    if isinstance(obj, dict):
        children = [(f"{where}.{k}" if where else str(k), v) for k, v in obj.items()]
    elif isinstance(obj, list):
        children = [(f"{where}[{i}]", v) for i, v in enumerate(obj)]
    else:
        return None
    for name, v in children:
        found = _first_non_finite(v, name)
        if found:
            return found
    return None


def load(path: Path) -> dict[str, Any]:
    """Read one result JSON: a JSON object with only finite numbers, else :class:`ResultError`
    (NaN, Infinity and numbers like 1e400 are refused, never printed as "nan"/"inf")."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultError(f"{path}: cannot read: {exc}") from None
    try:
        res = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON (truncated or corrupt): {exc}") from None
    except RecursionError:
        raise ResultError(f"{path}: JSON nested too deeply") from None
    if not isinstance(res, dict):
        raise ResultError(f"{path}: expected a JSON object, got {type(res).__name__}")
    bad = _first_non_finite(res)
    if bad is not None:
        raise ResultError(f"{path}: non-finite number at {bad} (refused)")
    return res


#: kinds for :func:`require` and what each means; ``KIND?`` (e.g. ``pos?``) also allows null
_KINDS = {"num": "a number", "str": "a string", "list": "a list", "dict": "an object",
          "nums": "a list of numbers", "pos": "a number > 0", "nonneg": "a number >= 0",
          "count": "an integer >= 1", "share": "a share in [0, 1]",
          "shares": "a list of shares in [0, 1]", "items": "a non-empty list",
          "index": "an integer >= 0", "interval": "an interval [lo, hi] of shares, lo <= hi",
          "grid": "a table (a non-empty list of equal-length non-empty lists)",
          "class_grid": "a table (a non-empty list of equal-length non-empty lists), one row per "
                        "class, of class indices (integers in [0, number of rows))"}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_share(v: Any) -> bool:
    return _is_num(v) and 0 <= v <= 1


def _is_grid(v: Any) -> bool:
    """A non-empty list of equal-length non-empty lists."""
    return (isinstance(v, list) and bool(v) and all(isinstance(r, list) and r for r in v)
            and len({len(r) for r in v}) == 1)


def _list_of(v: Any, ok: Callable[[Any], bool]) -> bool:
    return isinstance(v, list) and bool(v) and all(ok(x) for x in v)


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "num": _is_num, "str": lambda v: isinstance(v, str), "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict), "nums": lambda v: _list_of(v, _is_num),
    "pos": lambda v: _is_num(v) and v > 0, "nonneg": lambda v: _is_num(v) and v >= 0,
    "count": lambda v: _is_int(v, 1), "share": _is_share,
    "shares": lambda v: _list_of(v, _is_share), "items": lambda v: isinstance(v, list) and bool(v),
    "index": _is_int, "interval": lambda v: (isinstance(v, list) and len(v) == 2
                                             and all(map(_is_share, v)) and v[0] <= v[1]),
    "grid": _is_grid,
    "class_grid": lambda v: _is_grid(v) and all(_is_int(x) and x < len(v) for r in v for x in r),
}


def _at(v: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
    """``(path, value)`` for every value a dotted key of :func:`require` names (``where``: the
    path so far); ``KeyError(key)`` where a required key is missing, ``TypeError(path, what it
    should be)`` where ``*`` or ``[]`` meets something else."""
    if not parts:
        yield where, v
        return
    part, rest = parts[0], parts[1:]
    if part == "*":  # every value of an object
        if not isinstance(v, dict):
            raise TypeError(where, "an object")
        for k, x in v.items():
            yield from _at(x, rest, f"{where}.{k}")
        return
    each = 0  # how many list levels to go down ("x[][]": every element of every element)
    while part.endswith("[]"):
        each, part = each + 1, part[:-2]
    optional, part = part.endswith("?"), part.removesuffix("?")
    here = f"{where}.{part}" if where else part
    if not isinstance(v, dict) or part not in v:
        if optional:
            return
        raise KeyError(".".join([here, *rest]))
    v = v[part]
    if optional and v is None:
        return
    yield from _each(v, each, rest, here)


def _each(v: Any, depth: int, rest: list[str], here: str) -> Iterator[tuple[str, Any]]:
    """:func:`_at` for every element ``depth`` list levels down from ``v`` (at ``here``)."""
    if depth == 0:
        yield from _at(v, rest, here)
        return
    if not isinstance(v, list):
        raise TypeError(here, "a list")
    for i, x in enumerate(v):
        yield from _each(x, depth - 1, rest, f"{here}[{i}]")


def require(res: dict[str, Any], path: Path | str, spec: dict[str, str]) -> dict[str, Any]:
    """Check that ``res`` has every dotted key of ``spec`` with the given kind (see ``_KINDS``;
    ``KIND?`` also allows null); :class:`ResultError` naming ``path`` and the key otherwise.
    Returns ``res``.

    A part of a key may be ``*`` (every value of an object), end in ``[]`` (every element of a
    list; an empty list has none; ``[][]``: of every element) or in ``?`` (skipped when absent
    or null), e.g. ``"settings.*.boundary?.trajectory?.l2[][]": "nonneg?"``."""
    for key, kind in spec.items():
        nullable, base = kind.endswith("?"), kind.removesuffix("?")
        check = _CHECKS[base]
        try:
            found = list(_at(res, key.split("."), ""))
        except KeyError as exc:
            raise ResultError(f"{path}: missing {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ResultError(f"{path}: {exc.args[0] or 'top level'!r} is not {exc.args[1]}"
                              ) from None
        for where, v in found:
            if not ((nullable and v is None) or check(v)):
                raise ResultError(f"{path}: {where!r} is {type(v).__name__} {str(v)[:40]!r}, "
                                  f"expected {_KINDS[base]}" + (" or null" if nullable else ""))
    return res


def label(dataset: str) -> str:
    """Display name of a dataset."""
    return pn.DATASET_LABEL.get(dataset, dataset)


def run_config(res: dict[str, Any]) -> dict[str, Any]:
    """The training config of the run behind a result (experiment or evaluate JSON)."""
    prov = res.get("provenance") or {}
    cfg = prov.get("run_config") if isinstance(prov, dict) else None
    if isinstance(cfg, list):  # bg_mnist: one config per run
        cfg = cfg[0] if cfg else None
    return cfg or res.get("config") or {}


def scale_text(res: dict[str, Any]) -> str:
    """One line stating the scale of the run(s) (preset, epochs, images per epoch)."""
    prov = res.get("provenance") or {}
    cfgs = prov.get("run_config") if isinstance(prov, dict) else None
    cfgs = cfgs if isinstance(cfgs, list) else [run_config(res)]
    cfgs = [c for c in cfgs if c]
    if not cfgs:
        return "ours: CPU-scale run (config not recorded)"

    def join(key: str) -> str:
        vals = list(dict.fromkeys(str(c.get(key) or "full set") for c in cfgs))
        return "/".join(vals)

    return (f"ours: preset {join('preset')}, {join('epochs')} epochs x "
            f"{join('train_subset')} images/epoch ({join('objective')} objective)")


def footer(fig: plt.Figure, lines: list[str]) -> None:
    """Scale statement under the figure."""
    fig.text(0.5, -0.01, "\n".join(lines), ha="center", va="top", fontsize=8, color="0.25")


def _raster(path: Path | None) -> np.ndarray | None:
    try:
        return plt.imread(path) if path is not None and Path(path).is_file() else None
    except (OSError, ValueError, SyntaxError):
        return None


# -- Figure 3 ----------------------------------------------------------------------------
def plot_fig3(results: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Figure 3: log p(x|y_true) vs log p(x|y_wrong) histograms and the per-image gap."""
    n = len(results)
    fig, axes = style.figure(n, 2, figsize=(11, 3.6 * n), squeeze=False)
    notes = []
    for i, r in enumerate(results):
        ds = label(r["dataset"])
        h = r["histogram"]
        edges = np.asarray(h["bin_edges"])
        ax = axes[i, 0]
        ax.stairs(h["counts_true"], edges, fill=True, alpha=0.55, color=style.CLASS0,
                  label="$\\log p(x\\,|\\,y_{true})$")
        ax.stairs(h["counts_wrong"], edges, fill=False, lw=1.8, color=style.CLASS1,
                  label="$\\log p(x\\,|\\,y_{wrong})$ (most likely wrong class)")
        ax.set_xlabel("conditional log-likelihood (nats)")
        ax.set_ylabel("test images per bin")
        ax.set_title(f"({chr(97 + i)}) {ds}: test accuracy "
                     f"{percent(r['accuracy'], 1, r['n_test'])}%, n = {r['n_test']}")
        ax.legend(loc="upper left")
        g = r["gap_histogram"]
        ax = axes[i, 1]
        ax.stairs(g["counts"], np.asarray(g["bin_edges"]), fill=True, alpha=0.7,
                  color=style.OKABE_ITO["green"])
        for j, m in enumerate(r["confidence_margin"]):
            ax.axvline(m["margin_nats"], ls=("--", "-.", ":")[j % 3], lw=1.2, color="k",
                       label=f"margin for $p(y|x)\\geq 1-\\delta$, $\\delta$={m['delta']:g}: "
                             f"{m['margin_nats']:.1f} nats")
        sp = r["spread"]["std_log_px_given_true"]
        ax.set_xlabel("gap $\\log p(x|y_{true}) - \\log p(x|y_{wrong})$ (nats)")
        ax.set_ylabel("test images per bin")
        ax.set_title(f"{ds}: median gap {r['gap']['p50']:.1f} nats vs. spread (std) of "
                     f"$\\log p(x|y_{{true}})$ {sp:.0f} nats")
        ax.legend(fontsize=7.5, loc="upper left")
        notes.append(f"{ds} - {scale_text(r)}")
    notes.append("Paper (Sec. 4.2): gap margin 'about 6' (log10, C=10, delta=1e-5) vs. "
                 "log-likelihoods 'in the scale of thousands'; " + pn.PAPER_SCALE)
    fig.suptitle("Figure 3: class membership barely changes the likelihood")
    footer(fig, notes)
    return style.save(fig, out_dir, "fig3_likelihood_gap")


# -- Figures 4 and 6 -----------------------------------------------------------------------
def _threshold_lines(ax: Any, res: dict[str, Any], lo: float, hi: float) -> None:
    """Detection thresholds (bits/dim) that fall inside the plotted range."""
    span = hi - lo
    styles = {"quantile": ("--", style.THRESHOLD), "paper": (":", style.OKABE_ITO["purple"])}
    for name, th in res.get("thresholds", {}).items():
        t = th.get("T_bpd")
        if t is None or not (lo - 0.5 * span <= t <= hi + 0.5 * span):
            continue
        ls, c = styles.get(name, ("-.", "0.4"))
        share = th.get("accepted_share_test")
        acc = f", accepts {100 * share:.1f}% of test" if share is not None else ""
        ax.axhline(t, ls=ls, color=c, lw=1.1, label=f"threshold ({name}) T = {t:.2f}{acc}")


def _interp_row(axes: Any, res: dict[str, Any], tag: str) -> str:
    a = np.asarray(res["alphas"])
    ds = label(res["dataset"])
    m, lo, hi = (np.asarray(res[k]) for k in ("bpd_mean", "bpd_p05", "bpd_p95"))
    ax = axes[0]
    ax.fill_between(a, lo, hi, color=style.OURS, alpha=0.2, lw=0, label="5-95% over pairs")
    ax.plot(a, m, color=style.OURS, label=f"mean over {res['n_pairs']} pairs")
    _threshold_lines(ax, res, float(lo.min()), float(hi.max()))
    ax.invert_yaxis()
    ax.set_xlabel("interpolation coefficient $\\alpha$")
    ax.set_ylabel("bits/dim (axis inverted:\nup = more likely)")
    ax.set_title(f"({tag}) {ds}: likelihood along $x_\\alpha$ (ours: '{res['finding']}')")
    ax.legend(loc="lower center", fontsize=7.5)
    ax = axes[1]
    ax.plot(a, res["p_y0_mean"], color=style.CLASS0, label="$p(y_0|x_\\alpha)$")
    ax.plot(a, res["p_y1_mean"], color=style.CLASS1, label="$p(y_1|x_\\alpha)$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("interpolation coefficient $\\alpha$")
    ax.set_ylabel("mean class probability")
    ax.set_title(f"{ds}: class probabilities along $x_\\alpha$")
    ax.legend(loc="center right")
    shares = res.get("share_paths_all_accepted", {})
    ours = ", ".join(f"{100 * v:.1f}% (T {k})" for k, v in shares.items())
    paper = pn.INTERPOLATION.get(res["dataset"])
    ptxt = (f"paper {100 * paper['share_paths_all_accepted']:.1f}% of {paper['n_pairs']} pairs"
            if paper else "paper: same behaviour as CIFAR-10 (no number given)")
    return f"{ds} paths with every x_alpha accepted: ours {ours}; {ptxt}. {scale_text(res)}"


def plot_interpolation(results: list[dict[str, Any]], out_dir: Path, name: str,
                       title: str) -> list[Path]:
    """Figure 4 / 6: mean bits/dim and class probabilities along interpolations."""
    n = len(results)
    fig, axes = style.figure(n, 2, figsize=(11, 3.7 * n), squeeze=False)
    notes = [_interp_row(axes[i], r, chr(97 + i)) for i, r in enumerate(results)]
    notes.append(pn.PAPER_SCALE)
    fig.suptitle(title)
    footer(fig, notes)
    return style.save(fig, out_dir, name)


# -- Figure 1 ------------------------------------------------------------------------------
def strips_png(res: dict[str, Any], results_dir: Path) -> Path | None:
    """The image strips the interpolation experiment drew (``--png-dir results/figures/RUN``)."""
    run = Path(str((res.get("provenance") or {}).get("run_dir") or "")).name
    p = Path(results_dir) / "figures" / run / f"fig1_strips_{res['dataset']}.png"
    return p if run and p.is_file() else None


def plot_fig1(results: list[dict[str, Any]], out_dir: Path,
              results_dir: Path | None = None) -> list[Path]:
    """Figure 1: single interpolation examples (bits/dim and class probabilities), with the
    experiment's image strips when they were saved under ``results/figures``."""
    n = len(results)
    strips = [strips_png(r, results_dir) if results_dir else None for r in results]
    ncols = 3 if any(strips) else 2
    fig, axes = style.figure(n, ncols, figsize=(5.5 * ncols, 3.6 * n), squeeze=False,
                             width_ratios=[1.4] * (ncols - 2) + [1, 1])
    notes = []
    for i, r in enumerate(results):
        if ncols == 3:
            ax0 = axes[i, 0]
            img = _raster(strips[i])
            if img is not None:
                ax0.imshow(img)
                ax0.set_title(f"{label(r['dataset'])}: interpolated images (experiment's strips)")
            else:
                ax0.text(0.5, 0.5, "image strips not stored", ha="center", va="center")
            ax0.set_axis_off()
        ax_l, ax_r = axes[i, ncols - 2], axes[i, ncols - 1]
        a = np.asarray(r["alphas"])
        ds = label(r["dataset"])
        ex = r.get("examples") or []
        for j, e in enumerate(ex):
            c = style.CYCLE[j % len(style.CYCLE)]
            ax_l.plot(a, e["bpd"], color=c, label=f"pair {j + 1}: {e['y0']} $\\to$ {e['y1']}")
            ax_r.plot(a, e["p_y0"], color=c, ls="-")
            ax_r.plot(a, e["p_y1"], color=c, ls="--")
        bpd = np.concatenate([np.asarray(e["bpd"]) for e in ex]) if ex else np.zeros(1)
        _threshold_lines(ax_l, r, float(bpd.min()), float(bpd.max()))
        ax_l.invert_yaxis()
        ax_l.set_xlabel("interpolation coefficient $\\alpha$")
        ax_l.set_ylabel("bits/dim (axis inverted:\nup = more likely)")
        ax_l.set_title(f"({chr(97 + i)}) {ds}: {len(ex)} example interpolations")
        ax_l.legend(fontsize=7.5, loc="lower center", ncols=2)
        ax_r.plot([], [], "k-", label="$p(y_0|x_\\alpha)$")
        ax_r.plot([], [], "k--", label="$p(y_1|x_\\alpha)$")
        ax_r.set_ylim(-0.02, 1.02)
        ax_r.set_xlabel("interpolation coefficient $\\alpha$")
        ax_r.set_ylabel("class probability")
        ax_r.set_title(f"{ds}: class probabilities of the same pairs")
        ax_r.legend(loc="center right")
        notes.append(f"{ds} - {scale_text(r)}")
    if not all(strips):
        notes.append("Image strips need the test set; the experiment draws them with "
                     "python -m flows.experiments.interpolation --png-dir results/figures/RUN.")
    notes.append(pn.PAPER_SCALE)
    fig.suptitle("Figure 1: likelihood along single interpolations between test images "
                 "of different classes")
    footer(fig, notes)
    return style.save(fig, out_dir, "fig1_interpolation_examples")


# -- Figure 5 ------------------------------------------------------------------------------
def plot_fig5(res: dict[str, Any], out_dir: Path, results_dir: Path) -> list[Path]:
    """Figure 5: class-conditional samples on BG-MNIST-0 (scores from the JSON; the sample
    grid image when the experiment wrote one)."""
    s = res["samples"]
    bpd = np.asarray(s["bits_per_dim_of_samples"], dtype=float)
    pred = np.asarray(s["pred_of_samples"])
    c, k = bpd.shape
    png = s.get("png")
    img = None
    if png:
        for cand in (Path(png), results_dir.parent / png, results_dir / png):
            img = _raster(cand)
            if img is not None:
                break
    ncols = 3 if img is not None else 2
    fig, axes = style.figure(1, ncols, figsize=(4.2 * ncols, 4.0), squeeze=False)
    axes = list(axes[0])
    if img is not None:
        ax = axes.pop(0)
        ax.imshow(img)
        ax.set_axis_off()
        ax.set_title("samples (top row: data), one row per class")
    ax = axes[0]
    hit = (pred == np.arange(c)[:, None]).mean(axis=1)
    ax.bar(np.arange(c), 100 * hit, color=style.OURS)
    ax.set_xticks(np.arange(c))
    ax.set_ylim(0, 105)
    ax.set_xlabel("conditioning class y")
    ax.set_ylabel("% of samples classified as y")
    ax.set_title(f"samples keep their class: {100 * hit.mean():.0f}% overall")
    ax = axes[1]
    for y in range(c):
        ax.plot(np.full(k, y), bpd[y], "o", color=style.OURS, alpha=0.6, ms=4)
    rows = {r["dataset"]: r for r in res.get("rows", [])}
    test = rows.get(s.get("dataset"))
    if test is not None:
        ax.axhline(test["bits_per_dim"], color=style.THRESHOLD, ls="--", lw=1.1,
                   label=f"test-set mean {test['bits_per_dim']:.2f}")
        ax.legend(loc="best")
    ax.set_xticks(np.arange(c))
    ax.set_xlabel("conditioning class y")
    ax.set_ylabel("bits/dim of the sample")
    ax.set_title(f"likelihood of samples (T = {s.get('temperature', '?')})")
    fig.suptitle(f"Figure 5: class-conditional samples, {label(s.get('dataset', '?'))} "
                 f"({k} per class)")
    footer(fig, [scale_text(res) + "; the paper shows samples only (no numbers). "
                 + pn.PAPER_SCALE])
    return style.save(fig, out_dir, "fig5_bg_mnist_samples")
