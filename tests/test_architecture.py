"""The packages depend on each other one way only (README, "Architecture"): ``annulus ->
foundation``, ``flows -> foundation``, ``flows/experiments/annulus_flow.py -> annulus``,
``paper_figures -> annulus, foundation``; no cycle. In detail:

* ``foundation`` imports none of ``annulus``, ``flows``, ``paper_figures``, nor torch, mpmath or
  sympy (and imports with torch unavailable);
* ``annulus`` imports nothing from ``flows`` or ``paper_figures``;
* ``flows`` imports nothing from ``paper_figures``, and ``annulus`` only in
  ``flows/experiments/annulus_flow.py`` (that experiment uses the exact model);
* ``paper_figures`` imports ``annulus`` (theory figures) and ``foundation``, nothing from
  ``flows`` (it reads the files ``flows`` wrote);
* no experiment (a ``flows/experiments`` module with a ``main``) imports another: what two share
  lives in a library module beside them (``runner``, ``scored_runs``, ``interpolation_paths``...).

Every import counts, also one inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("foundation", "annulus", "flows", "paper_figures")

#: Top-level modules each package must never import.
FORBIDDEN: dict[str, set[str]] = {
    "foundation": {"annulus", "flows", "paper_figures", "torch", "mpmath", "sympy"},
    "annulus": {"flows", "paper_figures"},
    "flows": {"paper_figures", "annulus"},
    "paper_figures": {"flows"},
}

#: The only files allowed an import that :data:`FORBIDDEN` refuses to their package.
EXCEPTIONS: dict[str, set[str]] = {
    "flows/experiments/annulus_flow.py": {"annulus"},
}


def imported_modules(path: Path, package: tuple[str, ...] | None = None) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved against
    ``package``, by default the file's own package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join((*base, node.module) if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_no_upward_import(package: str) -> None:
    files = _files(package)
    assert files, f"{package}/ has no Python files"
    bad = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        allowed = EXCEPTIONS.get(rel, set())
        for module in sorted(imported_modules(path)):
            top = module.split(".")[0]
            if top in FORBIDDEN[package] and top not in allowed:
                bad.append(f"{rel} imports {module}")
    assert not bad, "imports against the architecture:\n" + "\n".join(bad)


def test_the_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    src = tmp_path / "probe.py"
    src.write_text("def f():\n    from flows import cli\n    import torch.nn\n"
                   "from ..annulus import attack\nfrom . import errors\n")
    found = imported_modules(src, package=("foundation", "sub"))
    assert {"flows", "torch.nn", "foundation.annulus", "foundation.sub"} <= found


def test_no_experiment_imports_another() -> None:
    folder = ROOT / "flows" / "experiments"
    experiments = {p.stem for p in folder.glob("*.py")
                   if any(isinstance(n, ast.FunctionDef) and n.name == "main"
                          for n in ast.parse(p.read_text(encoding="utf-8")).body)}
    assert {"attacks", "bg_mnist", "interpolation", "likelihood_gap"} <= experiments
    bad = [f"{name} imports {module}" for name in sorted(experiments)
           for module in sorted(imported_modules(folder / f"{name}.py"))
           if module.startswith("flows.experiments.")
           and module.split(".")[2] in experiments - {name}]
    bad += [f"{name} imports flows.experiments.{{{', '.join(sorted(set(n) & experiments))}}}"
            for name in sorted(experiments)
            for n in _imported_names(folder / f"{name}.py", "flows.experiments")
            if set(n) & (experiments - {name})]
    assert not bad, "experiments importing experiments:\n" + "\n".join(bad)


def _imported_names(path: Path, module: str) -> list[list[str]]:
    """The names of each ``from MODULE import a, b`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [[a.name for a in n.names] for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == module and not n.level]


def test_foundation_imports_without_torch() -> None:
    modules = sorted(p.stem for p in _files("foundation") if p.stem != "__init__")
    code = (
        "import sys\n"
        "for name in ('torch', 'mpmath', 'sympy', 'annulus', 'flows', 'paper_figures'):\n"
        "    sys.modules[name] = None  # any import of it raises ImportError\n"
        "import importlib\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('foundation.' + m)\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
