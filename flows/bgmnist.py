"""BG-MNIST-X (Fetaya et al., Section 4.5): MNIST digits over blurred greyscale CIFAR-10 images.

Construction, per MNIST image (all in float64 on [0, 1], then rounded back to uint8):

1. Background: a CIFAR-10 image drawn uniformly at random (with replacement) from the *same split*
   (train digits -> CIFAR-10 train images, test digits -> CIFAR-10 test images), using a
   ``torch.Generator`` seeded with ``seed`` (train) or ``seed + 1`` (test), so the dataset is a
   deterministic function of the seed.
2. Greyscale with ITU-R BT.601 luma ``g = 0.299 R + 0.587 G + 0.114 B``.
3. Downsample 32x32 -> 28x28 with antialiased bilinear interpolation.
4. Blur with an isotropic Gaussian of standard deviation X pixels (at 28x28 resolution), kernel
   radius ceil(3X), reflect padding; X = 0 means no blur.
5. Combine with the digit intensity ``d = mnist/255`` used as alpha of white ink:
   ``out = d * 1 + (1 - d) * b``, i.e. the black MNIST background (d = 0) is replaced by the
   background b, full ink (d = 1) stays white, and anti-aliased edges blend linearly.
6. ``uint8 = round(255 * out)``. Labels are the MNIST labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from flows.pixels import MAX_VALUE, intensity, quantize

BLUR_LEVELS = (0, 1, 5)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[N, 1, H, W]`` images, std ``sigma`` (0: identity)."""
    if sigma <= 0:
        return images
    radius = int(math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(x, kernel.view(1, 1, -1, 1))


def _downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)


def separable_matrix(blur: float, size: int = 28, src: int = 32) -> torch.Tensor:
    """The ``[size, src]`` matrix M with ``blur(downsample(img)) = M @ img @ M.T``.

    Both steps are separable linear maps, so M is obtained by applying them to basis images.
    """
    basis = torch.eye(src, dtype=torch.float64)  # row j = delta at column j
    rows = _downsample(basis[:, None, None, :].expand(src, 1, src, src).contiguous(), size)
    # rows[j, 0, :, :] is constant along axis -2; take one row: response to delta at column j
    down = rows[:, 0, 0, :].T  # [size, src]
    eye = torch.eye(size, dtype=torch.float64)
    blurred = gaussian_blur(eye[:, None, None, :].expand(size, 1, size, size).contiguous(), blur)
    blur_m = blurred[:, 0, 0, :].T  # [size, size]
    return blur_m @ down


def cifar_backgrounds(cifar_uint8: torch.Tensor, size: int = 28, blur: float = 0.0) -> torch.Tensor:
    """Greyscale (BT.601), downsample and blur ``[N, 3, 32, 32]`` uint8 -> float ``[N,1,s,s]``."""
    rgb = intensity(cifar_uint8)
    grey = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    m = separable_matrix(blur, size, cifar_uint8.shape[-1])
    out = torch.einsum("ij,njk,lk->nil", m, grey, m)
    return out.unsqueeze(1).clamp(0.0, 1.0)


def compose(digits_uint8: torch.Tensor, backgrounds: torch.Tensor) -> torch.Tensor:
    """``round(255 * (d + (1 - d) * b))`` with ``d = digits/255`` , backgrounds in [0, 1]."""
    d = intensity(digits_uint8)
    out = d + (1.0 - d) * backgrounds
    return quantize(out * MAX_VALUE)


def make_bg_mnist(
    digits_uint8: torch.Tensor,
    cifar_uint8: torch.Tensor,
    blur: float,
    seed: int,
    chunk: int = 10000,
) -> torch.Tensor:
    """BG-MNIST-``blur`` images ``[N, 1, 28, 28]`` uint8 for MNIST digits ``[N, 1, 28, 28]``.

    ``cifar_uint8`` must be the CIFAR-10 images of the same split as the digits; the background
    of image i is ``cifar_uint8[idx[i]]`` with ``idx = randint(len(cifar), (N,), seed)``.
    """
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, cifar_uint8.shape[0], (digits_uint8.shape[0],), generator=gen)
    out = torch.empty_like(digits_uint8)
    size = digits_uint8.shape[-1]
    for start in range(0, digits_uint8.shape[0], chunk):
        sl = slice(start, start + chunk)
        bg = cifar_backgrounds(cifar_uint8[idx[sl]], size, blur)
        out[sl] = compose(digits_uint8[sl], bg)
    return out
