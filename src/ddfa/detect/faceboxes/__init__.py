"""FaceBoxes face detector: network, anchors, decoding, NMS and the detector plug-in."""

from .detector import FaceBoxesDetector, FaceBoxesOptions

__all__ = ["FaceBoxesDetector", "FaceBoxesOptions"]
