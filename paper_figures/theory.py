"""Figure 2 and the theory figures, computed by the :mod:`annulus` module.

Figure 2 is drawn from the exact construction at the certified parameters of
``python -m annulus.verify --eps 0.1 --delta 1e-3`` (default ``Delta = 0.1``). The four theory
figures (beyond the paper) are computed once and cached as JSON in ``results/theory/``
(``--recompute`` refreshes them), so plotting never repeats the computation.

Each cache carries the fingerprint of what made it (:func:`fingerprint`: the :mod:`annulus`
sources, the source of its compute function and of the helpers of this module it calls, their
default arguments and the module constants they read). A cache made by other code or parameters
is stale: it is recomputed, saying so on stderr, never drawn from silently.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import math
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
from typing import Any

import matplotlib.patches as mpatches
import matplotlib.ticker
import mpmath
import numpy as np

from annulus.attack import attack_radius, run_sampling
from annulus.certificate import build_certificate
from annulus.numeric import log_unit_ball_volume
from annulus.proposition import (
    Params,
    canonical_lambda1,
    minimal_dimension_closed_form,
    minimal_dimension_exact,
    minimal_dimension_search,
)
from foundation import atomic
from paper_figures import style

LN10 = math.log(10)

#: The parameters of Figure 2: ``python -m annulus.verify --eps 0.1 --delta 1e-3``.
FIG2_PARAMS = Params(Fraction("0.1"), Fraction("1e-3"), Fraction("0.1"))

#: (eps, delta) pairs of the minimal-dimension figure.
MIN_DIM_PAIRS: tuple[tuple[str, str], ...] = (
    ("0.1", "1e-3"), ("0.01", "1e-3"), ("0.1", "1e-6"), ("0.01", "1e-6"))


# -- cache --------------------------------------------------------------------------------
CODE_PACKAGES = ("annulus",)
"""Packages whose sources (``*.py``) every theory cache depends on."""


def _names(code: CodeType) -> set[str]:
    """Global names read by ``code`` and the code objects nested in it (comprehensions)."""
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, CodeType):
            out |= _names(c)
    return out


def _parts(fn: Any, seen: set[str]) -> list[str]:
    """What ``fn`` computes with: its source and default arguments, the plain-data globals it
    reads, and (recursively) the functions of its own module it calls."""
    if isinstance(fn, functools.partial):
        return [f"partial{fn.args!r}{sorted(fn.keywords.items())!r}", *_parts(fn.func, seen)]
    name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
    if name in seen:
        return []
    seen.add(name)
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        src = repr(getattr(getattr(fn, "__code__", None), "co_code", fn))
    parts = [name, src, repr(getattr(fn, "__defaults__", None)),
             repr(getattr(fn, "__kwdefaults__", None))]
    code, glob = getattr(fn, "__code__", None), getattr(fn, "__globals__", {})
    for n in sorted(_names(code)) if code is not None else []:
        if n not in glob:
            continue
        v = glob[n]
        if isinstance(v, FunctionType) and v.__module__ == fn.__module__:
            parts += _parts(v, seen)
        elif not (callable(v) or isinstance(v, ModuleType)):
            parts.append(f"{n} = {v!r}")  # a constant of the module (parameters)
    return parts


def fingerprint(compute: Callable[..., Any]) -> dict[str, Any]:
    """sha256 of the code and parameters that make a cache: the sources of
    :data:`CODE_PACKAGES`, the source and defaults of ``compute``, the helpers of its module it
    calls and the constants they read. ``{"sha256": ..., "code": [what was hashed]}``."""
    h = hashlib.sha256()
    for pkg in CODE_PACKAGES:
        root = Path(importlib.import_module(pkg).__file__).parent
        for f in sorted(root.glob("*.py")):
            h.update(f"{pkg}/{f.name}".encode() + b"\0" + f.read_bytes() + b"\0")
    seen: set[str] = set()
    for part in _parts(compute, seen):
        h.update(part.encode() + b"\0")
    return {"sha256": h.hexdigest(),
            "code": [*(f"{pkg}/*.py" for pkg in CODE_PACKAGES), *sorted(seen)]}


def read_cache(path: Path, expected: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The cached JSON at ``path``, or ``None`` (saying why on stderr) when it is missing,
    empty, truncated, non-finite, not a cache of this module, or (``expected``: a
    :func:`fingerprint`) made by other code or parameters."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"{path}: unusable theory cache ({exc}); recomputing", file=sys.stderr)
        return None
    if not isinstance(data, dict):
        print(f"{path}: not a theory cache (not a JSON object); recomputing", file=sys.stderr)
        return None
    if not _all_finite(data):
        print(f"{path}: theory cache holds non-finite numbers; recomputing", file=sys.stderr)
        return None
    if expected is not None:
        made = data.get("fingerprint")
        made = made.get("sha256") if isinstance(made, dict) else None
        if made != expected["sha256"]:
            why = "no fingerprint" if made is None else f"fingerprint {str(made)[:12]}"
            print(f"{path}: STALE theory cache ({why}; the current code and parameters, "
                  f"{', '.join(expected['code'])}: {expected['sha256'][:12]}); recomputing",
                  file=sys.stderr)
            return None
    return data


def _all_finite(obj: Any) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_all_finite(v) for v in obj)
    return True


def cached(path: Path, compute: Callable[[], dict[str, Any]], recompute: bool = False
           ) -> dict[str, Any]:
    """Load ``path`` or (when missing, unusable, stale or ``recompute``) compute it and write it
    there atomically (an interrupted or failed write never leaves a broken cache). Stale: its
    fingerprint is not :func:`fingerprint` of ``compute`` (other code or parameters)."""
    path = Path(path)
    expected = fingerprint(compute)
    data = None if recompute else read_cache(path, expected)
    if data is not None:
        return data
    start = time.perf_counter()
    data = compute()
    data["seconds"] = round(time.perf_counter() - start, 3)
    data["generated_by"] = "python -m paper_figures --recompute"
    data["fingerprint"] = expected
    atomic.write_json(path, data, indent=1, sort_keys=False)
    return data


def _real(x: Any) -> float:
    """``float`` of an exact :mod:`annulus` number: a Fraction, a ``Sci`` (``m * 10**e``, possibly
    far below the float range: computed through mpmath), a ``Complement`` (``1 - x``), or a
    float / mpf."""
    if hasattr(x, "m") and hasattr(x, "e"):  # annulus.numeric.Sci
        m = Fraction(x.m)
        return float(mpmath.mpf(m.numerator) / m.denominator * mpmath.mpf(10) ** x.e)
    if type(x).__name__ == "Complement":  # annulus.numeric.Complement: 1 - x.x
        return 1.0 - _real(x.x)
    return float(x)


def _params(eps: str, delta: str, Delta: str) -> Params:
    return Params(Fraction(eps), Fraction(delta), Fraction(Delta))


def _g(x: str) -> str:
    """A parameter string (``"1/10"``) as a short decimal (``"0.1"``)."""
    return f"{float(Fraction(x)):g}"


def _params_json(p: Params) -> dict[str, str]:
    return {"eps": str(p.eps), "delta": str(p.delta), "Delta": str(p.Delta)}


# -- Figure 2 -----------------------------------------------------------------------------
def figure2_data(params: Params = FIG2_PARAMS) -> dict[str, Any]:
    """Radial profiles, posteriors and decision regions of the certified construction."""
    cert = build_certificate(params)
    d, lam1 = cert.dimension, cert.lambda1
    con = params.construction(d, lam1)
    log_cd = float(log_unit_ball_volume(mpmath.mp, d))
    log_half = math.log(0.5)
    pieces = []
    for pc in con.pieces + [None]:
        lo = float(pc.lo) if pc else float(con.pieces[-1].hi)
        hi = float(pc.hi) if pc else lo + 0.4
        mid = np.array([(lo + hi) / 2])
        row: dict[str, Any] = {"lo": lo, "hi": hi}
        for name, m in (("p", con.p), ("q", con.q)):
            for y in (0, 1):
                v = float(m.log_prob_norms(mid, y)[0])
                # log10 of C_d * m(x|y): density relative to the uniform one on the unit ball
                row[f"log10_{name}{y}"] = (v - log_half + log_cd) / LN10 if np.isfinite(v) else None
            post = m.posterior_on(mpmath.mp, pc, 0) if pc else None
            row[f"{name}_post0"] = None if post is None else float(post)
            lm = float(m.log_prob_norms(mid)[0])
            row[f"log10_{name}"] = (lm + log_cd) / LN10 if np.isfinite(lm) else None
        pieces.append(row)
    return {"params": _params_json(params), "dimension": d, "lambda1": _real(lam1),
            "lambda2": _real(cert.lambda2), "attack_probability": _real(cert.attack_probability),
            "certified": bool(cert.certified), "pieces": pieces}


def _step(ax: Any, pieces: list[dict], key: str, **kw: Any) -> None:
    """Draw a piecewise-constant radial profile (gaps where the density is zero)."""
    first = True
    for row in pieces:
        v = row[key]
        if v is None:
            continue
        ax.hlines(v, row["lo"], row["hi"], label=kw.pop("label", None) if first else None, **kw)
        first = False


def _schematic(ax: Any, Delta_draw: float = 0.18) -> None:
    """2-D cross-section of the supports (Delta drawn wider than 0.1 to be visible)."""
    ax.set_aspect("equal")
    ax.add_patch(mpatches.Circle((0, 0), 1, color=style.CLASS0, alpha=0.55, lw=0))
    ax.add_patch(mpatches.Circle((0, 0), 1, fill=False, hatch="///", ec=style.CLASS1, lw=0))
    ax.add_patch(mpatches.Annulus((0, 0), 1 + Delta_draw, Delta_draw, color=style.CLASS0,
                                  alpha=0.9, lw=0))
    ax.add_patch(mpatches.Annulus((0, 0), 3, 1, color=style.CLASS1, alpha=0.55, lw=0))
    for ang in np.linspace(0.3, 2 * np.pi + 0.3, 7)[:-1]:
        u = np.array([np.cos(ang), np.sin(ang)])
        ax.annotate("", xy=0.72 * u, xytext=(1 + 0.8 * Delta_draw) * u,
                    arrowprops={"arrowstyle": "-|>", "color": style.ATTACK, "lw": 1.6})
    ax.set_xlim(-3.2, 3.2)
    ax.set_ylim(-3.2, 3.2)
    ax.set_xticks([-3, -2, -1, 0, 1, 2, 3])
    ax.set_yticks([-3, 0, 3])
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.grid(False)
    handles = [
        mpatches.Patch(color=style.CLASS0, alpha=0.55, label="ball: class 0 ($\\lambda_1$)"),
        mpatches.Patch(fill=False, hatch="///", ec=style.CLASS1,
                       label="ball: class 1 ($\\lambda_2$)"),
        mpatches.Patch(color=style.CLASS0, alpha=0.9, label="shell $1<r<1+\\Delta$: class 0"),
        mpatches.Patch(color=style.CLASS1, alpha=0.55, label="annulus $2<r<3$: class 1"),
        mpatches.Patch(color=style.ATTACK, label="attack $x\\to\\bar x$"),
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=7, bbox_to_anchor=(1.0, 1.0))
    ax.set_title("(a) supports of p, 2-D sketch ($\\Delta$ exaggerated)")


def _decision_bars(ax: Any, data: dict, xlim: tuple[float, float], annotate: bool) -> None:
    """Coloured bars of the predicted class along the radius: Bayes (p) and model (q)."""
    delta = float(Fraction(data["params"]["delta"]))
    for yrow, name in ((1, "p"), (0, "q")):
        for row in data["pieces"]:
            post = row[f"{name}_post0"]
            if post is None:
                continue
            cls = 0 if post >= 0.5 else 1
            conf = post if cls == 0 else 1 - post
            lo, hi = max(row["lo"], xlim[0]), min(row["hi"], xlim[1])
            if hi <= lo:
                continue
            ax.barh(yrow, hi - lo, left=lo, height=0.5,
                    color=style.CLASS0 if cls == 0 else style.CLASS1,
                    alpha=0.85 if conf >= 1 - delta - 1e-12 else 0.4, ec="white", lw=0.8)
            if annotate:
                txt = f"{name}({cls}|x)" + ("=1" if conf == 1.0 else f"={conf:.4f}")
                ax.text((lo + hi) / 2, yrow, txt, ha="center", va="center", fontsize=7.5,
                        color="white" if conf >= 1 - delta - 1e-12 else "black")
    ax.set_yticks([1, 0], ["Bayes-optimal\n(data p)", "model q"])
    ax.set_xlim(*xlim)
    ax.set_ylim(-0.6, 1.6)
    ax.grid(False, axis="y")


def plot_figure2(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Figure 2: class densities of p and q against the radius, decision regions, attacks."""
    d = data["dimension"]
    P = data["params"]
    fig, axes = style.figure(2, 2, figsize=(11, 7.6))
    _schematic(axes[0, 0])

    pcs = data["pieces"]
    axes[0, 1].remove()
    sub = axes[0, 1].get_subplotspec().subgridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    top, bot = fig.add_subplot(sub[0]), fig.add_subplot(sub[1])
    for ax in (top, bot):
        _step(ax, pcs, "log10_p0", color=style.CLASS0, lw=2.6, label="data $p(x|y{=}0)$")
        _step(ax, pcs, "log10_q0", color=style.CLASS0, lw=1.6, linestyles="--",
              label="model $q(x|y{=}0)$")
        _step(ax, pcs, "log10_p1", color=style.CLASS1, lw=2.6,
              label="data $p(x|y{=}1)$ = model $q(x|y{=}1)$")
        ax.set_xlim(0, 3.3)
    vals = [v for row in pcs for k in ("log10_p0", "log10_q0", "log10_p1")
            if (v := row[k]) is not None]
    near = [v for v in vals if v > -30]
    far = [v for v in vals if v <= -30] or [min(vals)]
    top.set_ylim(min(near) - 1.5, max(near) + 1.0)
    bot.set_ylim(min(far) - 2, max(far) + 2)
    top.spines["bottom"].set_visible(False)
    top.tick_params(labelbottom=False, bottom=False)
    top.set_ylabel("$\\log_{10}[C_d\\cdot$density$]$ (relative to\nuniform density on unit ball)")
    top.set_title(f"(b) class-conditional densities in $d={d}$ (y-axis broken)")
    top.legend(loc="center right", fontsize=8)
    bot.set_xlabel("radius $r = \\|x\\|$")

    _decision_bars(axes[1, 0], data, (0, 3.3), annotate=False)
    axes[1, 0].set_xlabel("radius $r = \\|x\\|$")
    axes[1, 0].set_title(
        "(c) predicted class (dark: confidence $\\geq 1-\\delta$; none: no support)")
    axes[1, 0].legend(handles=[mpatches.Patch(color=style.CLASS0, label="class 0"),
                               mpatches.Patch(color=style.CLASS1, label="class 1")],
                      loc="upper right", ncols=2)

    ax = axes[1, 1]
    Delta = float(Fraction(P["Delta"]))
    xlim = (0.88, 1.0 + Delta + 0.03)
    _decision_bars(ax, data, xlim, annotate=True)
    for r in np.linspace(1.0 + 0.12 * Delta, 1.0 + 0.92 * Delta, 5):
        s = float(attack_radius(r, Delta))
        ax.annotate("", xy=(s, 0.28), xytext=(r, 0.28),
                    arrowprops={"arrowstyle": "-|>", "color": style.ATTACK, "lw": 1.5,
                                "connectionstyle": "arc3,rad=0.35"})
    ax.text(1.0, -0.48, "attack $\\|\\bar x\\| = (1+\\|x\\|-\\Delta)/2$, "
            "$\\|x-\\bar x\\|\\leq\\Delta$", color=style.ATTACK, ha="center", fontsize=8.5)
    ax.axvline(1.0, color="k", lw=0.6)
    qs = {("ball" if row["hi"] <= 1 else "shell"): row["log10_q"] for row in data["pieces"]
          if row["hi"] <= 1 + Delta and row["log10_q"] is not None}
    ax.text(1.0, 1.42, f"model density $\\log_{{10}} C_d q(x)$: shell {qs['shell']:.1f} $\\to$ "
            f"ball {qs['ball']:.1f} (rises)", ha="center", fontsize=8.5)
    ax.set_xlabel("radius $r = \\|x\\|$ (zoom on the shell)")
    ax.set_title(f"(d) attack: shell $\\to$ ball flips q, not p ($\\Delta$ = {_g(P['Delta'])})")
    fig.suptitle(
        f"Figure 2 (exact construction): $\\epsilon$ = {_g(P['eps'])}, "
        f"$\\delta$ = {_g(P['delta'])}, $\\Delta$ = {_g(P['Delta'])}, d = {d}, "
        f"$\\lambda_1$ = {data['lambda1']:.4g}, "
        f"$\\lambda_2$ = {data['lambda2']:.4g}; exact attack probability "
        f"{data['attack_probability']:.4f}", fontsize=10.5)
    return style.save(fig, out_dir, "fig2_counterexample")


