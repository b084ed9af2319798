"""Attacks on 8-bit images: the continuous CW against foolbox's, rounding inside the loop, the
rounded-input boundary classifier, convergence rule, detection evidence, the CLI end to end."""

from __future__ import annotations

import json
import math
import warnings

import foolbox
import numpy as np
import pytest
import torch

from flows import pixels
from flows.experiments import attacks, scored_runs
from flows.experiments.cw import MAX_CONST, CWCriterion, CWSettings, cw_l2


@pytest.fixture(scope="module")
def test_set(tiny_model, data_dir):
    k, y = scored_runs.load_test_images("mnist", data_dir=str(data_dir))
    return k, y, scored_runs.score(tiny_model, k, draws=2)


def test_cw_with_infinite_threshold_is_foolbox_cw(tiny_model, test_set) -> None:
    k, y, sc = test_set
    ok = np.flatnonzero(sc.pred == y.numpy())[:4]
    xs, ys = pixels.bin_centre(k[ok]), y[ok]
    kw = dict(binary_search_steps=2, steps=10, stepsize=0.2, initial_const=1.0)
    settings = CWSettings(steps=kw["steps"], binary_steps=kw["binary_search_steps"],
                          initial_const=kw["initial_const"], stepsize=kw["stepsize"])
    ours = cw_l2(tiny_model, xs, ys, settings, CWCriterion(threshold_bpd=math.inf))
    # foolbox attacks the model itself: its eval-mode forward, log p(x|y) with the fixed padding
    # noise, is cw_l2's model.logits less the constant log p(y), which changes no logit difference
    fm = foolbox.PyTorchModel(tiny_model.eval(), bounds=(-0.5, 0.5))
    fb = foolbox.attacks.L2CarliniWagnerAttack(**kw).run(
        fm, xs, foolbox.criteria.Misclassification(ys))
    fb_found = (fm(fb).argmax(1) != ys).numpy()
    assert ours.found.any()
    np.testing.assert_array_equal(ours.found, fb_found)
    torch.testing.assert_close(ours.adv[ours.found], fb[ours.found], atol=1e-5, rtol=0)
    assert torch.equal(ours.adv_k, pixels.to_grid(ours.adv))


def test_grid_cw_successes_are_images_that_fool_with_the_margin(tiny_model, test_set) -> None:
    k, y, sc = test_set
    ok = np.flatnonzero(sc.pred == y.numpy())[:6]
    draw = scored_runs.FixedDraw(tiny_model, seed=5)
    kappa = 2.0
    res = cw_l2(tiny_model, pixels.bin_centre(k[ok]), y[ok],
                CWSettings(steps=15, binary_steps=2, initial_const=1.0, stepsize=0.2),
                CWCriterion(confidence=kappa), grid=draw)
    assert res.found.any()
    z = draw.logits_k(res.adv_k).detach()
    yy = y[ok]
    rows = torch.arange(len(ok))
    other = z.clone()
    other[rows, yy] = -math.inf
    margin = other.max(1).values - z[rows, yy]
    assert torch.all(margin[torch.from_numpy(res.found)] >= kappa - 1e-4)
    # the recorded L2 is the distance of the rounded image
    l2 = pixels.grid_l2(res.adv_k, k[ok])
    np.testing.assert_allclose(res.l2[res.found], l2[res.found], rtol=1e-5)


def test_detection_aware_grid_cw_is_constrained(tiny_model, test_set) -> None:
    k, y, sc = test_set
    ok = np.flatnonzero(sc.pred == y.numpy())[:6]
    draw = scored_runs.FixedDraw(tiny_model, seed=5)
    settings = CWSettings(steps=15, binary_steps=1, initial_const=1.0, stepsize=0.2)
    x = pixels.bin_centre(k[ok])
    plain = cw_l2(tiny_model, x, y[ok], settings, grid=draw)
    zp = draw.logits_k(plain.adv_k).detach().double()
    bpd_plain = pixels.bits_per_dim(torch.logsumexp(zp, 1), 1024).numpy()
    t = float(np.median(bpd_plain[plain.found]))  # half of the plain adversarials are rejected
    res = cw_l2(tiny_model, x, y[ok], settings, CWCriterion(threshold_bpd=t), grid=draw)
    assert res.det_active_steps.sum() > 0 and res.blocked_steps.sum() > 0
    z = draw.logits_k(res.adv_k).detach().double()
    bpd = pixels.bits_per_dim(torch.logsumexp(z, 1), 1024).numpy()
    assert np.all(bpd[res.found] <= t + 1e-6)


