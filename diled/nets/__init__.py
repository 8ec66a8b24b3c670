"""Networks shared by DiLED and every baseline."""

from diled.nets.autoencoder import ConvDecoder, KLEncoder
from diled.nets.mlp import MLPSkipNet
from diled.nets.unet import ConvEncoder, UNet

__all__ = ["MLPSkipNet", "UNet", "ConvEncoder", "KLEncoder", "ConvDecoder"]
