"""``git_dirty`` says whether the code that ran differs from the recorded commit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from foundation import provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _repo(tmp_path: Path) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    for rel in ("flows/code.py", "results/r.json", "models/m/config.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("0\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return tmp_path


def test_outputs_do_not_make_the_tree_dirty_code_does(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path)
    monkeypatch.setattr(provenance, "REPO_ROOT", repo)
    assert provenance.git_dirty() is False
    (repo / "results/r.json").write_text("1\n")
    (repo / "models/m/config.json").write_text("1\n")
    (repo / "results/new.json").write_text("untracked\n")
    assert provenance.git_dirty() is False
    (repo / "flows/code.py").write_text("1\n")
    assert provenance.git_dirty() is True


def test_outside_a_checkout_dirty_is_unknown(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    assert provenance.git_dirty() is None
