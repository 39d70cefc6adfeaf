"""Layer 2, models: PyTorch networks and tree ensembles and their registry. Imports only
`raydream.core` and `raydream.data`; no Ray. Importing this package registers every model."""

from raydream.models import baseline_cnn, cls_cnn, legnet, resnet, trees  # noqa: F401  (registration side effect)
from raydream.models.registry import (
    TORCH,
    TREE,
    create_model,
    list_models,
    model_config,
    model_kind,
    model_output,
    register_model,
)

__all__ = ["TORCH", "TREE", "create_model", "list_models", "model_config", "model_kind", "model_output", "register_model"]
