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

**Image-frame parameters** (:func:`params_to_image`): the model -> image map of one roi is an
axis-aligned affine map ``x_img = a ⊙ x_model + b`` (:func:`roi_affine`), so a face's pose
``P = [s·R | t]`` can absorb it: ``P_img = [a ⊙ s·R | a ⊙ t + b]`` maps model-frame points
straight to image pixels, and ``reconstruct(params_to_image(p, roi), mean, basis)`` equals
``model_to_image(reconstruct(p, mean, basis), roi)``. Faces in this form no longer depend on the
roi they were cropped with (the video smoother filters them; see :mod:`ddfa.video.smoothing`).

Functions accept numpy arrays or torch tensors: points (B, N, 3) or (N, 3), roi boxes (B, 4) or
(4,) as ``(sx, sy, ex, ey)`` in image pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .params import ArrayLike, coefficients, join_params, pose_matrix

CROP_SIZE = 120


def _stack(x, y, z, like):
    if isinstance(like, np.ndarray):
        return np.stack([x, y, z], axis=-1)
    import torch

    return torch.stack([x, y, z], dim=-1)


def _roi_scales(roi_boxes, like, size):
    """Per-face (sx, sy, scale_x, scale_y), broadcastable against (..., N)."""
    roi: Any
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


def model_to_crop(vertices: ArrayLike, size: int = CROP_SIZE) -> ArrayLike:
    """Model frame (y up) -> ddfa crop frame (0-based, y down). Shapes (..., N, 3)."""
    return _stack(vertices[..., 0] - 1, size - vertices[..., 1], vertices[..., 2], vertices)


def crop_to_image(points: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
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


def image_to_crop(points: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
    """Inverse of :func:`crop_to_image`."""
    sx, sy, scale_x, scale_y = _roi_scales(roi_boxes, points, size)
    x = (points[..., 0] - sx) / scale_x
    y = (points[..., 1] - sy) / scale_y
    z = points[..., 2] / ((scale_x + scale_y) / 2)
    out = _stack(x, y, z, points)
    return out.astype(points.dtype, copy=False) if isinstance(out, np.ndarray) else out


def model_to_image(vertices: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
    """Model frame -> image frame (0-based pixels, y down, z towards the camera)."""
    return crop_to_image(model_to_crop(vertices, size), roi_boxes, size)


def v1_crop_frame(points_crop: ArrayLike) -> ArrayLike:
    """ddfa crop frame -> 3DDFA v1's 1-based crop frame (x + 1, y + 1; z unchanged)."""
    return _stack(points_crop[..., 0] + 1, points_crop[..., 1] + 1, points_crop[..., 2], points_crop)


def v1_image_frame(points_image: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
    """ddfa image frame -> 3DDFA v1's image frame (one *crop* pixel further right and down)."""
    _, _, scale_x, scale_y = _roi_scales(roi_boxes, points_image, size)
    return _stack(
        points_image[..., 0] + scale_x, points_image[..., 1] + scale_y, points_image[..., 2], points_image
    )


def v2_depth(points: ArrayLike) -> ArrayLike:
    """3DDFA_V2's depth convention: z minus the minimum z of the given point set (per face)."""
    z = points[..., 2]
    zmin = z.min(axis=-1, keepdims=True) if isinstance(z, np.ndarray) else z.min(dim=-1, keepdim=True).values
    return _stack(points[..., 0], points[..., 1], z - zmin, points)


# ---------------------------------------------------------------------- image-frame parameters
def roi_affine(roi_boxes: Any, size: int = CROP_SIZE) -> tuple[ArrayLike, ArrayLike]:
    """The model -> image frame map of each roi as ``x_img = a ⊙ x_model + b`` (elementwise).

    The same map as :func:`model_to_image`: ``a = (kx, -ky, (kx + ky) / 2)`` and
    ``b = (sx - kx, sy + size·ky, 0)`` with ``kx = (ex - sx) / size``, ``ky = (ey - sy) / size``
    image pixels per crop pixel.

    Args:
        roi_boxes: (..., 4) roi boxes ``(sx, sy, ex, ey)`` in image pixels; numpy (computed in
            float64) or torch (in its own dtype).

    Returns:
        ``(a, b)``: (..., 3) each, unitless scale and image pixels.
    """
    roi = roi_boxes if _is_torch(roi_boxes) else np.asarray(roi_boxes, dtype=np.float64)
    sx, sy, ex, ey = roi[..., 0], roi[..., 1], roi[..., 2], roi[..., 3]
    kx, ky = (ex - sx) / size, (ey - sy) / size
    return _stack(kx, -ky, (kx + ky) / 2, roi), _stack(sx - kx, sy + size * ky, kx * 0, roi)


def pose_to_image(pose: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
    """(..., 3, 4) model-frame poses ``[s·R | t]`` and (..., 4) rois -> (..., 3, 4) image-frame
    poses ``[a ⊙ s·R | a ⊙ t + b]`` (see :func:`roi_affine`): ``apply_pose`` of the result gives
    image pixels. numpy: float64; torch: the pose's dtype."""
    pose = _as_float(pose)
    a, b = roi_affine(_like(roi_boxes, pose), size)
    return a[..., :, None] * pose + _last_column(b, pose)


def pose_from_image(image_pose: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
    """Inverse of :func:`pose_to_image`: (..., 3, 4) image-frame poses -> model-frame poses."""
    image_pose = _as_float(image_pose)
    a, b = roi_affine(_like(roi_boxes, image_pose), size)
    return (image_pose - _last_column(b, image_pose)) / a[..., :, None]


def params_to_image(params: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
    """(..., 62) parameters and (..., 4) rois -> (..., 62) *image-frame* parameters.

    The pose block becomes :func:`pose_to_image` of the face's pose (the morphable model then
    reconstructs image-frame points directly: ``model.landmarks(q)`` are the face's landmarks in
    image pixels); shape and expression are unchanged. numpy: float64; torch: its dtype.
    """
    params = _as_float(params)
    return join_params(pose_to_image(pose_matrix(params), roi_boxes, size), coefficients(params))


def params_from_image(image_params: ArrayLike, roi_boxes: Any, size: int = CROP_SIZE) -> ArrayLike:
    """Inverse of :func:`params_to_image`: (..., 62) image-frame parameters and the rois to
    express them in -> (..., 62) model-frame parameters (numpy: float64)."""
    image_params = _as_float(image_params)
    return join_params(pose_from_image(pose_matrix(image_params), roi_boxes, size), coefficients(image_params))


def _is_torch(x) -> bool:
    return not isinstance(x, np.ndarray) and type(x).__module__.startswith("torch")


def _as_float(x):
    return x if _is_torch(x) else np.asarray(x, dtype=np.float64)


def _like(roi_boxes, like):
    """``roi_boxes`` as the array type (and, for torch, dtype and device) of ``like``."""
    if isinstance(like, np.ndarray):
        return np.asarray(roi_boxes, dtype=np.float64)
    import torch

    return torch.as_tensor(roi_boxes, dtype=like.dtype, device=like.device)


def _last_column(b, like):
    """(..., 3) offsets -> (..., 3, 4) matrices with ``b`` as the last column, zeros elsewhere."""
    if isinstance(like, np.ndarray):
        out = np.zeros(b.shape + (4,), dtype=b.dtype)
        out[..., 3] = b
        return out
    import torch

    return torch.nn.functional.pad(b[..., None], (3, 0))
