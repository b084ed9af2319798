"""Per-image outcomes of stored attack results and McNemar's exact test."""

from __future__ import annotations

import numpy as np
import pytest

from paper_figures import paired


def _result(k_stored: int, detection_aware: bool = False) -> dict:
    # 5 images: fooled+accepted+close, fooled+rejected, not fooled, unchanged (L2 = 0) but
    # "misclassified" by re-scoring noise, not found (L2 stored as null = inf)
    per_image = {"index": [3, 8, 11, 20, 31], "label": [1, 2, 3, 4, 5],
                 "found": [True, True, True, True, False], "pred_adv": [0, 0, 3, 0, 0],
                 "l2": [0.5, 0.5, 0.5, 0.0, None], "bpd_adv": [1.0, 3.0, 1.0, 1.0, 1.0]}
    cell = {"undetected_within_eps": {"k": k_stored}}
    return {"eps_l2": 1.5, "threshold_used": "quantile",
            "thresholds": {"quantile": {"T_bpd": 2.0}, "paper": {"T_bpd": None}},
            "settings": {"cw": {"per_image": per_image, "detection_aware": detection_aware,
                                "table2": {"quantile": cell}}}}


def test_outcomes_recount_the_stored_cell() -> None:
    o = paired.outcomes(_result(1), "cw", "quantile")
    assert o.undetected_within_eps.tolist() == [True, False, False, False, False]
    assert o.fooled.tolist() == [True, True, False, False, False]  # unchanged never counts
    assert o.l2.tolist() == [0.5, 0.5, 0.5, 0.0, np.inf]  # not found: no budget reaches it
    with pytest.raises(ValueError, match="re-counted"):
        paired.outcomes(_result(2), "cw", "quantile")
    with pytest.raises(ValueError, match="no paper threshold"):
        paired.outcomes(_result(1), "cw", "paper")


def test_final_check_breakdown() -> None:
    assert paired.final_check_breakdown(_result(1), "cw") == {"not_fooled": 2, "rejected": 0}
    assert paired.final_check_breakdown(_result(1, True), "cw") == {"not_fooled": 2,
                                                                     "rejected": 1}


def test_mcnemar_exact() -> None:
    a = np.array([False] * 22 + [True] * 10 + [False] * 68)
    b = np.array([True] * 22 + [True] * 10 + [False] * 68)
    m = paired.mcnemar(a, b)
    assert (m["a_only"], m["b_only"], m["a"], m["b"]) == (0, 22, 10, 32)
    assert m["p_exact"] == pytest.approx(2 * 0.5 ** 22, rel=1e-9)
    assert paired.mcnemar(a, a)["p_exact"] == 1.0
    # 3 vs 1 discordant: P(X <= 1 or X >= 3), X ~ Bin(4, 1/2) = 10/16
    m = paired.mcnemar(np.array([1, 1, 1, 0, 0], bool), np.array([0, 0, 0, 1, 0], bool))
    assert m["p_exact"] == pytest.approx(10 / 16)
    with pytest.raises(ValueError):
        paired.mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_compare_needs_the_same_images() -> None:
    r1, r2 = _result(1), _result(1)
    assert paired.compare(r1, "cw", r2, "cw")["p_exact"] == 1.0
    r2["settings"]["cw"]["per_image"]["index"] = [3, 8, 11, 20, 32]
    with pytest.raises(ValueError, match="different images"):
        paired.compare(r1, "cw", r2, "cw")


def test_attack_curves_at_eps_are_the_table2_cells() -> None:
    from paper_figures.attack_curves import success_curves

    res = _result(1)
    res["settings"]["cw"]["table2"]["quantile"]["fooled_within_eps"] = {"k": 2}
    fooled, undetected = success_curves(res, "cw", np.array([0.0, 0.4, 1.5, 1e9]))
    assert fooled.tolist() == [0.0, 0.0, 40.0, 40.0]  # 2 of 5 images, from L2 = 0.5 on
    assert undetected.tolist() == [0.0, 0.0, 20.0, 20.0]
    cell = res["settings"]["cw"]["table2"]["quantile"]
    n = 5
    assert undetected[2] == 100 * cell["undetected_within_eps"]["k"] / n
    assert fooled[2] == 100 * cell["fooled_within_eps"]["k"] / n
