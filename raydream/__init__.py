"""raydream: Ray-distributed hyperparameter search for yeast promoter expression models."""

__version__ = "0.1.0"
