"""Attack wrappers, our CW against foolbox's, detection-aware attacks, the CLI end to end."""

from __future__ import annotations

import json
import math

import foolbox
import numpy as np
import pytest
import torch

from flows.experiments import attacks, common
from flows.experiments.cw import cw_l2


@pytest.fixture(scope="module")
def test_set(tiny_model, data_dir):
    x, y = common.load_test_inputs("mnist", data_dir=str(data_dir))
    return x, y, common.score(tiny_model, x, desc=None)


def test_wrappers_give_the_model_decisions(tiny_model, test_set) -> None:
    x, y, sc = test_set
    fm = foolbox.PyTorchModel(attacks.ClassifierLogits(tiny_model).eval(), bounds=(-0.5, 0.5))
    pred = fm(x).argmax(1).numpy()
    np.testing.assert_array_equal(pred, sc.pred)
    t = float(np.median(sc.bpd))
    det = foolbox.PyTorchModel(attacks.DetectorLogits(tiny_model, t).eval(), bounds=(-0.5, 0.5))
    pred_det = det(x).argmax(1).numpy()
    acc = sc.bpd <= t
    assert acc.any() and (~acc).any()
    np.testing.assert_array_equal(pred_det[acc], sc.pred[acc])
    assert np.all(pred_det[~acc] == tiny_model.num_classes)


def test_cw_with_infinite_threshold_is_foolbox_cw(tiny_model, test_set) -> None:
    x, y, sc = test_set
    ok = np.flatnonzero(sc.pred == y.numpy())[:6]
    xs, ys = x[ok], y[ok]
    kw = dict(binary_search_steps=2, steps=10, stepsize=0.2, initial_const=1.0)
    ours = cw_l2(tiny_model, xs, ys, threshold_bpd=math.inf, **kw)
    fm = foolbox.PyTorchModel(attacks.ClassifierLogits(tiny_model).eval(), bounds=(-0.5, 0.5))
    fb = foolbox.attacks.L2CarliniWagnerAttack(**kw).run(
        fm, xs, foolbox.criteria.Misclassification(ys)
    )
    fb_found = (fm(fb).argmax(1) != ys).numpy()
    assert ours.found.any()
    np.testing.assert_array_equal(ours.found, fb_found)
    torch.testing.assert_close(ours.adv[ours.found], fb[ours.found], atol=1e-5, rtol=0)
    fb_l2 = (fb - xs).flatten(1).norm(dim=1).numpy()
    np.testing.assert_allclose(ours.l2[ours.found], fb_l2[ours.found], atol=1e-4)


def test_detection_aware_cw_only_returns_accepted_adversarials(tiny_model, test_set) -> None:
    x, y, sc = test_set
    ok = np.flatnonzero(sc.pred == y.numpy())[:6]
    kw = dict(binary_search_steps=1, steps=10, stepsize=0.2, initial_const=1.0)
    plain = cw_l2(tiny_model, x[ok], y[ok], **kw)
    bpd_plain = common.score(tiny_model, plain.adv, desc=None).bpd
    t = float(np.median(bpd_plain[plain.found]))  # half of the plain adversarials are detected
    assert np.any(bpd_plain[plain.found] > t)
    res = cw_l2(tiny_model, x[ok], y[ok], threshold_bpd=t, **kw)
    s = common.score(tiny_model, res.adv, desc=None)
    found = res.found
    assert found.any()
    assert np.all(s.bpd[found] <= t + 1e-9)
    assert np.all(s.pred[found] != y[ok].numpy()[found])


def test_detection_aware_boundary_stays_targeted_and_accepted(tiny_model, test_set) -> None:
    x, y, sc = test_set
    lab = y.numpy()
    t = float(sc.bpd.max())
    ok = np.flatnonzero(sc.pred == lab)
    xs_i = ok[:4]
    target = (lab[xs_i] + 1) % 10
    start = np.array([ok[lab[ok] == k][0] for k in target])
    adv, _ = attacks.run_boundary(
        tiny_model, x[xs_i], y[xs_i], steps=20, seed=0, threshold_bpd=t,
        target=torch.as_tensor(target), starting_points=x[start],
    )  # fmt: skip
    s = common.score(tiny_model, adv, desc=None)
    np.testing.assert_array_equal(s.pred, target)
    assert np.all(s.bpd <= t)
    d_adv = (adv - x[xs_i]).flatten(1).norm(dim=1)
    d_start = (x[start] - x[xs_i]).flatten(1).norm(dim=1)
    assert torch.all(d_adv <= d_start + 1e-5)


def test_cli_writes_documented_json(tiny_run, data_dir, tmp_path) -> None:
    out = tmp_path / "attacks.json"
    rc = attacks.main(
        ["--run", str(tiny_run), "--out", str(out), "--png-dir", str(tmp_path / "png"),
         "--data-dir", str(data_dir), "--n-images", "4", "--cw-steps", "5",
         "--cw-binary-steps", "1", "--cw-stepsize", "0.2", "--cw-initial-const", "1",
         "--boundary-steps", "5", "--seed", "1"]
    )  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    for k in ("dataset", "eps_l2", "thresholds", "T_used_bpd", "n_images", "settings", "table2",
              "provenance"):  # fmt: skip
        assert k in res
    assert res["eps_l2"] == 1.5 and res["n_images"] == 4
    assert set(res["settings"]) == set(attacks.ATTACKS)
    for s in res["settings"].values():
        for v in s["table2"].values():
            assert 0 <= v["undetected_within_eps_pct"] <= v["fooled_within_eps_pct"] <= 100
            assert v["fooled_within_eps_pct"] <= v["fooled_any_pct"]
        assert len(s["per_image"]["l2"]) == 4
    assert res["settings"]["boundary-det"]["targeted"] is True
    assert len(list((tmp_path / "png").glob("*.png"))) == 2
    assert attacks.main(["--replot", str(out), "--png-dir", str(tmp_path / "re")]) == 0
    assert list((tmp_path / "re").glob("*.png"))


def test_unknown_attack_is_a_user_error(tiny_run, data_dir, tmp_path, capsys) -> None:
    rc = attacks.main(
        ["--run", str(tiny_run), "--out", str(tmp_path / "o.json"), "--data-dir", str(data_dir),
         "--attacks", "fgsm"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "fgsm" in err[0]
