"""Issue 18: the trained-flow experiment on the Appendix-D data (flows.experiments.annulus_flow)."""

from __future__ import annotations

import json
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch

from annulus.attack import attack, lower_median_rank
from annulus.pieces import PieceTable
from annulus.proposition import Params, canonical_lambda1, minimal_dimension_search
from flows.experiments import annulus_flow as af
from paper_figures.registry import BY_NAME, Context, run_item

torch.set_num_threads(1)
PARAMS = Params(Fraction(1, 10), Fraction(1, 1000), Fraction(1, 10))
#: radii away from the breakpoints 0, 1, 1.1, 2, 3 (closed vs half-open pieces agree there)
RADII = ("0.3", "0.999", "1.05", "1.0999", "1.5", "2.0001", "2.7", "3.5")


@pytest.fixture(scope="module")
def con201():
    d = minimal_dimension_search(PARAMS, third=True)
    return PARAMS.construction(d, canonical_lambda1(PARAMS, d))


@pytest.mark.parametrize("d", [2, 8, 201])
def test_log_p_is_annulus_value_for_value(con201, d: int) -> None:
    con = PARAMS.construction(d, con201.lambda1)
    mine = af.exact_log_joint(con, np.array([float(r) for r in RADII]))
    with mpmath.mp.workdps(40):
        for i, r in enumerate(RADII):
            for y in (0, 1):
                ref = con.p.log_prob_radius(Fraction(r), y)
                if ref == mpmath.mpf("-inf"):
                    assert mine[i, y] == -np.inf, (d, r, y)
                else:
                    assert mine[i, y] == pytest.approx(float(ref), rel=1e-12, abs=1e-9), (d, r, y)
    # and the float64 piece table annulus uses on vectors
    radii = np.array([float(r) for r in RADII])
    for y in (0, 1):
        assert np.allclose(mine[:, y], con.p.log_prob_norms(radii, y), rtol=1e-12, atol=1e-9)


def test_posterior_is_bayes_of_annulus(con201) -> None:
    ej = af.ExactJoint.of(con201.p)
    table = PieceTable.of(con201, PARAMS.delta)
    radii = np.array([0.5, 1.05, 2.5])
    post = ej.posterior(radii)
    assert np.allclose(post[:, 0], table.p0[table.index(radii)], rtol=1e-12)
    with mpmath.mp.workdps(30):
        assert post[0, 0] == pytest.approx(float(con201.lemma1_p0()), rel=1e-12)  # Eq. (11)
    qpost = af.ExactJoint.of(con201.q).posterior(radii)
    with mpmath.mp.workdps(30):
        assert qpost[0, 0] == pytest.approx(float(con201.lemma1_q0()), rel=1e-9)  # Eq. (12)


def test_annulus_volume_in_log_space() -> None:
    assert af.log_annulus_volume(0.0, 1.0, 2) == pytest.approx(np.log(np.pi))
    assert af.log_annulus_volume(1.0, 2.0, 3) == pytest.approx(np.log(4 / 3 * np.pi * 7))
    assert np.isfinite(af.log_annulus_volume(2.0, 3.0, 10**6))  # no overflow


def test_success_predicate_is_the_certificates_on_the_theorems_q(con201) -> None:
    """Radial attack on the theorem's q: properties 1-5 per point equal PieceTable's (the
    certificate's) decisions, and every attacked shell point succeeds (as verify certifies)."""
    cfg = af.Config()
    table = PieceTable.of(con201, PARAMS.delta)
    ev = af.draw_p(con201, 600, np.random.SeedSequence(1))
    q = af.ExactJoint.of(con201.q)
    xbar = attack(ev.x, float(PARAMS.Delta))
    rx, rb, dist = af.norms(ev.x), af.norms(xbar), af.norms(ev.x - xbar)
    median = af.lower_median(q.log_marginal(ev.r))
    ljb = q.log_joint(rb)
    props = af.success_predicate(table, float(cfg.delta), float(cfg.Delta), rx, rb, dist,
                                 q.posterior(rx), af.softmax2(ljb), q.log_marginal(rb), median)
    kx, kb = table.index(rx), table.index(rb)
    ref = table.properties(kx, kb, dist, float(cfg.Delta))
    counts = np.bincount(kx, minlength=len(table.breaks))
    ref["5"] = table.level_rank[kb] >= lower_median_rank(counts, table.level_rank)
    for k in af.PROPS:
        assert np.array_equal(props[k], ref[k]), k
    shell = (ev.r >= 1) & (ev.r < 1 + float(PARAMS.Delta))
    ok = props["1"] & props["2"] & props["3"] & props["4"] & props["5"]
    assert shell.sum() > 200 and ok[shell].all() and not ok[~shell].any()


