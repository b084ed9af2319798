"""flows: a compact Glow-style class-conditional generative classifier."""