# -- minimal dimension ---------------------------------------------------------------------
def compute_min_dimension(n_Delta: int = 21) -> dict[str, Any]:
    """``d*`` by search, closed form and the exact predicate on a log grid of Delta."""
    grid = [f"{v:.3g}" for v in np.geomspace(0.01, 1.0, n_Delta)]
    series = [{"eps": eps, "delta": delta, "rows": [min_dimension_row(eps, delta, D) for D in grid]}
              for eps, delta in MIN_DIM_PAIRS]
    return {"figure": "min_dimension", "series": series}


def min_dimension_row(eps: str, delta: str, Delta: str) -> dict[str, Any]:
    """One point of :func:`compute_min_dimension`."""
    p = _params(eps, delta, Delta)
    return {"Delta": float(Fraction(Delta)), "search": minimal_dimension_search(p),
            "closed_form": minimal_dimension_closed_form(p), "exact": minimal_dimension_exact(p)}


def plot_min_dimension(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Minimal dimension against Delta: search (markers) and closed form (lines)."""
    fig, ax = style.figure(figsize=(6.8, 4.6))
    agree = total = 0
    for i, s in enumerate(data["series"]):
        c = style.CYCLE[i]
        D = [r["Delta"] for r in s["rows"]]
        ax.plot(D, [r["closed_form"] for r in s["rows"]], color=c, lw=1.6,
                label=f"$\\epsilon$={s['eps']}, $\\delta$={s['delta']}")
        ax.plot(D, [r["search"] for r in s["rows"]], "o", mfc="none", color=c, ms=6)
        ax.plot(D, [r["exact"] for r in s["rows"]], "x", color=c, ms=4.5)
        agree += sum(r["search"] == r["closed_form"] for r in s["rows"])
        total += len(s["rows"])
    ax.plot([], [], "k-", label="closed form (Lambert W)")
    ax.plot([], [], "ko", mfc="none", label="search (certified)")
    ax.plot([], [], "kx", label="exact KLs / posteriors")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("attack budget $\\Delta$ (L2 radius)")
    ax.set_ylabel("minimal dimension $d^*$")
    ax.set_title(f"Minimal dimension of the construction (search = closed form at "
                 f"{agree}/{total} points)")
    ax.legend(ncols=2, fontsize=7.5)
    return style.save(fig, out_dir, "theory_min_dimension")


# -- KLs against the lemma bounds ------------------------------------------------------------
def compute_kl_vs_d(params: Params = FIG2_PARAMS, n: int = 36) -> dict[str, Any]:
    """Exact joint KLs and Lemma 2/3 bounds (joint = half the class-0 bound), canonical lambda1.

    The working precision grows with ``d`` (the KLs are ~``(1+Delta)^-d``-small differences).
    """
    d_star = minimal_dimension_search(params)
    ds = sorted({int(v) for v in np.geomspace(max(2, d_star // 2), 10 * d_star, n)} | {d_star})
    rows = [kl_row(params, d) for d in ds]
    return {"figure": "kl_vs_d", "params": _params_json(params), "d_star": d_star, "rows": rows}


def kl_row(params: Params, d: int) -> dict[str, Any]:
    """One point of :func:`compute_kl_vs_d`."""
    digits = int(d * math.log10(1 + float(params.Delta))) + 40
    with mpmath.mp.workdps(digits):
        lam1 = canonical_lambda1(params, d)
        con = params.construction(d, lam1)
        return {"d": d, "lambda1": _real(lam1), "dps": digits,
                "kl_q_p_joint": float(con.kl_q_p_joint()),
                "kl_p_q_joint": float(con.kl_p_q_joint()),
                "lemma2_joint": float(con.lemma2_bound() / 2),
                "lemma3_joint": float(con.lemma3_bound() / 2)}


def plot_kl_vs_d(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Exact joint KLs and the lemma bounds as functions of d, and their ratio."""
    rows, P = data["rows"], data["params"]
    d = np.array([r["d"] for r in rows])
    col = {"q_p": style.OKABE_ITO["blue"], "p_q": style.OKABE_ITO["orange"]}
    fig, (ax, ax2) = style.figure(1, 2, figsize=(11, 4.4))
    ax.plot(d, [r["kl_q_p_joint"] for r in rows], color=col["q_p"],
            label="exact KL(q(x,y) || p(x,y))")
    ax.plot(d, [r["lemma2_joint"] for r in rows], "--", color=col["q_p"],
            label="Lemma 2 bound / 2:  $\\frac{1}{2}\\log\\frac{1}{1-\\lambda_1}$")
    ax.plot(d, [r["kl_p_q_joint"] for r in rows], color=col["p_q"],
            label="exact KL(p(x,y) || q(x,y))")
    ax.plot(d, [r["lemma3_joint"] for r in rows], "--", color=col["p_q"],
            label="Lemma 3 bound / 2:  $\\frac{1}{2}\\lambda_1 d \\log(1+\\Delta)$")
    eps = float(Fraction(P["eps"]))
    for a in (ax, ax2):
        a.axvspan(d.min(), data["d_star"], color="0.85", alpha=0.6, lw=0,
                  label=f"$d < d^*$ = {data['d_star']} (conditions fail)")
        a.set_xscale("log")
        a.set_xlabel("dimension $d$")
    ax.axhline(eps, color="k", lw=1, ls=":", label=f"$\\epsilon$ = {_g(P['eps'])}")
    ax.set_yscale("log")
    ax.set_ylabel("KL divergence (nats)")
    ax.set_title("(a) exact joint KLs and the lemma bounds")
    ax.legend(fontsize=7.5, loc="lower left")
    ax2.plot(d, [r["kl_q_p_joint"] / r["lemma2_joint"] for r in rows], color=col["q_p"],
             label="KL(q||p) / Lemma-2 bound")
    ax2.plot(d, [r["kl_p_q_joint"] / r["lemma3_joint"] for r in rows], color=col["p_q"],
             label="KL(p||q) / Lemma-3 bound")
    ax2.axhline(1.0, color="k", lw=1, ls=":")
    ax2.set_ylim(0, 1.1)
    ax2.set_ylabel("exact KL / bound (tightness)")
    ax2.set_title("(b) how tight the bounds are")
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"KLs of the construction with the canonical $\\lambda_1(d)$: "
                 f"$\\epsilon$ = {_g(P['eps'])}, $\\delta$ = {_g(P['delta'])}, "
                 f"$\\Delta$ = {_g(P['Delta'])}")
    return style.save(fig, out_dir, "theory_kl_vs_d")


