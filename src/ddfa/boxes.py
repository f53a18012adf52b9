"""Axis-aligned boxes in the image frame: ``(x1, y1, x2, y2)`` pixels, 0-based, y down.

The one home of box arithmetic shared by the pipeline, the video tracker, the detectors and
the training data: bounding boxes of landmarks, intersection over union, areas, the one
non-maximum suppression every detector uses (:func:`nms`), and the box-to-roi mappings that
turn a detector's box into the square region the regressor sees (:class:`RoiMapping`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def point_bounds(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., P, D) points -> ``(lo, hi)``, each (..., D): the least and greatest value of each
    coordinate over the P points.

    Reduced one coordinate at a time: numpy's reduction over the points axis of a (P, 3)
    array runs ~10x slower (1.6 ms for a dense face's 38,365 vertices, against 0.15 ms).
    """
    pts = np.asarray(points)
    columns = [pts[..., k] for k in range(pts.shape[-1])]
    return (np.stack([c.min(axis=-1) for c in columns], axis=-1),
            np.stack([c.max(axis=-1) for c in columns], axis=-1))


def landmark_boxes(points: np.ndarray) -> np.ndarray:
    """(K, P, 2+) or (P, 2+) points in pixels -> (K, 4) or (4,) bounding boxes, in the input's
    float dtype (float32 for integer input)."""
    pts = np.asarray(points)
    if not np.issubdtype(pts.dtype, np.floating):
        pts = pts.astype(np.float32)
    lo, hi = point_bounds(pts[..., :2])
    return np.concatenate([lo, hi], axis=-1)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) boxes -> (...) float64 areas in pixels² (0 for degenerate boxes)."""
    b = np.asarray(boxes, np.float64)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) boxes ``a`` against (M, 4) boxes ``b`` -> (N, M) float64."""
    a = np.asarray(a, np.float64).reshape(-1, 1, 4)
    b = np.asarray(b, np.float64).reshape(1, -1, 4)
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    return inter / np.maximum(box_areas(a) + box_areas(b) - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, *, pixel_inclusive: bool = False) -> np.ndarray:
    """Greedy non-maximum suppression, shared by every detector of ddfa.

    Boxes are visited in descending score; a box is dropped when its IoU with an already kept
    box exceeds ``iou_threshold`` (strictly). Each step is one vectorised overlap computation
    against all remaining boxes (the loop runs once per *kept* box).

    Args:
        boxes: (N, 4) float ``(x1, y1, x2, y2)`` in pixels.
        scores: (N,) scores.
        iou_threshold: IoU above which a lower-scored box is suppressed.
        pixel_inclusive: areas as ``(x2 - x1 + 1) * (y2 - y1 + 1)``, the convention of the
            original FaceBoxes code (FaceBoxes passes True for bit-identical detections);
            False: the continuous ``(x2 - x1) * (y2 - y1)``.

    Returns:
        (K,) int64 indices of the kept boxes, in descending score (ties: the order of
        ``np.argsort(scores)[::-1]``, the original FaceBoxes code's).
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(boxes)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    one = boxes.dtype.type(1 if pixel_inclusive else 0)
    areas = (x2 - x1 + one) * (y2 - y1 + one)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, np.finfo(np.float32).tiny)
        order = rest[overlap <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


@dataclass(frozen=True)
class RoiMapping:
    """How a detector's box becomes the square roi the regressor sees.

    With ``m = (w + h) / 2`` the mean side of a box ``(x1, y1, x2, y2)`` and ``(cx, cy)`` its
    centre, the roi is the square of side ``scale * m`` (rounded down to whole pixels when
    ``truncate``) centred on ``(cx + shift_x * m, cy + shift_y * m)``. When the detector gives
    5 facial points and ``keypoint_weight > 0``, the centre is blended towards the centre of
    the points' bounding box: ``centre = (1 - k) * box centre + k * points centre`` (before the
    shift), with ``k = keypoint_weight``.

    3DDFA_V2's rule for FaceBoxes is ``RoiMapping(1.58, 0.0, 0.14, truncate=True)``
    (:data:`FACEBOXES_ROI`); each detector plug-in carries its own (``detector.roi_mapping``),
    fitted on the development photos by ``experiments/fit_roi_mapping.py``.

    Attributes:
        scale: roi side / mean box side.
        shift_x, shift_y: centre offset / mean box side (image frame: +x right, +y down).
        truncate: round the side down to whole pixels (3DDFA_V2's ``int()``).
        keypoint_weight: weight of the 5 points' centre in the roi centre (0: box only).
    """

    scale: float
    shift_x: float = 0.0
    shift_y: float = 0.0
    truncate: bool = False
    keypoint_weight: float = 0.0

    def __call__(self, boxes: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """(K, 4) boxes [and (K, 5, 2) points] -> (K, 4) float32 roi boxes ``(sx, sy, ex, ey)``.

        Computed in float32 (as 3DDFA_V2 does under numpy 2), so that :data:`FACEBOXES_ROI`
        gives the original's rois to the bit.
        """
        b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        left, top, right, bottom = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        half = np.float32(2)
        old_size = (right - left + bottom - top) / half
        centre_x = right - (right - left) / half
        centre_y = bottom - (bottom - top) / half
        if self.keypoint_weight and keypoints is not None:
            pts = np.asarray(keypoints, dtype=np.float32).reshape(len(b), -1, 2)
            k = np.float32(self.keypoint_weight)
            centre_x = (np.float32(1) - k) * centre_x + k * (pts[:, :, 0].min(1) + pts[:, :, 0].max(1)) / half
            centre_y = (np.float32(1) - k) * centre_y + k * (pts[:, :, 1].min(1) + pts[:, :, 1].max(1)) / half
        if self.shift_x:
            centre_x = centre_x + old_size * np.float32(self.shift_x)
        if self.shift_y:
            centre_y = centre_y + old_size * np.float32(self.shift_y)
        size = old_size * np.float32(self.scale)
        if self.truncate:
            size = np.trunc(size).astype(np.float32)
        sx = centre_x - size / half
        sy = centre_y - size / half
        return np.stack([sx, sy, sx + size, sy + size], axis=1)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "shift_x": self.shift_x, "shift_y": self.shift_y, "truncate": self.truncate,
                "keypoint_weight": self.keypoint_weight}


#: 3DDFA_V2's box-to-roi rule, fitted by its authors to FaceBoxes' boxes (bit-identical crops)
FACEBOXES_ROI = RoiMapping(1.58, 0.0, 0.14, truncate=True)
