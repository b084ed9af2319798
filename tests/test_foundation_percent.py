"""foundation.percent: one rounding rule (half up, on the exact share) for every percentage."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.experiments.detection import fmt_ci, pct_ci
from foundation.percent import exact_share, percent, share_text
from paper_figures import summary, tables


def _half_up(x: Fraction, digits: int) -> Fraction:
    """Reference: round ``x >= 0`` half up to ``digits`` decimals, in exact rationals."""
    scale = 10 ** digits
    return Fraction(math.floor(x * scale + Fraction(1, 2)), scale)


@settings(max_examples=400, deadline=None)
@given(n=st.integers(1, 10**7), data=st.data(), digits=st.integers(0, 4))
def test_a_share_is_rounded_half_up_from_its_exact_value(n: int, data: st.DataObject,
                                                         digits: int) -> None:
    k = data.draw(st.integers(0, n))
    want = _half_up(Fraction(100 * k, n), digits)
    text = percent(Fraction(k, n), digits)
    assert Fraction(text) == want
    assert len(text.partition(".")[2]) == digits
    # the same share recorded as a JSON float (k / n) and its count reads the same
    assert percent(k / n, digits, n) == text


def test_ties_round_up_whichever_float_holds_them() -> None:
    # 1971 / 2000 = 98.55%: the double nearest 98.55 lies below it, 100 * 0.9855 above it
    assert f"{100 * 1971 / 2000:.1f}" != f"{100 * 0.9855:.1f}"
    assert percent(1971 / 2000, 1, 2000) == percent(0.9855, 1) == "98.6"
    assert percent(Fraction(1, 8), 1) == "12.5" and percent(Fraction(1, 8), 0) == "13"
    assert percent(0.125, 0) == "13"  # Python's format() gives '12' (half to even)
    assert percent(0.9875) == "98.8" and percent(0.98745, 2) == "98.75"
    assert percent(0, 1, 10) == "0.0" and percent(1, 1, 10) == "100.0"


def test_a_float_that_is_no_count_over_n_keeps_its_printed_decimal() -> None:
    assert exact_share(0.5, 3) == Fraction(1, 2)  # 1.5 of 3 is no count: the float's decimal
    assert exact_share(0.1) == Fraction(1, 10)
    assert exact_share(2 / 3, 3) == Fraction(2, 3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "0.5", None, True])
def test_a_non_number_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        percent(bad)  # type: ignore[arg-type]


def test_share_text_and_every_table_print_the_same_estimate() -> None:
    c = pct_ci(1971, 2000)
    assert share_text(c, 1).startswith("98.6% [")
    assert share_text(pct_ci(0, 0)) == "-" and share_text(None) == "-"
    assert fmt_ci(pct_ci(1, 8)).startswith("13% [")
    row = {"dataset": "bg-mnist-5", "run_dir": "models/bg-mnist-5-reweighted-cpu",
           "n_test": 2000, "accuracy": 1971 / 2000, "accuracy_ci": c, "bits_per_dim": 2.2,
           "paper_accuracy_pct": 99, "paper_bits_per_dim": 1.67}
    markdown = summary.table3({"rows": [row]})
    paper_table = tables.table3([row], "x").markdown()
    assert "98.6% [" in markdown and "98.5" not in markdown
    assert "| 98.6 |" in paper_table
    metrics = {"accuracy": 0.9855, "n_test": 2000, "accuracy_wilson95": [0.979, 0.99]}
    assert tables._acc_cell(metrics).startswith("98.6 [")
