"""Data layer: DREAM-file ingestion, splits, encoders. No Ray imports here."""