def test_cw_constant_stays_finite_in_float32_over_many_failed_rounds(tiny_model,
                                                                    test_set) -> None:
    """A search that never succeeds (a margin no image reaches) grows ``c`` tenfold per round
    up to MAX_CONST and no further: 45 rounds from 1e-2 overflowed float32 (inf, a
    RuntimeWarning from the cast) with exit 0 (found by fuzzing --cw-binary-steps 60)."""
    k, y, _ = test_set
    settings = CWSettings(steps=1, binary_steps=45, initial_const=1e-2, stepsize=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = cw_l2(tiny_model, pixels.bin_centre(k[:2]), y[:2], settings,
                    CWCriterion(confidence=1e5), abort_early=False)
    assert not res.found.any() and np.all(res.consts == MAX_CONST)


def test_grid_decision_decides_on_the_rounded_image(tiny_model, test_set) -> None:
    k, y, sc = test_set
    ok = np.flatnonzero(sc.pred == y.numpy())[:4]
    draw = scored_runs.FixedDraw(tiny_model, seed=1)
    w = attacks.GridDecision(draw, y[ok], k[ok], kappa=0.0)
    x = pixels.bin_centre(k[ok])
    a = w(x)
    b = w(x + 0.0015)  # inside the same bins (bin width 1/256 = 0.0039)
    torch.testing.assert_close(a, b)
    assert np.all(~w.decide(k[ok]))  # the originals are correctly classified
    assert np.all(np.isinf(w.best_l2))  # nothing adversarial seen yet
    t = float(np.median(sc.bpd))
    wd = attacks.GridDecision(draw, y[ok], k[ok], kappa=0.0, target=(y[ok] + 1) % 10,
                              threshold_bpd=t)
    out = wd(x)
    assert out.shape[1] == 11


def test_boundary_stops_by_the_convergence_rule_and_stores_the_trajectory(tiny_model,
                                                                          test_set) -> None:
    k, y, sc = test_set
    lab = y.numpy()
    ok = np.flatnonzero(sc.pred == lab)
    rows = ok[:3]
    draw = scored_runs.FixedDraw(tiny_model, seed=1)
    w = attacks.GridDecision(draw, y[rows], k[rows], kappa=0.0)
    start = np.array([ok[lab[ok] != lab[i]][0] for i in rows])
    info = attacks.run_boundary(w, pixels.bin_centre(k[rows]), steps=400, seed=0,
                                starting_points=pixels.bin_centre(k[start]), window=5,
                                rtol=0.5, record_every=2)
    assert info["stopped_by"] == "convergence rule (all images)"
    assert info["steps_done"] < 400 and np.all(info["converged_at"] > 5)
    traj = np.array(info["trajectory"]["l2"])
    assert traj.shape[1] == 3 and np.all(np.diff(traj, axis=0) <= 1e-12)  # best L2 never grows
    d0 = pixels.grid_l2(k[start], k[rows])
    assert np.all(info["best_l2"] <= d0 + 1e-12)
    assert np.all(w.decide(info["best_k"]))  # the stored best images are adversarial
    np.testing.assert_allclose(pixels.grid_l2(info["best_k"], k[rows]), info["best_l2"])


def test_detection_aware_boundary_stays_targeted_and_accepted(tiny_model, test_set) -> None:
    k, y, sc = test_set
    lab = y.numpy()
    draw = scored_runs.FixedDraw(tiny_model, seed=1)
    z = draw.logits_k(k).detach().double()
    bpd_f = pixels.bits_per_dim(torch.logsumexp(z, 1), 1024).numpy()
    t = float(np.quantile(bpd_f, 0.8))
    ok = np.flatnonzero((z.argmax(1).numpy() == lab) & (bpd_f <= t))
    rows = ok[:3]
    target = (lab[rows] + 1) % 10
    start = []
    for tt in target:
        cand = ok[lab[ok] == tt]
        start.append(cand[0] if len(cand) else -1)
    keep = np.array(start) >= 0
    rows, target, start = rows[keep], target[keep], np.array(start)[keep]
    assert len(rows)
    w = attacks.GridDecision(draw, y[rows], k[rows], kappa=0.0,
                             target=torch.as_tensor(target), threshold_bpd=t)
    info = attacks.run_boundary(w, pixels.bin_centre(k[rows]), steps=30, seed=0,
                                starting_points=pixels.bin_centre(k[start]), window=1000,
                                rtol=0.0)
    zb = draw.logits_k(info["best_k"]).detach().double()
    np.testing.assert_array_equal(zb.argmax(1).numpy(), target)
    assert np.all(pixels.bits_per_dim(torch.logsumexp(zb, 1), 1024).numpy() <= t)


def test_cli_writes_documented_json(tiny_run, data_dir, tmp_path) -> None:
    out = tmp_path / "attacks.json"
    rc = attacks.main(
        ["--run", str(tiny_run), "--out", str(out), "--png-dir", str(tmp_path / "png"),
         "--data-dir", str(data_dir), "--n-images", "3", "--cw-steps", "3",
         "--cw-binary-steps", "1", "--cw-stepsize", "0.2", "--cw-initial-const", "1",
         "--boundary-steps", "8", "--boundary-window", "3", "--boundary-min-steps", "0",
         "--seed", "1", "--draws", "1", "--eps", "6", "--n-test", "40"])
    assert rc == 0
    res = json.loads(out.read_text())
    for key in ("dataset", "eps_l2", "thresholds", "T_used_bpd", "n_images", "settings",
                "table2", "margins", "provenance", "draws"):
        assert key in res
    assert res["eps_l2"] == 6 and res["n_images"] == 3 and res["complete"] is True
    assert set(res["settings"]) == set(attacks.ATTACKS)
    assert res["provenance"]["command"].startswith("python -m flows.experiments.attacks --run")
    for s in res["settings"].values():
        for v in s["table2"].values():
            u, f, a = (v[c] for c in ("undetected_within_eps", "fooled_within_eps", "fooled_any"))
            assert 0 <= u["k"] <= f["k"] <= a["k"] <= u["n"] == 3
            lo, hi = u["wilson95_pct"]
            assert lo <= u["pct"] <= hi
        pi = s["per_image"]
        fooled = [bool(f) and p != y and (d is not None and d > 0)
                  for f, p, y, d in zip(pi["found"], pi["pred_adv"], pi["label"], pi["l2"],
                                        strict=True)]
        assert sum(fooled) == s["table2"]["quantile"]["fooled_any"]["k"]  # unchanged: never fooled
        assert len(pi["l2"]) == 3 and all(isinstance(m, int) for m in pi["max_pixel_change"])
        assert s["final_check_failures"] <= s["in_loop_success"]["k"]
    assert "rounding_failures" in res["settings"]["cw-cont"]
    assert "detection_evidence" in res["settings"]["cw-det"]
    b = res["settings"]["boundary"]["boundary"]
    assert b["steps_done"] >= 1 and len(b["trajectory"]["step"]) == len(b["trajectory"]["l2"])
    assert res["settings"]["boundary-det"]["targeted"] is True
    assert [p.name for p in (tmp_path / "png").glob("*.png")] == [
        "table2_examples_mnist_cw-cw-det-cw-cont-boundary-boundary-det.png"]
    from paper_figures import summary as summarize

    table = summarize.attack_table([res | {"_file": str(out)}])
    assert "(attacked)" in table and "n/a" in table  # det. attacks only under their threshold
    details = summarize.attack_details([res | {"_file": str(out)}])
    assert "continuous successes fail after rounding" in details and "steps (" in details
    # its curves are drawn from the stored JSON alone, by paper_figures
    from paper_figures import attack_curves, empirical

    stored = empirical.load(out)
    made = (attack_curves.plot_attack_curves([stored], tmp_path / "fig")
            + attack_curves.plot_boundary_trajectories([stored], tmp_path / "fig"))
    assert sorted(p.name for p in made) == ["attack_curves.pdf", "attack_curves.png",
                                            "boundary_trajectories.pdf",
                                            "boundary_trajectories.png"]


def test_no_usable_start_image_is_recorded_not_a_crash(tiny_run, data_dir, tmp_path) -> None:
    out = tmp_path / "a.json"
    # a huge bits/dim margin: no start image is accepted with it, so nothing can be attacked
    rc = attacks.main(["--run", str(tiny_run), "--out", str(out), "--data-dir", str(data_dir),
                       "--n-images", "3", "--attacks", "boundary-det", "--margin-bpd", "1000",
                       "--boundary-steps", "5", "--draws", "1", "--n-test", "40"])
    assert rc == 0
    s = json.loads(out.read_text())["settings"]["boundary-det"]
    assert s["not_attacked"] == 3 and s["in_loop_success"]["k"] == 0


@pytest.mark.parametrize("flag,value", [
    ("--eps", "nan"), ("--eps", "-1"), ("--n-images", "1e12"), ("--n-images", "0"),
    ("--cw-stepsize", "nan"), ("--det-weight", "nan"), ("--cw-steps", "-3"),
    ("--boundary-rtol", "inf"), ("--margin-nats", "-1"), ("--draws", "0"), ("--seed", "-1"),
    ("--attacks", "fgsm"), ("--attacks", ","), ("--attacks", "cw,cw"),
    # finite, but inf in float32 (the CW constant, the loss, the logits) or meaningless: a
    # constant of 1e300 was cast to inf with exit 0 (found by fuzzing)
    ("--cw-initial-const", "1e300"), ("--cw-initial-const", "1e11"), ("--cw-stepsize", "1e300"),
    ("--det-weight", "1e300"), ("--margin-nats", "1e300"), ("--margin-bpd", "1e300"),
    ("--eps", "1e300"),
])
def test_bad_numbers_are_one_line_usage_errors(tiny_run, data_dir, tmp_path, run_cli, flag,
                                               value) -> None:
    rc, err = run_cli(attacks.main, ["--run", str(tiny_run), "--out", str(tmp_path / "o.json"),
                                     "--data-dir", str(data_dir), flag, value])
    assert rc == 2 and len(err) == 1 and flag.lstrip("-").split("-")[0] in err[0]
    assert "Traceback" not in err[0] and not (tmp_path / "o.json").exists()


def test_too_many_images_is_a_usage_error(tiny_run, data_dir, tmp_path, run_cli) -> None:
    rc, err = run_cli(attacks.main, ["--run", str(tiny_run), "--out", str(tmp_path / "o.json"),
                                     "--data-dir", str(data_dir), "--n-images", "5000",
                                     "--draws", "1", "--n-test", "20"])
    err = [e for e in err if "error:" in e]
    assert rc == 2 and len(err) == 1 and "--n-images" in err[0]
