"""Drawing 2D overlays on photos: sparse landmarks and boxes.

All functions take an (H, W, 3) uint8 BGR image and return a new image (the input is not
modified). Coordinates are image-frame pixels (0-based, y down).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

#: the 68-point contours: (start, end, closed), iBUG order
LANDMARK_CONTOURS: tuple[tuple[int, int, bool], ...] = (
    (0, 17, False),  # jaw
    (17, 22, False),  # right brow (image left)
    (22, 27, False),  # left brow
    (27, 31, False),  # nose bridge
    (31, 36, False),  # nostrils
    (36, 42, True),  # right eye
    (42, 48, True),  # left eye
    (48, 60, True),  # outer lips
    (60, 68, True),  # inner lips
)

LANDMARK_COLOR = (0, 255, 0)  # BGR
LINE_COLOR = (255, 255, 255)
BOX_COLOR = (0, 200, 255)


def _line_scale(image: np.ndarray, faces) -> float:
    """Marker size that stays visible on small and huge photos (about 1/150 of the face size)."""
    sizes = [float(f.roi_box[2] - f.roi_box[0]) for f in faces] or [min(image.shape[:2]) / 4]
    return max(1.0, float(np.median(sizes)) / 150.0)


def draw_landmarks(image: np.ndarray, faces: Sequence, *, boxes: bool = True, lines: bool = True,
                   color=LANDMARK_COLOR) -> np.ndarray:
    """Overlay each face's 68 landmarks (dots joined by contour lines) and detection box.

    Args:
        image: (H, W, 3) uint8 BGR photo.
        faces: :class:`~ddfa.face.Face` records (anything with ``landmarks`` (68, 2+) and
            ``box`` (4,) in image pixels).
    """
    out = image.copy()
    scale = _line_scale(image, faces)
    thickness = max(1, int(round(scale)))
    radius = max(1, int(round(1.5 * scale)))
    shift = 4  # sub-pixel precision of cv2 drawing: 1/16 px
    if boxes:  # boxes first, so that no landmark is hidden under a box edge
        for face in faces:
            if getattr(face, "box", None) is not None:
                x1, y1, x2, y2 = (int(round(v)) for v in face.box)
                cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOR, thickness, cv2.LINE_AA)
    for face in faces:
        fixed = np.round(np.asarray(face.landmarks)[:, :2] * (1 << shift)).astype(np.int32)
        if lines:
            for start, end, closed in LANDMARK_CONTOURS:
                cv2.polylines(out, [fixed[start:end]], closed, LINE_COLOR, thickness, cv2.LINE_AA, shift)
    for face in faces:
        fixed = np.round(np.asarray(face.landmarks)[:, :2] * (1 << shift)).astype(np.int32)
        for x, y in fixed:
            cv2.circle(out, (int(x), int(y)), radius << shift, color, -1, cv2.LINE_AA, shift)
    return out
