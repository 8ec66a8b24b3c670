"""One package per modality: its model (encoder, decoder, DiLED, builders, stage trainers), its codec (stored data <->
tensors <-> what the metrics read), its datasets and its evaluation. ``tokens`` is the core tests' toy categorical model."""
