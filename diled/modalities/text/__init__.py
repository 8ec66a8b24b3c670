"""The text modality: frozen-encoder features, the z-conditioned GPT-2 and text DiLED (model), the codec, the rated
snippets and their preparation (data), the unlabeled pool (pool) and Table 1's evaluation (evaluation)."""
