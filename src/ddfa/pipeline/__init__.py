"""The alignment pipeline: crops from boxes or landmarks, and the FaceAligner facade."""

from .aligner import AlignOptions, FaceAligner
from .crop import crop_face, crop_faces, roi_from_box, roi_from_landmarks

__all__ = ["AlignOptions", "FaceAligner", "crop_face", "crop_faces", "roi_from_box", "roi_from_landmarks"]
