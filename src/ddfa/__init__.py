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

from .assets import AssetStore  # noqa: E402
from .caching import cache_info, clear_caches  # noqa: E402
from .detect import Detections, Detector, create_detector, list_detectors, register_detector  # noqa: E402
from .errors import AssetError, DdfaError, ImageReadError, InputError  # noqa: E402
from .face import Face, Pose  # noqa: E402
from .io.image import read_image  # noqa: E402
from .morphable.model import MorphableModel, load_morphable_model  # noqa: E402
from .nets.registry import ModelSpec, create_model, list_models, register_architecture, register_model  # noqa: E402
from .pipeline import AlignOptions, FaceAligner  # noqa: E402
from .runtime import BaseOptions  # noqa: E402

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
