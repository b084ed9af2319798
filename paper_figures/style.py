"""One shared look for every figure: Okabe-Ito colours, font sizes, PNG + PDF output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from foundation import atomic  # noqa: E402

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "skyblue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
CYCLE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "skyblue",
                                "black", "yellow")]

#: Fixed roles, so a colour means the same thing in every figure.
OURS = OKABE_ITO["blue"]
PAPER = OKABE_ITO["orange"]
CLASS0 = OKABE_ITO["blue"]
CLASS1 = OKABE_ITO["orange"]
ATTACK = OKABE_ITO["vermillion"]
THRESHOLD = OKABE_ITO["black"]

RC: dict[str, Any] = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "axes.prop_cycle": matplotlib.cycler(color=CYCLE),
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.05,
    "figure.dpi": 100,
}

DPI = 110


def apply() -> None:
    """Install the shared rcParams (idempotent)."""
    plt.rcParams.update(RC)


def figure(*args: Any, **kwargs: Any) -> tuple[plt.Figure, Any]:
    """``plt.subplots`` with the shared style and constrained layout."""
    apply()
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)


def save(fig: plt.Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``name.png`` and ``name.pdf`` into ``out_dir`` atomically; close the figure."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    try:
        atomic.savefig(fig, paths[0], dpi=DPI)
        atomic.savefig(fig, paths[1])
    finally:
        plt.close(fig)
    return paths


def scale_note(text: str) -> str:
    """Footer text stating the scale of our runs (shown under empirical figures)."""
    return f"Ours: {text}"
