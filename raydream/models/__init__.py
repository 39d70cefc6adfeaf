"""Model families: pure PyTorch, no Ray. Importing this package registers every model."""

from raydream.models import baseline_cnn, resnet  # noqa: F401  (registration side effect)
from raydream.models.registry import create_model, list_models, model_config, register_model

__all__ = ["create_model", "list_models", "model_config", "register_model"]
