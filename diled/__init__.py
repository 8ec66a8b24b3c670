"""DiLED: generalized diffusion with a learnable encoder-decoder (ICML 2024), reference reproduction suite."""

__version__ = "0.1.0"
