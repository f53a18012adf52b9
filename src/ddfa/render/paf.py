"""Pose Adaptive Features (PAF) of 3DDFA (Zhu et al., TPAMI 2019, "Face Alignment in Full
Pose Range: A 3D Total Solution", section on the pose adaptive feature).

3DDFA fixes a 64x64 grid of *anchors* on the face surface (``Model_PAF.pkl``: the 3DMM mean
and bases restricted to the anchors). With a face's current parameters the anchors are
reconstructed like any vertex (shape + expression, then pose) and projected into the image;
sampling the photo at the projected anchors gives a 64x64 feature map that is aligned with
the face surface whatever the pose: the same row/column always shows the same part of the
face. 3DDFA crops a d x d patch around each anchor (d x d kernels of its "pose adaptive
convolution" then see exactly one anchor each), giving a (64·d) x (64·d) map.

ddfa computes it on the full photo with bilinear sampling (3DDFA rounded the anchors to
integer pixels of the 120x120 crop); the patch offsets are in crop pixels, scaled to the
photo by the roi size. Grid order: row 0 is the top (forehead) of the face, column 0 its
image-left side for a frontal face.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..assets.store import AssetsLike
from ..errors import InputError
from ..morphable.frames import CROP_SIZE, model_to_image
from ..morphable.reconstruct import reconstruct
from .assets import PAF_GRID, assets_of
from .dense import sample_image


def paf_anchors(face: Any, *, assets: AssetsLike = None) -> np.ndarray:
    """(64, 64, 3) float32 image-frame positions of the face's PAF anchors (x, y, z pixels).

    The anchors are reconstructed like any vertex (:func:`~ddfa.morphable.reconstruct.reconstruct`
    with the anchor basis, in float64) and taken to the image through the face's roi.
    ``assets``: store or folder holding ``Model_PAF.pkl`` (default: the face's, see
    :func:`ddfa.render.assets.assets_of`).
    """
    basis = assets_of(face, assets).paf
    posed = reconstruct(np.asarray(face.params, dtype=np.float64)[None], basis.mean, basis.basis)[0]
    points = model_to_image(posed, np.asarray(face.roi_box, dtype=np.float64))
    return points.reshape(PAF_GRID, PAF_GRID, 3).astype(np.float32)


def paf_features(image: np.ndarray, face: Any, kernel_size: int = 3, *, assets: AssetsLike = None) -> np.ndarray:
    """The PAF map of one face.

    Args:
        image: (H, W, 3) uint8 BGR photo.
        face: a :class:`~ddfa.face.Face`.
        kernel_size: d, the patch size around each anchor in crop pixels (odd, >= 1); 1 gives
            the plain 64x64 sampled map.
        assets: asset store or folder for ``Model_PAF.pkl`` (default: the face's, see
            :func:`ddfa.render.assets.assets_of`).

    Returns:
        (64·d, 64·d, 3) uint8 BGR: pixel ``(r·d + i, c·d + j)`` is the photo at anchor
        ``(r, c)`` offset by ``(j - d//2, i - d//2)`` crop pixels.
    """
    d = int(kernel_size)
    if d < 1 or d % 2 == 0:
        raise InputError(f"PAF kernel_size must be a positive odd number, got {kernel_size}")
    anchors = paf_anchors(face, assets=assets)[:, :, :2]  # (64, 64, 2)
    roi = np.asarray(face.roi_box, dtype=np.float64)
    step = np.array([(roi[2] - roi[0]) / CROP_SIZE, (roi[3] - roi[1]) / CROP_SIZE], np.float32)
    offsets = np.arange(d, dtype=np.float32) - d // 2
    # points[r, i, c, j] = anchor[r, c] + (offsets[j], offsets[i]) * step
    points = np.empty((PAF_GRID, d, PAF_GRID, d, 2), np.float32)
    points[..., 0] = anchors[:, None, :, None, 0] + offsets[None, None, None, :] * step[0]
    points[..., 1] = anchors[:, None, :, None, 1] + offsets[None, :, None, None] * step[1]
    values = sample_image(np.asarray(image), points.reshape(-1, 2))
    return np.clip(values + 0.5, 0, 255).astype(np.uint8).reshape(PAF_GRID * d, PAF_GRID * d, -1)


GRID_COLOR = (255, 255, 0)  # BGR, cyan


def draw_paf(image: np.ndarray, faces: Sequence, *, kernel_size: int = 1, every: int = 4,
             assets: AssetsLike = None) -> np.ndarray:
    """The ``paf`` overlay: each face's projected anchor grid (every ``every``-th row and
    column drawn as lines) and its PAF map (:func:`paf_features`) as an inset about 40% of
    the roi wide, with a white frame, beside the roi box (left of it when there is room,
    else right of it, else inside the image).

    Args:
        image: (H, W, 3) uint8 BGR photo.
        faces: faces of that photo.
    """
    import cv2

    out = np.array(image, dtype=np.uint8, copy=True)
    height, width = out.shape[:2]
    shift = 4
    for face in faces:
        anchors = paf_anchors(face, assets=assets)[:, :, :2]
        roi = np.asarray(face.roi_box, dtype=np.float64)
        thickness = max(1, int(round((roi[2] - roi[0]) / 300)))
        fixed = np.round(anchors * (1 << shift)).astype(np.int32)
        lines = [fixed[r] for r in range(0, PAF_GRID, every)] + [fixed[:, c] for c in range(0, PAF_GRID, every)]
        lines = [np.ascontiguousarray(line) for line in lines + [fixed[-1], fixed[:, -1]]]
        cv2.polylines(out, lines, False, GRID_COLOR, thickness, cv2.LINE_AA, shift)
        side = int(round(0.4 * (roi[2] - roi[0])))
        side = min(side, height - 2, width - 2)
        if side < 8:
            continue
        inset = cv2.resize(paf_features(image, face, kernel_size, assets=assets), (side, side),
                           interpolation=cv2.INTER_NEAREST if side >= PAF_GRID * kernel_size else cv2.INTER_AREA)
        # beside the roi box: on its left if there is room, else on its right, else inside
        margin = max(2, side // 20)
        x0 = roi[0] - margin - side if roi[0] - margin - side >= 1 else roi[2] + margin
        x0 = int(np.clip(round(x0), 1, width - side - 1))
        y0 = int(np.clip(round(roi[1]), 1, height - side - 1))
        out[y0:y0 + side, x0:x0 + side] = inset
        cv2.rectangle(out, (x0 - 1, y0 - 1), (x0 + side, y0 + side), (255, 255, 255), 1)
    return out
