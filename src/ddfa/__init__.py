"""ddfa: 3D dense face alignment in full pose range.

A re-implementation of 3DDFA (Zhu et al., TPAMI) and 3DDFA_V2 (Guo et al., ECCV 2020): from a
photo to 68 landmarks, head pose and a dense 3D face.

    >>> import ddfa
    >>> aligner = ddfa.FaceAligner(model="mb05", assets="path/to/assets")
    >>> faces = aligner("photo.jpg")

The 3DMM data (Basel Face Model 2009 derivatives) and the pretrained models are for
non-commercial research use only.
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from .errors import AssetError, DdfaError, ImageReadError, InputError

# Everything else is imported on first use (PEP 562), so that ``import ddfa`` and ``ddfa --help``
# stay light (no torch, OpenCV or numba) and Ctrl-C during start-up reaches the command line's
# handler instead of printing a traceback from inside an import.
_LAZY = {
    "AssetStore": ".assets",
    "cache_info": ".caching",
    "clear_caches": ".caching",
    "Detections": ".detect",
    "Detector": ".detect",
    "create_detector": ".detect",
    "list_detectors": ".detect",
    "register_detector": ".detect",
    "Face": ".face",
    "Pose": ".face",
    "read_image": ".io.image",
    "MorphableModel": ".morphable.model",
    "load_morphable_model": ".morphable.model",
    "ModelSpec": ".nets.registry",
    "create_model": ".nets.registry",
    "list_models": ".nets.registry",
    "register_architecture": ".nets.registry",
    "register_model": ".nets.registry",
    "AlignOptions": ".pipeline",
    "FaceAligner": ".pipeline",
    "BaseOptions": ".runtime",
}

if TYPE_CHECKING:  # pragma: no cover
    from .assets import AssetStore
    from .caching import cache_info, clear_caches
    from .detect import Detections, Detector, create_detector, list_detectors, register_detector
    from .face import Face, Pose
    from .io.image import read_image
    from .morphable.model import MorphableModel, load_morphable_model
    from .nets.registry import ModelSpec, create_model, list_models, register_architecture, register_model
    from .pipeline import AlignOptions, FaceAligner
    from .runtime import BaseOptions


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AlignOptions",
    "AssetError",
    "AssetStore",
    "BaseOptions",
    "DdfaError",
    "Detections",
    "Detector",
    "Face",
    "FaceAligner",
    "ImageReadError",
    "InputError",
    "ModelSpec",
    "MorphableModel",
    "Pose",
    "__version__",
    "cache_info",
    "clear_caches",
    "create_detector",
    "create_model",
    "list_detectors",
    "list_models",
    "load_morphable_model",
    "read_image",
    "register_architecture",
    "register_detector",
    "register_model",
]
