"""The image modality: DiLED's image parts and trainer (model), the codec, the embedded digits (mnist) and image
folders / DiffAE LMDBs (photos)."""
