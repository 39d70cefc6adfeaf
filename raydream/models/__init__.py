"""Model families: pure PyTorch, no Ray. Importing this package registers every model."""

from raydream.models import baseline_cnn, cls_cnn, legnet, resnet  # noqa: F401  (registration side effect)
from raydream.models.registry import create_model, list_models, model_config, model_output, register_model

__all__ = ["create_model", "list_models", "model_config", "model_output", "register_model"]
