"""The fixed-draw forward, scoring of 8-bit images, thresholds with recall, Wilson shares, run
loading (the 8-bit grid and bits/dim: tests/flows/test_flows_pixels.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flows import pixels
from flows.experiments import detection, scored_runs
from flows.model import EVAL_NOISE_SEED
from foundation import errors


def test_fixed_draw_is_the_model_at_the_rounded_point(tiny_model) -> None:
    draw = scored_runs.FixedDraw(tiny_model, seed=3)
    k = torch.randint(0, 256, (3, 1, 32, 32), dtype=torch.uint8)
    z = draw.logits_k(k)
    x = pixels.bin_centre(k) + 0.001  # same bins
    x.requires_grad_(True)
    z_ste, x_c = draw.logits_ste(x)
    torch.testing.assert_close(z_ste, z)
    torch.testing.assert_close(x_c.detach(), pixels.bin_centre(k))
    z_ste[:, 0].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0  # straight-through
    # a fixed draw is one draw of flows.scoring's estimator: same function, explicit noise
    with torch.no_grad():
        ref = tiny_model((k.float() + draw.u0) / 256 - 0.5, noise=draw.e0.expand(3, -1, -1, -1))
    torch.testing.assert_close(z, ref + tiny_model.log_prior())
    # the fixed draws are U[0, 1) noise of the seed; seed EVAL_NOISE_SEED gives the model's own
    # eval-mode padding noise as u0 (one fixed-noise mechanism)
    assert 0.0 <= float(draw.u0.min()) and float(draw.u0.max()) < 1.0
    assert not torch.equal(draw.u0, draw.e0)
    assert torch.equal(scored_runs.FixedDraw(tiny_model, seed=3).e0, draw.e0)  # reproducible
    same = scored_runs.FixedDraw(tiny_model, seed=EVAL_NOISE_SEED)
    assert torch.equal(same.u0, tiny_model.eval_noise)


class _KnownDensity(nn.Module):
    """A stand-in with a hand-computable output: class 0 scores ``sum(x)``, class 1 ``sum(e)``."""

    num_classes = 2
    data_dims = 1024

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.double().sum((1, 2, 3)), noise.double().sum((1, 2, 3))], 1)

    def log_prior(self) -> torch.Tensor:
        return torch.full((2,), -float(np.log(2.0)))


def test_score_draws_points_of_the_image_bins_and_fresh_padding_noise() -> None:
    """Every draw scores a point of the (zero-padded) image's bins, with padding noise in [0, 1)
    that changes from draw to draw; checked against sums computed by hand from the pixels."""
    k = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    s = scored_runs.score(_KnownDensity(), k, draws=4, seed=1, batch_size=2)
    assert s.per_draw.shape == (5, 4, 2) and s.num_dims == 1024
    # sum over the 32x32 padded image (padding: pixel 0) of the bin edges k/256 - 0.5
    lo = k.double().flatten(1).sum(1).numpy() / 256 - 0.5 * 1024
    sum_x = s.per_draw[:, :, 0]
    assert np.all(sum_x >= lo[:, None] - 1e-9) and np.all(sum_x < lo[:, None] + 1024 / 256)
    # E[u] = 1/2: the sum over 1024 dequantised pixels is within 0.2 of the sum of bin centres
    # (its s.d. is sqrt(1024/12)/256 = 0.036 per draw)
    assert np.all(np.abs(sum_x.mean(1) - (lo + 1024 / 512)) < 0.2)
    sum_e = s.per_draw[:, :, 1]
    assert np.all((sum_e > 0) & (sum_e < 1024)) and np.all(np.abs(sum_e - 512) < 60)
    assert len(np.unique(sum_e)) == sum_e.size  # fresh noise for every draw and image
    # the same seed (and batch size) gives the same draws, another seed other ones
    again = scored_runs.score(_KnownDensity(), k, draws=4, seed=1, batch_size=2)
    np.testing.assert_array_equal(again.per_draw, s.per_draw)
    other = scored_runs.score(_KnownDensity(), k, draws=4, seed=2, batch_size=2)
    assert not np.array_equal(other.per_draw, s.per_draw)
    empty = scored_runs.score(_KnownDensity(), k[:0], draws=3)
    assert empty.per_draw.shape == (0, 3, 2)
    with pytest.raises(TypeError):
        scored_runs.score(_KnownDensity(), pixels.bin_centre(k), draws=1)


def test_quantile_threshold_is_never_the_test_maximum() -> None:
    rng = np.random.default_rng(0)
    bpd = rng.normal(3.5, 0.3, 1000)
    th = detection.thresholds(bpd, "cifar10")
    assert th["paper"]["T_bpd"] == 4.0
    assert 0.786 <= th["quantile"]["accepted_share_test"] < 0.786 + 2 / 1000
    r = th["quantile"]["recall_test"]
    assert r["n"] == 1000 and r["wilson95_pct"][0] < r["pct"] < r["wilson95_pct"][1]
    th = detection.thresholds(bpd, "mnist")  # the paper's 100% is capped at 99%
    assert th["quantile"]["T_bpd"] < bpd.max()
    assert th["quantile"]["accepted_share_test"] == pytest.approx(0.99, abs=2e-3)
    assert th["paper"]["recall_test"]["k"] == int(np.sum(bpd <= 1.4))
    th = detection.thresholds(bpd, "bg-mnist-0")
    assert th["paper"]["T_bpd"] is None
    with pytest.raises(errors.UsageError):
        detection.pick_threshold(th, "paper")


def test_pct_ci_is_a_wilson_interval() -> None:
    c = detection.pct_ci(0, 30)
    assert c["pct"] == 0 and c["wilson95_pct"][0] == 0 and 10 < c["wilson95_pct"][1] < 12
    c = detection.pct_ci(15, 30)
    assert c["wilson95_pct"][0] < 50 < c["wilson95_pct"][1]
    assert detection.pct_ci(0, 0)["pct"] is None
    assert detection.fmt_ci(detection.pct_ci(3, 10)) == "30% [11, 60] (n=10)"


def test_accepted_is_bpd_at_most_t() -> None:
    assert detection.accepted(1.4, 1.4)
    assert not detection.accepted(1.4000001, 1.4)


def test_tiny_model_is_a_classifier(tiny_model, data_dir) -> None:
    k, y = scored_runs.load_test_images("mnist", data_dir=str(data_dir))
    assert k.dtype == torch.uint8 and k.shape[-2:] == (32, 32)
    s = scored_runs.score(tiny_model, k, draws=2)
    assert np.mean(s.pred == y.numpy()) > 0.9


def test_missing_run_is_a_user_error(tmp_path) -> None:
    with pytest.raises(errors.UsageError):
        scored_runs.load_run_checked(tmp_path / "nope")
    (tmp_path / "r").mkdir()
    with pytest.raises(errors.UsageError, match="--run"):
        scored_runs.load_run_checked(tmp_path / "r")
    with pytest.raises(errors.UsageError):
        scored_runs.dataset_of({}, None)
    with pytest.raises(errors.UsageError):
        scored_runs.dataset_of({"dataset": "svhn"}, None)


def test_checkpoint_is_loaded_weights_only(tiny_run, tmp_path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_run, bad)
    torch.save({"model": {}, "evil": object()}, bad / "checkpoint.pt")  # not a plain state
    from flows.runs import RunError

    with pytest.raises(RunError):
        scored_runs.load_run_checked(bad)


def test_recorded_paths_are_repo_relative_or_under_home() -> None:
    from foundation.provenance import portable_command, portable_path

    inside = Path(__file__).resolve().parents[2] / "results" / "x.json"
    assert portable_path(str(inside)) == "results/x.json"
    assert portable_path(str(Path.home() / "annulus-runs" / "r")) == "~/annulus-runs/r"
    assert portable_path("/definitely/outside") == "/definitely/outside"
    assert portable_path("../shared/data") == "../shared/data"  # relative: as given
    cmd = portable_command("flows.evaluate", ["--run", str(Path.home() / "a b"),
                                              f"--out={inside}"])
    assert cmd == "python -m flows.evaluate --run ~/'a b' --out=results/x.json"


def test_a_loaded_model_samples_the_same_before_and_after_scoring(tiny_run: Path) -> None:
    """Scoring puts the model in channels_last; a loaded model is in it already, so whether an
    experiment's test scores come from the cache or are computed first cannot change the images
    it samples (bg_mnist's Figure 5 did change with the cache)."""
    def samples(model: nn.Module) -> torch.Tensor:
        torch.manual_seed(0)
        return torch.stack([model.sample(16, y, 0.7) for y in range(2)])

    model, _ = scored_runs.load_run_checked(tiny_run)
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    before = samples(model)
    scored_runs.score(model, pixels.to_grid(before.flatten(0, 1)), draws=1, seed=1)
    assert torch.equal(samples(model), before)


def _cached_scores(model: nn.Module, k: torch.Tensor, run: Path, cache: Path):
    return scored_runs.score_cached(model, k, run_dir=run, dataset="mnist", split="test",
                                    n=len(k), draws=2, seed=0, cache_dir=cache)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{name: a for name, a in arrays.items() if a is not None})
    return buf.getvalue()


