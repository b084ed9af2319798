"""Stored results that are well-formed JSON but wrong (negative bits/dim, probabilities or
classes out of range, emptied lists, edited Table-2 cells) are refused for their item with one
line naming the file and the value; never drawn into a figure or table with exit 0."""

from __future__ import annotations

import pytest

from paper_figures.empirical import ResultError, require

DOC = {"a": {"b": [{"c": 1}, {"c": -1}]}, "s": {"x": {"l": [0, None]}, "y": {"l": [-1]}},
       "n": None, "g": [[1, 0], [0, 1]], "e": [], "h": [[1, 2], [3]]}


@pytest.mark.parametrize("spec, why", [
    ({"a.b[].c": "pos"}, "'a.b[1].c' is int '-1', expected a number > 0"),
    ({"s.*.l[]": "nonneg?"}, "'s.y.l[0]' is int '-1', expected a number >= 0 or null"),
    ({"a.b[].d": "pos"}, "missing 'a.b[0].d'"),
    ({"a.x.c": "pos"}, "missing 'a.x.c'"),
    ({"n": "pos"}, "'n' is NoneType 'None', expected a number > 0"),
    ({"a.b.*": "num"}, "'a.b' is not an object"),
    ({"s[]": "num"}, "'s' is not a list"),
    ({"e": "items"}, "'e' is list '[]', expected a non-empty list"),
    ({"g": "class_grid", "h": "grid"}, "'h' is list '[[1, 2], [3]]', expected a table"),
    ({"g[][]": "pos"}, "'g[0][1]' is int '0', expected a number > 0"),
    ({"g[]": "interval"}, "'g[0]' is list '[1, 0]', expected an interval [lo, hi] of shares"),
])
def test_require_paths_and_kinds(spec: dict[str, str], why: str) -> None:
    with pytest.raises(ResultError) as exc:
        require(DOC, "F.json", spec)
    assert str(exc.value).startswith("F.json: ") and why in str(exc.value), str(exc.value)


def test_require_accepts_what_matches() -> None:
    require(DOC, "F.json", {"a.b[].c": "num", "s.*.l[]": "num?", "a.b[].d?": "pos", "n": "pos?",
                            "q?.r": "pos", "e[].x": "pos", "g": "class_grid"})
    with pytest.raises(ResultError, match="expected a table .* class indices"):
        require({"g": [[0, 2], [1, 1]]}, "F.json", {"g": "class_grid"})  # 2 rows: class 2 of 2
