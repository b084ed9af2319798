"""Model presets and the objective -> prior mapping (plain data, never ``eval``-ed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

OBJECTIVES = ("base", "reweighted", "split", "ib")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`flows.model.GlowClassifier` (Appendix B)."""

    in_channels: int = 1
    num_classes: int = 10
    hidden: int = 128
    steps_per_level: int = 12
    levels: int = 4
    prior: str = "gmm"  # "gmm" (Base / Reweighted / IB) or "split" (Appendix A.4)
    split_sigma: float = 1.0
    image_size: int = 32  # the paper uses 32; smaller sizes are only for fast exact tests

    def to_dict(self) -> dict:
        return asdict(self)


# name -> (hidden channels, flow steps per level). The paper presets are Appendix B; the small
# ones are sized for a few CPU minutes per epoch (see benchmarks/bench_flows_train.py).
PRESETS: dict[str, tuple[int, int]] = {
    "paper-mnist": (128, 12),
    "paper-cifar": (256, 16),
    "small-mnist": (32, 2),
    "small-cifar": (48, 3),
    "tiny": (8, 1),
}


def prior_for(objective: str) -> str:
    """``split`` uses the split prior (Appendix A.4); the others a Gaussian mixture prior."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    return "split" if objective == "split" else "gmm"


def model_config(
    preset: str, in_channels: int, objective: str, num_classes: int = 10
) -> ModelConfig:
    """Build the :class:`ModelConfig` for a preset, dataset channel count and objective."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    hidden, steps = PRESETS[preset]
    return ModelConfig(in_channels=in_channels, num_classes=num_classes, hidden=hidden,
                       steps_per_level=steps, prior=prior_for(objective))
