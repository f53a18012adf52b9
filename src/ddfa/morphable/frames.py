"""Coordinate frames between the morphable model, the 120x120 crop and the photo.

Frames (all in pixels, x right, y down in the crop and image frames):

* **model frame**: what ``P·[S; 1]`` gives, y *up*, units of crop pixels (see
  :mod:`ddfa.morphable.model`).
* **crop frame** (ddfa, = 3DDFA_V2): 0-based pixels of the 120x120 crop, origin at the centre
  of the top-left pixel, y down: ``x = Vx - 1``, ``y = 120 - Vy``, ``z = Vz``. 3DDFA v1 used the
  1-based frame ``(Vx, 121 - Vy)``: the same points one crop pixel further right and down
  (its ``std_size + 1 - y`` flip).
* **image frame** (ddfa, = 3DDFA_V2 for x and y): 0-based pixels of the photo, origin at the
  centre of the top-left pixel, y down. A crop point maps through its roi box
  ``(sx, sy, ex, ey)`` as ``x·(ex-sx)/120 + sx``, ``y·(ey-sy)/120 + sy``.
* **depth z**: ``z = Vz · s`` with ``s`` the mean of the two roi scales; larger z is nearer the
  camera (model z points out of the face). z is in image pixels and has the same origin for
  the 68 landmarks and the dense mesh of one face. (3DDFA_V2 instead shifts each point set so
  that its own minimum z is 0, which makes sparse and dense z differ by a constant;
  :func:`v2_depth` reproduces that. 3DDFA v1's image frame uses ``z = Vz·s`` as ddfa does.)

With y pointing down and z towards the camera the image frame is left-handed; flip y (or z)
to obtain a right-handed frame for 3D tools (the mesh exporters do this and say so).

Functions accept numpy arrays or torch tensors: points (B, N, 3) or (N, 3), roi boxes (B, 4) or
(4,) as ``(sx, sy, ex, ey)`` in image pixels.
"""

from __future__ import annotations

import numpy as np

CROP_SIZE = 120


def _stack(x, y, z, like):
    if isinstance(like, np.ndarray):
        return np.stack([x, y, z], axis=-1)
    import torch

    return torch.stack([x, y, z], dim=-1)


def _roi_scales(roi_boxes, like, size):
    """Per-face (sx, sy, scale_x, scale_y), broadcastable against (..., N)."""
    if isinstance(like, np.ndarray):
        roi = np.asarray(roi_boxes, dtype=np.float64)
    else:
        import torch

        roi = torch.as_tensor(roi_boxes, dtype=like.dtype, device=like.device)
    roi = roi[..., None, :] if like.ndim == roi.ndim + 1 else roi
    sx, sy, ex, ey = roi[..., 0], roi[..., 1], roi[..., 2], roi[..., 3]
    if like.ndim > 2:  # batched: one roi per face, broadcast over points
        sx, sy, ex, ey = (v.reshape(*v.shape[:-1], 1) if v.ndim else v for v in (sx, sy, ex, ey))
    return sx, sy, (ex - sx) / size, (ey - sy) / size


def model_to_crop(vertices, size: int = CROP_SIZE):
    """Model frame (y up) -> ddfa crop frame (0-based, y down). Shapes (..., N, 3)."""
    return _stack(vertices[..., 0] - 1, size - vertices[..., 1], vertices[..., 2], vertices)


def crop_to_image(points, roi_boxes, size: int = CROP_SIZE):
    """Crop frame -> image frame through each face's roi box.

    Args:
        points: (B, N, 3) or (N, 3) crop-frame points.
        roi_boxes: (B, 4) or (4,) roi boxes ``(sx, sy, ex, ey)`` in image pixels.
    """
    sx, sy, scale_x, scale_y = _roi_scales(roi_boxes, points, size)
    x = points[..., 0] * scale_x + sx
    y = points[..., 1] * scale_y + sy
    z = points[..., 2] * ((scale_x + scale_y) / 2)
    out = _stack(x, y, z, points)
    return out.astype(points.dtype, copy=False) if isinstance(out, np.ndarray) else out


def image_to_crop(points, roi_boxes, size: int = CROP_SIZE):
    """Inverse of :func:`crop_to_image`."""
    sx, sy, scale_x, scale_y = _roi_scales(roi_boxes, points, size)
    x = (points[..., 0] - sx) / scale_x
    y = (points[..., 1] - sy) / scale_y
    z = points[..., 2] / ((scale_x + scale_y) / 2)
    out = _stack(x, y, z, points)
    return out.astype(points.dtype, copy=False) if isinstance(out, np.ndarray) else out


def model_to_image(vertices, roi_boxes, size: int = CROP_SIZE):
    """Model frame -> image frame (0-based pixels, y down, z towards the camera)."""
    return crop_to_image(model_to_crop(vertices, size), roi_boxes, size)


def v1_crop_frame(points_crop):
    """ddfa crop frame -> 3DDFA v1's 1-based crop frame (x + 1, y + 1; z unchanged)."""
    return _stack(points_crop[..., 0] + 1, points_crop[..., 1] + 1, points_crop[..., 2], points_crop)


def v1_image_frame(points_image, roi_boxes, size: int = CROP_SIZE):
    """ddfa image frame -> 3DDFA v1's image frame (one *crop* pixel further right and down)."""
    _, _, scale_x, scale_y = _roi_scales(roi_boxes, points_image, size)
    return _stack(
        points_image[..., 0] + scale_x, points_image[..., 1] + scale_y, points_image[..., 2], points_image
    )


def v2_depth(points):
    """3DDFA_V2's depth convention: z minus the minimum z of the given point set (per face)."""
    z = points[..., 2]
    zmin = z.min(axis=-1, keepdims=True) if isinstance(z, np.ndarray) else z.min(dim=-1, keepdim=True).values
    return _stack(points[..., 0], points[..., 1], z - zmin, points)


def params_to_roi(params, roi_from, roi_to, size: int = CROP_SIZE):
    """Re-express parameters predicted on the crop of ``roi_from`` in the crop frame of ``roi_to``.

    The model-to-image map of a square roi is a scale and a shift, so a face's parameters for
    one roi become those of another exactly: ``P' = ρ·P`` plus a shift of the translation, with
    ``ρ`` the ratio of the two rois' pixels per crop pixel. ``model_to_image(reconstruct(p'),
    roi_to)`` equals ``model_to_image(reconstruct(p), roi_from)``. numpy only.

    Args:
        params: (..., 62) parameters in the frame of ``roi_from``.
        roi_from, roi_to: (..., 4) square roi boxes ``(sx, sy, ex, ey)`` (broadcast against
            ``params``).

    Returns:
        (..., 62) float64 parameters in the frame of ``roi_to``.
    """
    from .params import coefficients, join_params, pose_matrix

    p = np.asarray(params, dtype=np.float64)
    src = np.asarray(roi_from, dtype=np.float64)
    dst = np.asarray(roi_to, dtype=np.float64)
    k_src = (src[..., 2] - src[..., 0]) / size
    k_dst = (dst[..., 2] - dst[..., 0]) / size
    ratio = (k_src / k_dst)[..., None, None]
    pose = pose_matrix(p) * ratio
    shift_x = (1 - ratio[..., 0, 0]) + (src[..., 0] - dst[..., 0]) / k_dst
    shift_y = size * (1 - ratio[..., 0, 0]) - (src[..., 1] - dst[..., 1]) / k_dst
    pose[..., 0, 3] += shift_x
    pose[..., 1, 3] += shift_y
    return join_params(pose, coefficients(p))
