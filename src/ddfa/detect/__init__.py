"""Face detection: the detector plug-in interface, its registry, and FaceBoxes."""

from .base import CallableDetector, Detections, Detector, create_detector, register_detector
from . import faceboxes  # noqa: F401  (registers "faceboxes")

__all__ = ["CallableDetector", "Detections", "Detector", "create_detector", "register_detector"]
