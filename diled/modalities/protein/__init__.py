"""The protein modality: ReLSO's networks and protein DiLED (model), the codec, the fitness datasets (data) and the
fitness / diversity evaluation (evaluation)."""
