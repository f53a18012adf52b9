"""Face detection: the detector plug-in interface, its registry, and FaceBoxes."""

from . import faceboxes  # noqa: F401  (registers "faceboxes")
from .base import (
                   CallableDetector,
                   Detections,
                   Detector,
                   DetectorSpec,
                   create_detector,
                   list_detectors,
                   register_detector,
)

__all__ = ["CallableDetector", "Detections", "Detector", "DetectorSpec", "create_detector", "list_detectors",
           "register_detector"]
