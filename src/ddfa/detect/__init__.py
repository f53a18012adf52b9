"""Face detection: the detector plug-in interface, its registry, and the plug-ins YuNet (the
default), CenterFace and FaceBoxes."""

from .base import (DEFAULT_DETECTOR, KEYPOINT_NAMES, CallableDetector, Detections, Detector, DetectorSpec,
                   create_detector, list_detectors, register_detector)
from . import faceboxes  # noqa: F401  (registers "faceboxes")
from . import yunet  # noqa: F401  (registers "yunet")
from . import centerface  # noqa: F401  (registers "centerface")

__all__ = ["DEFAULT_DETECTOR", "KEYPOINT_NAMES", "CallableDetector", "Detections", "Detector", "DetectorSpec",
           "create_detector", "list_detectors", "register_detector"]