# -- Monte Carlo attack success ------------------------------------------------------------
MC_DIMS = (150, 190, 195, 199, 200, 201, 202, 210, 300, 1000)


def compute_mc_attack(params: Params = FIG2_PARAMS, n: int = 20000,
                      dims: tuple[int, ...] = MC_DIMS) -> dict[str, Any]:
    """Sampled success rate (99% Wilson interval) and exact probability, lambda's fixed at d*."""
    cert = build_certificate(params)
    rows = [mc_attack_row(params, cert, d, i, n) for i, d in enumerate(dims)]
    return {"figure": "mc_attack", "params": _params_json(params), "n": n,
            "d_star": cert.dimension, "lambda1": _real(cert.lambda1),
            "lambda2": _real(cert.lambda2), "rows": rows}


def mc_attack_row(params: Params, cert: Any, d: int, seed: int, n: int) -> dict[str, Any]:
    """One point of :func:`compute_mc_attack` (``cert``: the certificate of ``params``)."""
    con = params.construction(cert.dimension, cert.lambda1)
    res = run_sampling(params, con, cert.attack_probability, n, seed=seed, dimension=d).to_json()
    return {"d": d, "success_rate": res["success_rate"], "ci99": res["ci99"],
            "exact_probability": float(res["exact_probability"]), "seed": seed}


