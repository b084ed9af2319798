"""Preprocessing of Appendix B: pad to 32x32 and augment (the pixel maps: :mod:`flows.pixels`).

MNIST and BG-MNIST (28x28) are zero-padded (pixel value 0, i.e. black) by 2 on each side to 32x32
*before* the map to model inputs (:func:`flows.pixels.to_model_input`,
:func:`flows.pixels.dequantize`), as in Appendix B. Augmentation (training only): random crop
32x32 after padding by 4 in 'edge' (replicate) mode; random horizontal flip for CIFAR-10 only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGE_SIZE = 32


def pad_to_32(images_uint8: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``[N, C, H, W]`` uint8 images (H, W <= 32) symmetrically to 32x32."""
    _, _, h, w = images_uint8.shape
    if h == IMAGE_SIZE and w == IMAGE_SIZE:
        return images_uint8
    if h > IMAGE_SIZE or w > IMAGE_SIZE or (IMAGE_SIZE - h) % 2 or (IMAGE_SIZE - w) % 2:
        raise ValueError(f"cannot zero-pad {h}x{w} images symmetrically to 32x32")
    ph, pw = (IMAGE_SIZE - h) // 2, (IMAGE_SIZE - w) // 2
    return F.pad(images_uint8, (pw, pw, ph, ph), value=0)


def augment(
    images_uint8: torch.Tensor, flip: bool, generator: torch.Generator | None = None, pad: int = 4
) -> torch.Tensor:
    """Random 32x32 crop after ``pad``-pixel edge padding, plus a random h-flip if ``flip``.

    Works on uint8 32x32 images (pad MNIST first with :func:`pad_to_32`), vectorised over the batch.
    """
    x = pad_to_32(images_uint8)
    n, c, h, w = x.shape
    padded = F.pad(x.to(torch.float32), (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    out = _crop(padded, dy, dx, h, w)
    if flip:
        do_flip = torch.rand(n, generator=generator) < 0.5
        out = torch.where(do_flip[:, None, None, None], out.flip(-1), out)
    return out.round().to(torch.uint8)


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-image crop ``padded[i, :, dy[i]:dy[i]+h, dx[i]:dx[i]+w]`` via advanced indexing."""
    n = padded.shape[0]
    rows = dy[:, None] + torch.arange(h)[None, :]  # [n, h]
    cols = dx[:, None] + torch.arange(w)[None, :]  # [n, w]
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # [n, h, w, c]
    return out.permute(0, 3, 1, 2).contiguous()
