"""Dataset loaders: embedded (offline) and paper-scale."""
