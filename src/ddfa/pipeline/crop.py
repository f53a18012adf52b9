"""Roi boxes and 120x120 network crops.

A roi box ``(sx, sy, ex, ey)`` is a square region of the photo in pixels; the network sees it
resized to 120x120. Two crop policies, as in 3DDFA_V2:

* from a detection box (:func:`roi_from_box`): a square whose side and centre follow from the
  box by the detector's :class:`~ddfa.boxes.RoiMapping`. For FaceBoxes (3DDFA_V2's rule) a
  square of side ``1.58 x`` the mean box side (rounded down), centred on the box moved down by
  ``0.14 x`` that mean side; other detectors' mappings are fitted on development photos
  (``experiments/fit_roi_mapping.py``);
* from 68 landmarks (:func:`roi_from_landmarks`): the square around the landmarks' bounding box
  (side = the larger extent), grown to its diagonal, same centre. Used for the second pass of
  two-step refinement and for video tracking.

Both are computed in float32, as the original implementation does under numpy 2.
"""

from __future__ import annotations

import numpy as np

from ..boxes import FACEBOXES_ROI, RoiMapping
from ..morphable.frames import CROP_SIZE


def roi_from_box(boxes: np.ndarray, mapping: RoiMapping = FACEBOXES_ROI,
                 keypoints: np.ndarray | None = None) -> np.ndarray:
    """(K, 4) detection boxes ``(x1, y1, x2, y2)`` -> (K, 4) float32 roi boxes.

    Args:
        boxes: (K, 4) boxes in image pixels.
        mapping: the detector's box-to-roi rule (``detector.roi_mapping``); default
            3DDFA_V2's rule for FaceBoxes boxes, bit-identical to the original.
        keypoints: optional (K, 5, 2) facial points of the same faces (used by mappings with
            ``keypoint_weight > 0``).
    """
    return mapping(boxes, keypoints)


def roi_from_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(K, 68, 2+) landmarks in image pixels -> (K, 4) float32 roi boxes."""
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.ndim == 2:
        pts = pts[None]
    x_min, y_min = pts[:, :, 0].min(axis=1), pts[:, :, 1].min(axis=1)
    x_max, y_max = pts[:, :, 0].max(axis=1), pts[:, :, 1].max(axis=1)
    centre_x = (x_min + x_max) / np.float32(2)
    centre_y = (y_min + y_max) / np.float32(2)
    radius = np.maximum(x_max - x_min, y_max - y_min) / np.float32(2)
    left, right = centre_x - radius, centre_x + radius
    top, bottom = centre_y - radius, centre_y + radius
    diagonal = np.sqrt((right - left).astype(np.float64) ** 2 + (bottom - top).astype(np.float64) ** 2)
    centre_x = (right + left) / np.float32(2)
    centre_y = (bottom + top) / np.float32(2)
    sx = (centre_x - diagonal / 2).astype(np.float32)
    sy = (centre_y - diagonal / 2).astype(np.float32)
    return np.stack([sx, sy, (sx + diagonal).astype(np.float32), (sy + diagonal).astype(np.float32)], axis=1)


def crop_face(image: np.ndarray, roi_box, size: int = CROP_SIZE) -> np.ndarray:
    """Cut ``roi_box`` out of ``image`` (zero outside the photo) and resize to ``size`` x ``size``.

    The roi corners are rounded to whole pixels (half to even), the region is zero-padded
    where it leaves the image, and resized with bilinear interpolation: byte-identical to
    3DDFA_V2's ``crop_img`` + ``cv2.resize``. Only the roi region is copied, so crops of huge
    photos stay cheap.

    Args:
        image: (H, W, 3) uint8 BGR photo.
        roi_box: ``(sx, sy, ex, ey)`` in pixels.

    Returns:
        (size, size, 3) uint8 BGR crop.
    """
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
    height, width = image.shape[:2]
    sx, sy, ex, ey = (int(v) for v in np.rint(np.asarray(roi_box, dtype=np.float64)))
    if ex <= sx or ey <= sy:
        return np.zeros((size, size, 3), np.uint8)
    x0, y0, x1, y1 = max(sx, 0), max(sy, 0), min(ex, width), min(ey, height)
    if x1 <= x0 or y1 <= y0:  # entirely outside the photo
        return np.zeros((size, size, 3), np.uint8)
    region = image[y0:y1, x0:x1]
    if (x0, y0, x1, y1) != (sx, sy, ex, ey):
        region = cv2.copyMakeBorder(
            region, y0 - sy, ey - y1, x0 - sx, ex - x1, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR)


def crop_faces(image: np.ndarray, roi_boxes: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(K, 4) roi boxes -> (K, size, size, 3) uint8 crops of one image."""
    rois = np.asarray(roi_boxes).reshape(-1, 4)
    out = np.empty((len(rois), size, size, 3), np.uint8)
    for k, roi in enumerate(rois):
        out[k] = crop_face(image, roi, size)
    return out
