"""Layer 1, data: DREAM-file ingestion into Parquet shards, splits, encoders, features and
synthetic libraries. Imports only `raydream.core`; no Ray, no torch."""
