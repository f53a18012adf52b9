"""Axis-aligned boxes in the image frame: ``(x1, y1, x2, y2)`` pixels, 0-based, y down.

The one home of box arithmetic shared by the pipeline, the video tracker, the detectors and
the training data: bounding boxes of landmarks, intersection over union, areas.
"""

from __future__ import annotations

import numpy as np


def landmark_boxes(points: np.ndarray) -> np.ndarray:
    """(K, P, 2+) or (P, 2+) points in pixels -> (K, 4) or (4,) bounding boxes, in the input's
    float dtype (float32 for integer input)."""
    pts = np.asarray(points)
    if not np.issubdtype(pts.dtype, np.floating):
        pts = pts.astype(np.float32)
    xy = pts[..., :2]
    return np.concatenate([xy.min(axis=-2), xy.max(axis=-2)], axis=-1)


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
