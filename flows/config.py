"""Model presets and the objective -> prior mapping (plain data, never ``eval``-ed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

OBJECTIVES = ("base", "reweighted", "split", "ib")
PAD_NOISES = ("uniform", "gaussian")  # distribution of the padding channels (flows.layers)
GMM_SCALES = ("per-class", "shared")  # scales of the Gaussian mixture prior (flows.priors)
GMM_CLASS_LATENTS = ("all", "top")  # latent dims with class-specific mixture parameters
SPLIT_CLASS_LATENTS = ("all", "top")  # z_n dims with class-specific split-prior terms


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
    factor_out_prior: bool = False  # Glow's learned prior at the splits (flows.layers)
    first_level_steps: int = -1  # flow steps of level 0; -1: steps_per_level (App. B)
    squeeze_first: bool = False  # squeeze at the start of each level (Glow) instead of the end
    pad_noise: str = "uniform"  # padding channels: "uniform" (App. B) or "gaussian" (flows.layers)
    gmm_scale: str = "per-class"  # "per-class" sigma_y (App. A.1) or one "shared" sigma (priors)
    gmm_class_latent: str = "all"  # class-specific mixture parameters on "all" dims or the "top"
    split_class_latent: str = "all"  # split prior's class terms on "all" z_n dims or the "top"

    def __post_init__(self) -> None:
        for name, what, choices in (("pad_noise", "padding noise", PAD_NOISES),
                                    ("gmm_scale", "mixture scale", GMM_SCALES),
                                    ("gmm_class_latent", "class latent", GMM_CLASS_LATENTS),
                                    ("split_class_latent", "class latent", SPLIT_CLASS_LATENTS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {what} {getattr(self, name)!r}; expected one of "
                                 f"{', '.join(choices)}")
        if (self.gmm_scale, self.gmm_class_latent) != ("per-class", "all") and self.prior != "gmm":
            raise ValueError("the mixture options (--gmm-scale, --gmm-class-latent) need the gmm "
                             "prior (objectives base, reweighted, ib); this model uses the split "
                             "prior")
        if self.split_class_latent != "all" and self.prior != "split":
            raise ValueError("--split-class-latent needs the split prior (objective split); this "
                             "model uses the Gaussian mixture prior")
        if self.first_level_steps == 0:  # x is the first half of the padded, squeezed channels
            raise ValueError("first_level_steps 0 would factor out the image's pixels untouched "
                             "after the first squeeze; use -1 (steps_per_level) or >= 1")

    def steps_at(self, level: int) -> int:
        """Flow steps of ``level`` (0-based): ``first_level_steps`` at level 0 when set."""
        if level == 0 and self.first_level_steps >= 0:
            return self.first_level_steps
        return self.steps_per_level

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    """Architecture of a named preset: coupling width, flow steps per level, split priors."""

    hidden: int
    steps_per_level: int
    factor_out_prior: bool = False
    note: str = ""
    first_level_steps: int = -1  # -1: steps_per_level at every level
    squeeze_first: bool = False  # False: Appendix B (squeeze at the end of each level)
    pad_noise: str = "uniform"  # "uniform": Appendix B; "gaussian": see flows.layers.PadChannels
    gmm_scale: str = "per-class"  # "per-class": Appendix A.1; "shared": see flows.priors
    gmm_class_latent: str = "all"  # "all": Appendix A.1; "top": see flows.priors


# The paper presets are Appendix B. The cpu-* presets are sized for this project's CPU budget
# (docs/flows.md: one model trains in <= 90 min wall on 2 cores with bf16 autocast) and pad with
# Gaussianised noise (flows.layers.PadChannels; docs/flows.md, "Padding noise"); small-* and
# tiny are kept for the old CPU-scale results and fast tests.
PRESETS: dict[str, Preset] = {
    "paper-mnist": Preset(128, 12, note="Appendix B, 150 epochs on a GPU"),
    "paper-cifar": Preset(256, 16, note="Appendix B, 150 epochs on a GPU"),
    "cpu-mnist": Preset(64, 4, True, note="MNIST-like, 90 min budget on 2 CPU cores (bf16)",
                        pad_noise="gaussian"),
    "cpu-cifar": Preset(96, 4, True, note="CIFAR-10, 90 min budget on 2 CPU cores (bf16)",
                        pad_noise="gaussian"),
    "small-mnist": Preset(32, 2, note="superseded CPU-scale preset (2-epoch runs)"),
    "small-cifar": Preset(48, 3, note="superseded CPU-scale preset (2-epoch runs)"),
    "tiny": Preset(8, 1, note="tests only"),
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
    pr = PRESETS[preset]
    return ModelConfig(in_channels=in_channels, num_classes=num_classes, hidden=pr.hidden,
                       steps_per_level=pr.steps_per_level, prior=prior_for(objective),
                       factor_out_prior=pr.factor_out_prior,
                       first_level_steps=pr.first_level_steps, squeeze_first=pr.squeeze_first,
                       pad_noise=pr.pad_noise, gmm_scale=pr.gmm_scale,
                       gmm_class_latent=pr.gmm_class_latent)
