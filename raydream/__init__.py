"""raydream: Ray-distributed hyperparameter search for yeast promoter expression models.

The Python API (the command lines are `python -m raydream.tune`, `.results`, `.report`,
`.predict`, `.evaluate`, `.explain` and `.prepare`):

    import raydream
    grid = raydream.search("resnet", num_samples=4)          # Ray Tune's ResultGrid
    model = raydream.load_model(checkpoint, device="cuda")   # loaded once
    model.predict(sequences)                                 # or raydream.predict(checkpoints, sequences)

Importing the package loads none of them (nor Ray or torch) until one is used.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["search", "load_model", "predict", "__version__"]

# name -> module that defines it: the search layer and the results layer's inference
_API = {"search": "raydream.tuning.tuner", "load_model": "raydream.results.inference",
        "predict": "raydream.results.inference"}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'raydream' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
