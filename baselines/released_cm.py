"""OpenAI's released consistency model for LSUN Bedroom (``openai/diffusers-cd_bedroom256_lpips``) through ``diffusers``.

The paper's Table 6 consistency row on Bedroom 128: two steps at the official timesteps [17, 0], 256 px output resized to
128 with PIL's default filter (``guangyliu/EDDPM: Image/cm_sample.py``). Behind the capability interface (``generate``)
with this suite's seeding: sample i draws its initial noise and the noise between steps from generators seeded by its
own seed, so a sample does not depend on its batch or shard. The weights (about 2.1 GB, fp16) come from the Hugging Face
hub: a paper-scale download that needs the network, or a local copy of the model folder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from diled.diffusion import derive_seed, seeded_normal

MODEL_ID = "openai/diffusers-cd_bedroom256_lpips"
TIMESTEPS = (17, 0)  # EDDPM's cm_sample.py (two steps); cm_sample_256.py uses (18, 0) at 256 px


class ReleasedConsistency:
    """``generate(seeds, steps)`` -> uint8 images (N, 3, size, size) from a diffusers ``ConsistencyModelPipeline``."""

    def __init__(self, pipe, size: int = 128, timesteps: Sequence[int] = TIMESTEPS):
        self.pipe, self.size, self.timesteps = pipe, int(size), list(timesteps)

    @classmethod
    def from_pretrained(cls, model: str = MODEL_ID, device: str = "cuda", fp16: bool = True, **kw) -> ReleasedConsistency:
        """Load the pipeline (a hub id, or a local folder for offline machines)."""
        from diffusers import ConsistencyModelPipeline

        pipe = ConsistencyModelPipeline.from_pretrained(model, torch_dtype=torch.float16 if fp16 else torch.float32)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(device), **kw)

    @property
    def device(self) -> torch.device:
        return torch.device(self.pipe.device)

    @torch.no_grad()
    def generate(self, seeds: Sequence[int], steps: int = 2) -> np.ndarray:
        """One image per seed: the official two-step schedule (``steps`` must be the length of ``timesteps``)."""
        if steps != len(self.timesteps):
            raise ValueError(f"the released consistency model samples at timesteps {self.timesteps} ({len(self.timesteps)} steps), not {steps}")
        unet = self.pipe.unet
        shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        latents = seeded_normal(shape, [derive_seed(s, "cm-released-xT") for s in seeds], self.device)
        gens = [torch.Generator(device=self.device).manual_seed(derive_seed(s, "cm-released-steps") % 2**63) for s in seeds]
        out = self.pipe(batch_size=len(seeds), timesteps=self.timesteps, generator=gens, latents=latents, output_type="np").images
        return resize_uint8(out, self.size)


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """float images (N, H, W, 3) in [0, 1] -> uint8 (N, 3, size, size) via PIL's default resize, as the official script."""
    from PIL import Image

    u8 = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    if u8.shape[1:3] == (size, size):
        return u8.transpose(0, 3, 1, 2)
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size))) for im in u8]).transpose(0, 3, 1, 2)