def test_bayes_classifier_is_never_fooled(con201) -> None:
    table = PieceTable.of(con201, PARAMS.delta)
    ev = af.draw_p(con201, 300, np.random.SeedSequence(2))
    shell = (ev.r >= 1) & (ev.r < 1.1)
    block = af.exact_model_block("bayes_p", af.ExactJoint.of(con201.p), table, af.Config(), ev,
                                 af.Draws(ev.x[shell], ev.y[shell], ev.r[shell]),
                                 af.ExactJoint.of(con201.p))
    assert block["attack_radial"]["success"]["k"] == 0
    assert block["calibration"]["abs_posterior_error"]["mean"] == 0.0


def test_quick_end_to_end(tmp_path) -> None:
    out = tmp_path / "af.json"
    assert af.main(["--quick", "--dims", "3", "--quiet", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["experiment"] == "annulus_flow" and res["d_default"] == 201
    row = res["dims"][0]
    assert row["d"] == 3 and row["sizes"]["n_eval"] == af.QUICK.eval.n_eval
    assert row["trained"]["kl_q_theta_p_joint"] is None
    for model in ("trained", "theorem_q", "bayes_p"):
        s = row[model]["attack_radial"]["success"]
        assert 0 <= s["wilson99"][0] <= s["wilson99"][1] <= 1
    assert row["trained"]["attack_pgd"]["max_dist"] < float(Fraction(res["params"]["Delta"]))
    prov = res["provenance"]
    assert prov["command"].startswith("python -m flows.experiments.annulus_flow --quick")
    assert prov["seed"] == 0 and "git_commit" in prov and row["cpu_minutes"] > 0
    # the figure is drawn from the stored JSON alone
    results = tmp_path / "results" / "annulus_flow"
    results.mkdir(parents=True)
    (results / "annulus_flow.json").write_text(out.read_text())
    made = run_item(BY_NAME["annulus_flow"], Context(results.parent, tmp_path / "figs"))
    assert made.ok and (tmp_path / "figs" / "annulus_flow.png").stat().st_size > 1000


@pytest.mark.parametrize("argv", [["--dims", "0"], ["--steps", "-1"], ["--dims", "2", "2"],
                                  ["--seed", "x"], ["--quick", "--hidden", "1000000000000"],
                                  ["--quick", "--n-train", "1000000000000"],
                                  ["--quick", "--batch", "257"],
                                  ["--quick", "--dims", "4096", "--n-eval", "1000000"]])
def test_bad_usage_is_one_line_exit_2(tmp_path, argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        af.main([*argv, "--out", str(tmp_path / "o.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "error" in err


def test_no_shell_point_to_attack_is_one_line(tmp_path, capsys) -> None:
    """Two evaluation draws at d = 2 miss the shell 1 <= r < 1 + Delta (seed 0): one line, exit 1,
    no result written (it was a traceback from the empty PGD batch)."""
    out = tmp_path / "o.json"
    with pytest.raises(SystemExit) as exc:
        af.main(["--quick", "--quiet", "--dims", "2", "--n-eval", "2", "--out", str(out)])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no point to attack; raise --n-eval" in err
    assert not out.exists()
