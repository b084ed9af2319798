"""bits/dim known answers (flows.pixels) and the learning-rate schedule (flows.schedule)."""

from __future__ import annotations

import math

import pytest
import torch

from flows.pixels import bits_per_dim, dequantize, to_model_input
from flows.schedule import lr_at


def test_bits_per_dim_uniform_density_is_8_bits() -> None:
    # U[-0.5, 0.5]^D has density 1 -> every 8-bit pixel has probability 1/256 -> 8 bits/dim.
    torch.testing.assert_close(bits_per_dim(torch.zeros(3), 3072), torch.full((3,), 8.0))


def test_bits_per_dim_point_mass_like_density_is_0_bits() -> None:
    # density 256^D on one bin of volume 256^-D puts all mass on one pixel value: 0 bits.
    d = 1024
    out = bits_per_dim(torch.tensor([d * math.log(256.0)], dtype=torch.float64), d)
    torch.testing.assert_close(out, torch.zeros(1, dtype=torch.float64))


def test_bits_per_dim_of_a_known_discrete_model() -> None:
    # Each pixel uniform over 16 of the 256 values -> 4 bits/dim; the continuous density of the
    # dequantised version is 256/16 = 16 per dimension on its support.
    d = 10
    log_px = torch.tensor(d * math.log(16.0))
    assert math.isclose(float(bits_per_dim(log_px, d)), 4.0, rel_tol=1e-12)


def test_dequantisation_consistent_with_deterministic_input() -> None:
    k = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    k32 = torch.nn.functional.pad(k, (8, 8, 8, 8))
    x = to_model_input(k32)
    assert float(x.min()) == (0.5 / 256 - 0.5) and float(x.max()) == (255.5 / 256 - 0.5)
    xq = dequantize(k32, torch.Generator().manual_seed(0))
    assert xq.min() >= -0.5 and xq.max() < 0.5
    # both land in pixel k's bin [k/256 - 0.5, (k+1)/256 - 0.5)
    assert torch.equal(torch.floor((xq + 0.5) * 256).long(), k32.long())
    assert torch.equal(torch.floor((x + 0.5) * 256).long(), k32.long())


def test_lr_schedules() -> None:
    spe, epochs = 10, 5
    lrs = [lr_at(s, spe, epochs, 1e-3, 0, "step") for s in range(spe * epochs)]
    assert lrs[0] == 1e-3 and lrs[19] == 1e-3  # before 40% (= epoch 2)
    assert math.isclose(lrs[20], 1e-4) and math.isclose(lrs[39], 1e-4)
    assert math.isclose(lrs[40], 1e-5)  # from 80%
    assert math.isclose(lr_at(0, spe, epochs, 1e-3, 4), 2.5e-4)  # warm-up
    for sched in ("paper", "auto"):  # auto = paper from 150 epochs: /10 every 60 epochs
        assert math.isclose(lr_at(60 * spe, spe, 150, 1e-3, 0, sched), 1e-4)
        assert math.isclose(lr_at(60 * spe - 1, spe, 150, 1e-3, 0, sched), 1e-3)
    # auto = anneal below 150 epochs: constant for 80% of the steps, then cosine to 0
    total = spe * epochs
    anneal = [lr_at(s, spe, epochs, 1e-3, 0) for s in range(total + 1)]
    assert anneal == [lr_at(s, spe, epochs, 1e-3, 0, "anneal") for s in range(total + 1)]
    assert all(v == 1e-3 for v in anneal[: int(0.8 * total) + 1])
    tail = anneal[int(0.8 * total):]
    assert all(a > b for a, b in zip(tail, tail[1:], strict=False)) and anneal[total] < 1e-12
    assert math.isclose(anneal[int(0.9 * total)], 5e-4)  # half way down the cosine
    assert lr_at(123, spe, epochs, 1e-3, 0, "constant") == 1e-3
    # cosine: the same decay over all the steps, no constant phase
    cosine = [lr_at(s, spe, epochs, 1e-3, 0, "cosine") for s in range(total + 1)]
    assert cosine[0] == 1e-3 and cosine[total] < 1e-12
    assert all(a > b for a, b in zip(cosine, cosine[1:], strict=False))
    assert math.isclose(cosine[total // 2], 5e-4)
    assert all(c <= a for c, a in zip(cosine, anneal, strict=True))
    with pytest.raises(ValueError):
        lr_at(0, spe, epochs, 1e-3, 0, "linear")


def test_ce_weight_ramp_ends_in_eq6() -> None:
    from flows.schedule import ce_weight_at

    assert [ce_weight_at(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert ce_weight_at(0, 0) == ce_weight_at(10**6, 0) == 1.0  # no ramp: Eq. (6) throughout


@pytest.mark.parametrize("schedule, safe", [("anneal", True), ("cosine", False)])
def test_resume_epochs_change_follows_the_schedule(schedule: str, safe: bool) -> None:
    """Extending a run 10 -> 12 epochs after 5: the anneal has not started, so every step so far
    had the same rate (allowed); under the cosine every rate depends on the total (refused)."""
    from flows.train import epochs_change_is_safe

    old = {"epochs": 10, "lr": 1e-3, "warmup_steps": 0, "lr_schedule": schedule,
           "train_subset": 0, "batch_size": 10}
    new = {**old, "epochs": 12}
    assert epochs_change_is_safe(old, new, steps_done=50, num_images=100, world=1) is safe
    assert epochs_change_is_safe(old, old, steps_done=50, num_images=100, world=1)
