"""Drawing 2D overlays on photos: sparse landmarks and boxes.

All functions take an (H, W, 3) uint8 BGR image and return a new image (the input is not
modified). Coordinates are image-frame pixels (0-based, y down).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..boxes import point_bounds

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

    Visible landmarks are filled dots; landmarks the face itself hides
    (:attr:`~ddfa.face.Face.landmarks_visible` False) are hollow rings.

    Args:
        image: (H, W, 3) uint8 BGR photo.
        faces: :class:`~ddfa.face.Face` records (anything with ``landmarks`` (68, 2+) and
            ``box`` (4,) in image pixels; faces without a morphable model are drawn all filled).
    """
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
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
        visible = _landmarks_visible(face, len(fixed))
        for (x, y), seen in zip(fixed, visible):
            if seen:
                cv2.circle(out, (int(x), int(y)), radius << shift, color, -1, cv2.LINE_AA, shift)
            else:  # a ring, a little larger than a dot so that it reads as hollow
                cv2.circle(out, (int(x), int(y)), (radius + thickness) << shift, color, thickness, cv2.LINE_AA, shift)
    return out


def _landmarks_visible(face, count: int) -> np.ndarray:
    """The face's landmark visibility, or all True for records without a morphable model."""
    if getattr(face, "model", None) is None or not hasattr(face, "landmarks_visible"):
        return np.ones(count, dtype=bool)
    return np.asarray(face.landmarks_visible, dtype=bool)


DENSE_COLOR = (255, 200, 60)  # BGR, light blue
POSE_COLOR = (40, 255, 0)  # BGR, green
POSE_FRONT_COLOR = (0, 200, 255)  # BGR, orange


def draw_dense(image: np.ndarray, faces: Sequence, *, color=DENSE_COLOR, spacing: float = 2.0) -> np.ndarray:
    """The ``2d_dense`` overlay: each face's dense vertices drawn as dots.

    Dots are one pixel (a plus of five pixels on faces whose vertices lie more than 3 px
    apart); on small faces every k-th vertex is drawn so that dots stay about ``spacing``
    pixels apart instead of merging into a solid patch.

    Args:
        image: (H, W, 3) uint8 BGR photo.
        faces: faces with ``vertices`` (N, 3) in image pixels.
    """
    out = image.copy()
    height, width = out.shape[:2]
    for face in faces:
        pts = np.asarray(face.vertices)[:, :2]
        lo, hi = point_bounds(pts)
        gap = float(np.sqrt(max((hi[0] - lo[0]) * (hi[1] - lo[1]), 1.0) / len(pts)))  # mean vertex spacing
        step = max(1, int(round((spacing / max(gap, 1e-6)) ** 2)))
        ij = np.rint(pts[::step]).astype(np.int64)
        offsets = [(0, 0)] if gap <= 3 else [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
        for dx, dy in offsets:
            x, y = ij[:, 0] + dx, ij[:, 1] + dy
            ok = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            out[y[ok], x[ok]] = color
    return out


def pose_box(face: Any) -> np.ndarray:
    """(8, 2) float64 image points (pixels) of the box that :func:`draw_pose` draws for ``face``.

    The box is built in the model frame from the face model's mean shape: its back
    rectangle spans the mean face's x/y extent at its farthest z, its front rectangle (60%
    of that size) sits in front of the nose tip by 0.3 face widths; corners 0-3 back, 4-7
    front. It is posed with the face's own pose (:func:`~ddfa.morphable.reconstruct.apply_pose`)
    and taken to the image through its roi, so it turns with the head.
    """
    from ..morphable.frames import model_to_image
    from ..morphable.params import pose_matrix
    from ..morphable.reconstruct import apply_pose

    mean = np.asarray(face.model.mean)
    lo, hi = point_bounds(mean)
    centre = (lo + hi) / 2
    half = (hi - lo) / 2
    depth = 0.3 * (hi[0] - lo[0])
    corners = []
    for z, shrink in ((lo[2], 1.0), (hi[2] + depth, 0.6)):
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            corners.append((centre[0] + sx * shrink * half[0], centre[1] + sy * shrink * half[1], z))
    pose = pose_matrix(np.asarray(face.params, dtype=np.float64))
    posed = apply_pose(pose[None], np.asarray(corners, dtype=np.float64)[None])[0]
    return model_to_image(posed, np.asarray(face.roi_box, dtype=np.float64))[:, :2]


def draw_pose(image: np.ndarray, faces: Sequence, *, color=POSE_COLOR, front_color=POSE_FRONT_COLOR,
              text: bool = True) -> np.ndarray:
    """The ``pose`` overlay: a 3D box per face that turns with the head (see :func:`pose_box`;
    its small front rectangle points where the face looks), and the yaw/pitch/roll in degrees
    above it (AFLW2000-3D convention, see :class:`ddfa.face.Pose`).

    Args:
        image: (H, W, 3) uint8 BGR photo.
        faces: :class:`~ddfa.face.Face` records (``params``, ``roi_box``, ``model``, ``pose``).
    """
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
    out = image.copy()
    scale = _line_scale(image, faces)
    thickness = max(1, int(round(1.5 * scale)))
    shift = 4
    for face in faces:
        pts = np.round(pose_box(face) * (1 << shift)).astype(np.int32)
        back, front = pts[:4], pts[4:]
        cv2.polylines(out, [back], True, color, thickness, cv2.LINE_AA, shift)
        for k in range(4):
            cv2.line(out, tuple(back[k]), tuple(front[k]), color, thickness, cv2.LINE_AA, shift)
        cv2.polylines(out, [front], True, front_color, thickness, cv2.LINE_AA, shift)
        if text and getattr(face, "pose", None) is not None:
            label = f"yaw {face.pose.yaw:.0f}  pitch {face.pose.pitch:.0f}  roll {face.pose.roll:.0f}"
            x0 = int(np.clip(pts[:, 0].min() >> shift, 0, out.shape[1] - 1))
            y0 = int(np.clip((pts[:, 1].min() >> shift) - 4 * scale, 12 * scale, out.shape[0] - 1))
            font = 0.45 * scale
            cv2.putText(out, label, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(out, label, (x0, y0), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
