"""FaceBoxes anchors (priors) and box decoding, vectorised; its NMS convention.

Boxes are ``(x1, y1, x2, y2)`` in pixels of the image the network saw; priors are
``(cx, cy, w, h)`` as fractions of that image's width and height.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ...boxes import nms as shared_nms

#: anchor sizes in pixels per detection layer, and the layers' strides
MIN_SIZES: tuple[tuple[int, ...], ...] = ((32, 64, 128), (256,), (512,))
STEPS: tuple[int, ...] = (32, 64, 128)
#: variances of the box encoding (centre, size)
VARIANCES: tuple[float, float] = (0.1, 0.2)


def _cell_anchor_offsets(min_size: int) -> np.ndarray:
    """(A, 2) offsets (dx, dy) in cell units of the anchors one cell holds for ``min_size``.

    Small anchors are densified so that they tile the image as densely as the large ones:
    32 px anchors 4x4 per cell, 64 px anchors 2x2, larger ones once at the cell centre. The
    order is row-major (dy outer, dx inner).
    """
    if min_size == 32:
        steps = np.array([0.0, 0.25, 0.5, 0.75])
    elif min_size == 64:
        steps = np.array([0.0, 0.5])
    else:
        steps = np.array([0.5])
    dy, dx = np.meshgrid(steps, steps, indexing="ij")
    return np.stack([dx.ravel(), dy.ravel()], axis=1)


@lru_cache(maxsize=32)
def prior_boxes(height: int, width: int) -> np.ndarray:
    """Anchors of FaceBoxes for an input of ``height`` x ``width`` pixels.

    Returns:
        (P, 4) float32 array of ``(cx, cy, w, h)`` as fractions of the image size, in the order
        of the network's outputs: layer by layer; within a layer the cells row-major; within a
        cell the anchor sizes in order, each densified row-major. Cached per size (read-only).
    """
    layers = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        # per-cell anchor template: (A, 4) of (dx, dy, size_x, size_y) in pixels / cells
        template = np.concatenate(
            [
                np.concatenate(
                    [_cell_anchor_offsets(s), np.full((len(_cell_anchor_offsets(s)), 1), float(s))], axis=1
                )
                for s in sizes
            ]
        )
        i, j = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(cols, dtype=np.float64), indexing="ij")
        cx = (j.reshape(-1, 1) + template[:, 0]) * step / width
        cy = (i.reshape(-1, 1) + template[:, 1]) * step / height
        w = np.broadcast_to(template[:, 2] / width, cx.shape)
        h = np.broadcast_to(template[:, 2] / height, cx.shape)
        layers.append(np.stack([cx, cy, w, h], axis=-1).reshape(-1, 4))
    priors = np.concatenate(layers).astype(np.float32)
    priors.setflags(write=False)
    return priors


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances=VARIANCES) -> np.ndarray:
    """Decode network offsets into corner boxes.

    Args:
        loc: (N, 4) float32 offsets predicted for ``priors``.
        priors: (N, 4) float32 ``(cx, cy, w, h)`` fractions of the image size.

    Returns:
        (N, 4) float32 ``(x1, y1, x2, y2)`` as fractions of the image size.
    """
    v0 = np.float32(variances[0])
    v1 = np.float32(variances[1])
    centre = priors[:, :2] + loc[:, :2] * v0 * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * v1)
    top_left = centre - size / np.float32(2)
    return np.concatenate([top_left, top_left + size], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """FaceBoxes' non-maximum suppression: :func:`ddfa.boxes.nms` with the original code's
    pixel-inclusive areas ``(x2 - x1 + 1) * (y2 - y1 + 1)``.

    Returns:
        (K,) int64 indices of the kept boxes, in descending score.
    """
    return shared_nms(boxes, scores, iou_threshold, pixel_inclusive=True)