def test_unusable_score_cache_is_recomputed_and_replaced(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    """A score cache that cannot be read, or does not hold valid scores of the request (shapes,
    float dtype, finite values, the model's num_dims), is recomputed and replaced atomically,
    with a one-line note naming it (found by fuzzing: an empty or truncated cache was an
    EOFError or BadZipFile traceback; NaN scores or num_dims=0 made likelihood_gap write empty
    summaries and fail with a KeyError)."""
    k = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    cache = tmp_path / "cache"
    fresh = _cached_scores(_KnownDensity(), k, tmp_path, cache)
    [path] = cache.iterdir()
    good = path.read_bytes()
    capsys.readouterr()
    valid = {"per_draw": fresh.per_draw, "log_prior": fresh.log_prior,
             "num_dims": fresh.num_dims}
    damaged = {
        "empty": b"",
        "truncated": good[:len(good) // 2],
        "not a zip": b"\x93NUMPY garbage",
        "NaN scores": _npz(**{**valid, "per_draw": fresh.per_draw * np.nan}),
        "inf prior": _npz(**{**valid, "log_prior": fresh.log_prior - np.inf}),
        "num_dims 0": _npz(**{**valid, "num_dims": 0}),
        "num_dims an array": _npz(**{**valid, "num_dims": np.array([1024, 1024])}),
        "fewer images": _npz(**{**valid, "per_draw": fresh.per_draw[:2]}),
        "integer scores": _npz(**{**valid, "per_draw": fresh.per_draw.astype(np.int64)}),
        "no prior": _npz(**{**valid, "log_prior": None}),
    }
    for what, data in damaged.items():
        path.write_bytes(data)
        s = _cached_scores(_KnownDensity(), k, tmp_path, cache)
        np.testing.assert_array_equal(s.per_draw, fresh.per_draw)
        np.testing.assert_array_equal(s.log_prior, fresh.log_prior)
        assert s.num_dims == fresh.num_dims
        err = [e for e in capsys.readouterr().err.splitlines() if e.strip() and "scoring" not in e]
        assert len(err) == 1 and f"{path}: unusable score cache" in err[0], (what, err)
        with np.load(path) as z:  # replaced by the recomputed scores
            np.testing.assert_array_equal(z["per_draw"], fresh.per_draw)
            assert int(z["num_dims"]) == fresh.num_dims
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary left

    def not_again(*args, **kwargs):
        raise AssertionError("a valid cache is not recomputed")

    monkeypatch.setattr(scored_runs, "score", not_again)
    s = _cached_scores(_KnownDensity(), k, tmp_path, cache)
    np.testing.assert_array_equal(s.per_draw, fresh.per_draw)
    assert capsys.readouterr().err == ""


def test_scores_that_are_not_valid_are_not_cached(tmp_path: Path) -> None:
    """A broken model's NaN scores are returned (for load_scored_run to refuse) but not cached."""
    class _Broken(_KnownDensity):
        def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
            return super().forward(x, noise) * np.nan

    k = torch.zeros((2, 1, 28, 28), dtype=torch.uint8)
    s = _cached_scores(_Broken(), k, tmp_path, tmp_path / "cache")
    assert np.isnan(s.per_draw).all()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
