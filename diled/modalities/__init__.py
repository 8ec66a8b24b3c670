"""Encoders and decoders per data type; each decoder declares which form of the objective it uses."""
