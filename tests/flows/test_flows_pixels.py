"""flows.pixels: the 8-bit grid (hand-computed bins and properties), bits/dim and its inverse,
the fixed-noise draw."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flows import pixels

images = st.lists(st.integers(0, 255), min_size=1, max_size=64)
# u <= 1 - 2^-16: the documented range where float32 keeps a dequantised point inside its bin
offsets = st.floats(0.0, 1.0 - 2.0**-16, width=32)


def _image(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8).reshape(1, 1, 1, -1)


@settings(max_examples=200, deadline=None)
@given(images, st.data())
def test_rounding_a_dequantised_image_returns_the_image(values, data) -> None:
    k = _image(values)
    u = torch.tensor(data.draw(st.lists(offsets, min_size=len(values), max_size=len(values))),
                     dtype=torch.float32).reshape(k.shape)
    x = pixels.bin_point(k.float(), u)
    assert torch.equal(pixels.to_grid(x), k)
    # the point lies in pixel k's bin [k/256 - 0.5, (k+1)/256 - 0.5), computed in float64
    x64, k64 = x.double(), k.double()
    assert torch.all(x64 >= k64 / 256 - 0.5) and torch.all(x64 < (k64 + 1) / 256 - 0.5)


@settings(max_examples=100, deadline=None)
@given(images)
def test_bin_centres_are_fixed_points_of_rounding(values) -> None:
    k = _image(values)
    c = pixels.bin_centre(k)
    assert c.dtype == torch.float32
    assert torch.equal(pixels.to_grid(c), k)
    assert torch.equal(pixels.bin_centre(pixels.to_grid(c)), c)
    # the centre is exact in float32: (k + 0.5)/256 - 0.5 == (2k + 1 - 256)/512
    assert torch.equal(c.double(), (2 * k.double() + 1 - 256) / 512)


@settings(max_examples=200, deadline=None)
@given(st.floats(-50.0, 50.0), st.sampled_from([1, 784, 1024, 3072]))
def test_bits_per_dim_and_its_inverse_round_trip(bpd, d) -> None:
    lp = pixels.log_px_at_bpd(bpd, d)
    assert pixels.bits_per_dim(lp, d) == pytest.approx(bpd, rel=1e-12, abs=1e-10)
    assert pixels.log_px_at_bpd(pixels.bits_per_dim(lp, d), d) == pytest.approx(lp, rel=1e-12,
                                                                                 abs=1e-8)


def test_bits_per_dim_known_values_and_types() -> None:
    d = 1024
    # log p = 0 (uniform on the cube) is 8 bits/dim; log p = D log 256 (all mass in one bin) is 0;
    # one bit less per dimension is D log 2 more nats
    assert pixels.bits_per_dim(0.0, d) == 8.0
    assert pixels.bits_per_dim(d * math.log(256.0), d) == pytest.approx(0.0, abs=1e-12)
    assert pixels.log_px_at_bpd(7.0, d) == pytest.approx(d * math.log(2.0), rel=1e-12)
    assert pixels.log_px_at_bpd(math.inf, d) == -math.inf
    assert pixels.log_px_at_bpd(-math.inf, d) == math.inf
    assert isinstance(pixels.bits_per_dim(np.zeros(2), d), np.ndarray)
    t = pixels.bits_per_dim(torch.zeros(2, dtype=torch.float64), d)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64


def test_log_px_at_bpd_inverts_bits_per_dim() -> None:
    for d in (1024, 3072):
        for t in (1.4, 4.0, 8.0):
            lp = pixels.log_px_at_bpd(t, d)
            assert float(pixels.bits_per_dim(torch.tensor(lp, dtype=torch.float64), d)) == \
                pytest.approx(t)
    assert pixels.log_px_at_bpd(math.inf, 1024) == -math.inf


def test_grid_round_trip_and_bins() -> None:
    k = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    assert torch.equal(pixels.to_grid(pixels.bin_centre(k)), k)
    # every point of bin k maps to k: both bin edges (the upper one excluded)
    lo = k.float() / 256 - 0.5
    hi = (k.float() + 1) / 256 - 0.5 - 1e-6
    assert torch.equal(pixels.to_grid(lo), k) and torch.equal(pixels.to_grid(hi), k)
    assert int(pixels.to_grid(torch.tensor([[[[0.7]]]]))) == 255
    assert int(pixels.to_grid(torch.tensor([[[[-0.7]]]]))) == 0
    a = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    b = a.clone()
    b[0, 0, 0, 0] = 3
    b[0, 0, 1, 1] = 4  # ||(3, 4)|| = 5 grey levels
    np.testing.assert_allclose(pixels.grid_l2(a, b), [5 / 256, 0.0])


def test_dequantize_pads_and_stays_in_the_bins() -> None:
    k = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    x = pixels.dequantize(k, torch.Generator().manual_seed(1))
    assert x.shape == (4, 1, 32, 32) and x.dtype == torch.float32
    assert torch.all(x[:, :, :2] < 1 / 256 - 0.5)  # zero padding is pixel 0
    inner, k64 = x[:, :, 2:30, 2:30].double(), k.double()
    assert torch.all(inner >= k64 / 256 - 0.5) and torch.all(inner < (k64 + 1) / 256 - 0.5)
    # the same generator state gives the same draw
    assert torch.equal(x, pixels.dequantize(k, torch.Generator().manual_seed(1)))


def test_fixed_uniform_is_one_reproducible_draw_per_seed() -> None:
    a = pixels.fixed_uniform((1, 8, 8), seed=3, count=2)
    b = pixels.fixed_uniform((1, 8, 8), seed=3, count=2)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert torch.equal(pixels.fixed_uniform((1, 8, 8), seed=3)[0], a[0])  # draws are consecutive
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], pixels.fixed_uniform((1, 8, 8), seed=4)[0])
    for t in a:
        assert t.dtype == torch.float32 and 0.0 <= float(t.min()) and float(t.max()) < 1.0
        assert abs(float(t.mean()) - 0.5) < 0.15  # 64 uniforms: s.e. 0.036
