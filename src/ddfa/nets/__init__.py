"""Regressor networks, checkpoints, the model registry, the create_model factory and the
inference engines (torch, onnxruntime, OpenVINO). Importing it imports no engine and no torch."""

from .registry import ModelSpec, Regressor, create_model, list_models, register_architecture, register_model

__all__ = ["MobileNetV1", "ModelSpec", "Regressor", "create_model", "list_models", "register_architecture",
           "register_model"]


def __getattr__(name: str):
    if name == "MobileNetV1":  # imports torch: only on request
        from .mobilenet_v1 import MobileNetV1

        return MobileNetV1
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