def plot_mc_attack(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Monte Carlo success rate with 99% intervals against the exact probability vs d."""
    rows, P = data["rows"], data["params"]
    d = np.array([r["d"] for r in rows])
    rate = np.array([r["success_rate"] for r in rows])
    lo = np.array([r["ci99"][0] for r in rows])
    hi = np.array([r["ci99"][1] for r in rows])
    fig, ax = style.figure(figsize=(6.8, 4.4))
    ax.plot(d, [r["exact_probability"] for r in rows], "-", color=style.OKABE_ITO["black"],
            lw=1.2, drawstyle="steps-post", label="exact probability (certificate)")
    ax.errorbar(d, rate, yerr=[rate - lo, hi - rate], fmt="o", color=style.ATTACK, capsize=3,
                ms=5, label=f"Monte Carlo, n = {data['n']}, 99% Wilson interval")
    ax.axvline(data["d_star"], color="0.5", lw=0.8, ls=":")
    ax.text(data["d_star"] * 1.02, 0.2, f"$d^*$ = {data['d_star']}", color="0.3", fontsize=8.5)
    ax.set_xscale("log")
    ticks = [150, 200, 300, 500, 1000]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(-0.03, 0.6)
    ax.set_xlabel("dimension $d$ (log scale)")
    ax.set_ylabel("P(attack succeeds), properties 1-5")
    ax.set_title(f"Attack success vs. d ($\\lambda_1$={data['lambda1']:.4g}, "
                 f"$\\lambda_2$={data['lambda2']:.3g} fixed at $d^*$; $\\Delta$={_g(P['Delta'])})")
    ax.legend(loc="center right")
    return style.save(fig, out_dir, "theory_mc_attack")


# -- total variation ------------------------------------------------------------------------
TV_DELTAS = ("0.01", "0.1", "1")


def compute_tv(eps: str = "0.1", delta: str = "1e-3", n: int = 24) -> dict[str, Any]:
    """``TV(p) = int |grad p| dx`` against d, canonical lambda1, for several Delta."""
    series = []
    for D in TV_DELTAS:
        p = _params(eps, delta, D)
        d_star = minimal_dimension_search(p)
        ds = sorted({int(v) for v in np.geomspace(d_star, 100 * d_star, n)})
        series.append({"Delta": D, "d_star": d_star, "rows": [tv_row(p, d) for d in ds]})
    return {"figure": "tv_vs_d", "eps": eps, "delta": delta, "series": series}


def tv_row(p: Params, d: int) -> dict[str, Any]:
    """One point of :func:`compute_tv`."""
    lam1 = canonical_lambda1(p, d)
    con = p.construction(d, lam1)
    return {"d": d, "log10_tv": float(con.log_total_variation()) / LN10,
            "lower_bound": d * (1 - _real(p.lambda2_of(lam1))) / 6}


def plot_tv(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """Total variation of the data density against d (it grows; Property 7 as printed fails)."""
    fig, ax = style.figure(figsize=(6.8, 4.4))
    for i, s in enumerate(data["series"]):
        d = [r["d"] for r in s["rows"]]
        ax.plot(d, [10 ** r["log10_tv"] for r in s["rows"]], color=style.CYCLE[i],
                label=f"TV(p), $\\Delta$ = {s['Delta']} ($d^*$ = {s['d_star']})")
        ax.plot(d, [r["lower_bound"] for r in s["rows"]], "--", color=style.CYCLE[i], lw=1.1)
    ax.plot([], [], "k--", lw=1.1, label="lower bound $d(1-\\lambda_2)/6$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("dimension $d$")
    ax.set_ylabel("total variation $\\int \\|\\nabla p(x)\\|\\,dx$")
    ax.set_title(f"Total variation of the data density ($\\epsilon$={data['eps']}, "
                 f"$\\delta$={data['delta']}, canonical $\\lambda_1$):\n"
                 "it grows like d, so Property 7 (\"as small as desired\") fails as printed")
    ax.legend(fontsize=8)
    return style.save(fig, out_dir, "theory_total_variation")
