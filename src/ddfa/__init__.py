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

from .assets import AssetStore
from .caching import cache_info, clear_caches
from .detect import Detections, Detector, create_detector, list_detectors, register_detector
from .errors import AssetError, DdfaError, ImageReadError, InputError
from .face import Face, Pose
from .io.image import read_image
from .morphable.model import MorphableModel, load_morphable_model
from .nets.registry import ModelSpec, create_model, list_models, register_architecture, register_model
from .pipeline import AlignOptions, FaceAligner
from .runtime import BaseOptions

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
