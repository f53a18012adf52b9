"""Face detection: the detector plug-in interface, its registry, and the plug-ins YuNet (the
default), CenterFace and FaceBoxes."""

from . import (
                   centerface,  # noqa: F401  (registers "centerface")
                   faceboxes,  # noqa: F401  (registers "faceboxes")
                   yunet,  # noqa: F401  (registers "yunet")
)
from .base import (
                   DEFAULT_DETECTOR,
                   KEYPOINT_NAMES,
                   CallableDetector,
                   Detections,
                   Detector,
                   DetectorSpec,
                   create_detector,
                   list_detectors,
                   register_detector,
)

__all__ = ["DEFAULT_DETECTOR", "KEYPOINT_NAMES", "CallableDetector", "Detections", "Detector", "DetectorSpec",
           "create_detector", "list_detectors", "register_detector"]
