"""PNG files of the experiments' own ``--png-dir`` views (the paper's figures: paper_figures)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def resolve_png_dir(png_dir: str | os.PathLike[str] | None) -> Path | None:
    if png_dir is None:
        return None
    p = Path(png_dir)
    p.mkdir(parents=True, exist_ok=True)
    return p


def savefig(fig: Any, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (:func:`foundation.atomic.savefig`)."""
    from foundation import atomic

    return atomic.savefig(fig, path, **kwargs)
