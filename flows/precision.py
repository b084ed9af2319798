"""Fast-path selection: bf16 autocast of the coupling networks, channels_last, torch.compile.

Only the coupling (and split-prior) *networks* ever run in bf16
(:class:`flows.layers.LowPrecisionNet`); the flow, its log-determinants, the prior and the loss
stay float32, and evaluation (:mod:`flows.scoring`) is float32 throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def bf16_supported(device: torch.device) -> bool:
    """True where bf16 convolutions are native: CUDA with bf16, or a CPU with AVX512-BF16/AMX."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        checks = [getattr(cpu, name, None) for name in
                  ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        try:
            return torch.backends.mkldnn.is_available() and any(c() for c in checks if c)
        except RuntimeError:
            return False
    return False


@dataclass(frozen=True)
class FastPath:
    """What the training step uses; ``describe()`` goes into the run's config."""

    bf16: bool
    channels_last: bool
    compile: bool

    def describe(self) -> dict:
        return {"bf16_coupling": self.bf16, "channels_last": self.channels_last,
                "compile": self.compile}


def choose_fast_path(device: torch.device, amp: str, channels_last: str, compile_: str,
                     fast: bool = True) -> FastPath:
    """Resolve the ``auto`` settings for ``device``; ``fast=False`` is float32 eager (reference).

    ``amp``: auto | bf16 | none. ``channels_last`` and ``compile_``: auto | on | off.
    ``auto`` means: bf16 where bf16 is native; channels_last with bf16 and on every CPU (float32
    oneDNN convolutions of this model's shapes run faster in it: 1.25x the cpu-mnist training
    step on an AVX2 Zen 3, none lost on cpu-cifar; ``benchmarks/bench_conv_work.py``); compile
    on CUDA only (on this project's CPU it compiles for minutes and gains little, docs/flows.md).
    """
    if not fast:
        return FastPath(False, False, False)
    native = bf16_supported(device)
    if amp == "bf16" and not native:
        raise ValueError(f"--amp bf16: bf16 is not supported natively on {device}")
    bf16 = amp == "bf16" or (amp == "auto" and native)
    cl = channels_last == "on" or (channels_last == "auto" and (bf16 or device.type == "cpu"))
    comp = compile_ == "on" or (compile_ == "auto" and device.type == "cuda")
    return FastPath(bf16, cl, comp)
