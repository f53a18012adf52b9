"""Regressor networks, checkpoints, the model registry and the create_model factory."""

from .mobilenet_v1 import MobileNetV1
from .registry import ModelSpec, Regressor, create_model, list_models, register_architecture, register_model

__all__ = ["MobileNetV1", "ModelSpec", "Regressor", "create_model", "list_models", "register_architecture",
           "register_model"]
