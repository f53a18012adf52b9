"""The per-face result record.

Coordinates are in the *image frame*: 0-based pixels, origin at the centre of the top-left
pixel, x right, y down, z towards the camera in pixels (see :mod:`ddfa.morphable.frames`).
Angles are degrees in the AFLW2000-3D convention (see :mod:`ddfa.morphable.pose`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .boxes import landmark_boxes
from .errors import InputError
from .morphable.frames import model_to_image
from .morphable.pose import decompose_pose

if TYPE_CHECKING:  # pragma: no cover
    from .assets.store import AssetsLike, AssetStore
    from .morphable.model import MorphableModel


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees (AFLW2000-3D convention).

    yaw > 0: face turned towards the image's left; pitch > 0: chin up; roll > 0: face rotated
    clockwise as seen in the image.
    """

    yaw: float
    pitch: float
    roll: float

    def as_array(self) -> np.ndarray:
        """(3,) float64 ``(yaw, pitch, roll)``."""
        return np.array([self.yaw, self.pitch, self.roll])

    def to_dict(self) -> dict[str, float]:
        return {"yaw": float(self.yaw), "pitch": float(self.pitch), "roll": float(self.roll)}


@dataclass(eq=False)
class Face:
    """One aligned face.

    Attributes:
        box: (4,) float32 detector box ``(x1, y1, x2, y2)`` in image pixels: the detection the
            face was aligned from, or the given box when boxes were passed in. Faces of a video
            (:class:`~ddfa.video.TrackedFace`) carry the box of the detection that last
            confirmed their track, moved with the face since (see there). The box of the
            landmarks themselves is :attr:`landmark_box`.
        score: detector confidence in [0, 1] (1.0 for given boxes).
        roi_box: (4,) float32 square region ``(sx, sy, ex, ey)`` the network saw.
        params: (62,) float32 de-whitened 3DMM parameters (pose 12, shape 40, expression 10).
        landmarks: (68, 3) float32 landmarks (x, y, z) in the image frame, iBUG 68-point order.
        pose: :class:`Pose` (yaw, pitch, roll in degrees).
        image_index: index of the image in a batch call (0 for single images).
        keypoints5: (5, 2) float32 ``(x, y)`` image pixels of the detector's 5 facial points
            (the person's right eye, left eye, nose tip, right and left mouth corners; see
            :data:`ddfa.detect.KEYPOINT_NAMES`), or None when the detector gives none
            (FaceBoxes, given boxes, tracked faces).
        model: the morphable model used to reconstruct the dense mesh.
        assets: the asset store the face was aligned with (set by :class:`~ddfa.FaceAligner`);
            dense outputs that need extra files (PNCC codes, UV layout, PAF anchors) read them
            from it unless given ``assets=`` (None: the default root).
        uncertainty: spread of the refinement passes' landmarks, a fraction of the face size
            (None without refinement; see :mod:`ddfa.pipeline.refine`).
        confidence: calibrated probability in [0, 1] that the landmarks are good (None without
            refinement; see :mod:`ddfa.pipeline.confidence`).
    """

    box: np.ndarray
    score: float
    roi_box: np.ndarray
    params: np.ndarray
    landmarks: np.ndarray
    pose: Pose
    image_index: int = 0
    keypoints5: np.ndarray | None = field(default=None, repr=False)
    model: MorphableModel | None = field(default=None, repr=False)
    assets: AssetStore | None = field(default=None, repr=False)
    uncertainty: float | None = None
    confidence: float | None = None

    # ------------------------------------------------------------------ geometry
    @property
    def landmark_box(self) -> np.ndarray:
        """(4,) float32 bounding box ``(x1, y1, x2, y2)`` of the 68 landmarks (x, y) in image
        pixels, for photos and video alike (beside :attr:`box`, which is the detector's box)."""
        return landmark_boxes(self.landmarks).astype(np.float32)

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3) rotation R of the model frame (y up) into the camera frame."""
        return decompose_pose(self.params)[1]

    @property
    def scale(self) -> float:
        """Scale of ``P = [s·R | t]`` in crop pixels per model unit."""
        return float(decompose_pose(self.params)[0])

    @cached_property
    def vertices(self) -> np.ndarray:
        """(N, 3) float32 dense mesh in the image frame (38,365 or 53,215 vertices), on request.

        Computed on first access and cached; :meth:`ddfa.FaceAligner.__call__` with
        ``dense=True`` fills it for all faces in one batched product.
        """
        if self.model is None:
            raise InputError("this Face has no morphable model attached; cannot reconstruct the dense mesh")
        return model_to_image(self.model.vertices(self.params), self.roi_box).astype(np.float32)

    @cached_property
    def landmarks_visible(self) -> np.ndarray:
        """(68,) bool: whether each landmark is visible in the photo (its part of the face faces
        the camera and no other part of the face hides it), from the dense mesh's normals and
        z-buffer (:mod:`ddfa.render.visibility`); computed on first access."""
        if self.model is None:
            raise InputError("this Face has no morphable model attached; cannot test landmark visibility")
        from .render.visibility import landmark_visibility

        return landmark_visibility(self.vertices, self.model)

    @property
    def triangles(self) -> np.ndarray:
        """(T, 3) int32 triangles of :attr:`vertices`; a front-facing triangle has a positive signed
        area ``(x1 - x0)(y2 - y0) - (x2 - x0)(y1 - y0)`` in the image frame (see
        :class:`~ddfa.morphable.model.MorphableModel`)."""
        if self.model is None:
            raise InputError("this Face has no morphable model attached; it has no mesh triangles")
        return self.model.triangles

    # ------------------------------------------------------------------ dense outputs
    # (computed on request only; the heavy code lives in ddfa.render and ddfa.io.mesh; like the
    # render functions, every method takes the photo (or its shape) first)
    def depth_map(self, image_or_shape: np.ndarray | Sequence[int], *, normalize: bool = True) -> np.ndarray:
        """(H, W) float32 depth of this face alone; ``image_or_shape`` is the photo or ``(H, W)``.

        See :func:`ddfa.render.render_depth`: normalised to [0, 1] (1 nearest, 0 off the face)
        or, with ``normalize=False``, raw image-frame z in pixels (NaN off the face).
        """
        from .render.dense import render_depth

        return render_depth(image_or_shape, [self], normalize=normalize)

    def pncc(self, image_or_shape: np.ndarray | Sequence[int], *, assets: AssetsLike = None) -> np.ndarray:
        """(H, W, 3) float32 PNCC map of this face alone (NCC x, y, z in [0, 1]; 0 off the face).

        ``assets``: asset store or folder holding the NCC codes (default: :attr:`assets`, else
        the default root).
        """
        from .render.dense import render_pncc

        return render_pncc(image_or_shape, [self], assets=assets)

    def render(self, image: np.ndarray, **shading: Any) -> np.ndarray:
        """The photo with this face's mesh shaded over it (:func:`ddfa.render.render_shaded`;
        ``shading``: its keyword options)."""
        from .render.dense import render_shaded

        return render_shaded(image, [self], **shading)

    def vertex_colors(self, image: np.ndarray) -> np.ndarray:
        """(N, 3) uint8 colour of the photo under each dense vertex (bilinear), BGR like the photo."""
        from .render.dense import vertex_colors

        return vertex_colors(image, self.vertices)

    def uv_texture(self, image: np.ndarray, size: int = 256, *, assets: AssetsLike = None,
                   visible_only: bool = True) -> np.ndarray:
        """(size, size, 3) uint8 BGR UV texture of this face (:func:`ddfa.render.uv_texture`)."""
        from .render.texture import uv_texture

        return uv_texture(image, self, size, assets=assets or self.assets, visible_only=visible_only)

    def paf(self, image: np.ndarray, kernel_size: int = 3, *, assets: AssetsLike = None) -> np.ndarray:
        """(64·k, 64·k, 3) uint8 pose-adaptive feature map of this face
        (:func:`ddfa.render.paf_features`)."""
        from .render.paf import paf_features

        return paf_features(image, self, kernel_size, assets=assets or self.assets)

    def save_ply(self, path: str | os.PathLike, image: np.ndarray | None = None, *, binary: bool = True) -> Path:
        """Write the dense mesh as PLY (right-handed ``(x, -y, z)`` image pixels, normals out of
        the face; per-vertex colours from ``image`` when given). See :mod:`ddfa.io.mesh`."""
        from .render.export import save_ply

        return save_ply(self, path, image, binary=binary)

    def save_obj(self, path: str | os.PathLike, image: np.ndarray | None = None, *, texture: bool = True,
                 texture_size: int = 512, assets: AssetsLike = None) -> list[Path]:
        """Write the dense mesh as OBJ (frame as :meth:`save_ply`), with vertex colours and a UV
        texture (``.mtl`` + ``_texture.png``) when ``image`` is given. Returns the files written."""
        from .render.export import save_obj

        return save_obj(self, path, image, texture=texture, texture_size=texture_size,
                        assets=assets or self.assets)

    # ------------------------------------------------------------------ export
    def to_dict(self, *, dense: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict (the schema of ``ddfa align``'s per-image files).

        ``keypoints_5`` ([[x, y] x 5], image pixels) is present only when the detector gave
        the 5 facial points.
        """
        out = {
            "box": [float(v) for v in self.box],
            "score": float(self.score),
            "roi_box": [float(v) for v in self.roi_box],
            "params": [float(v) for v in self.params],
            "landmarks_68": np.asarray(self.landmarks, dtype=np.float64).round(4).tolist(),
            "pose": self.pose.to_dict(),
        }
        if self.keypoints5 is not None:
            out["keypoints_5"] = np.asarray(self.keypoints5, dtype=np.float64).round(3).tolist()
        if self.model is not None:
            out["landmarks_visible"] = [bool(v) for v in self.landmarks_visible]
        if self.uncertainty is not None:
            out["uncertainty"] = float(self.uncertainty)
        if self.confidence is not None:
            out["confidence"] = float(self.confidence)
        if dense:
            out["vertices"] = np.asarray(self.vertices, dtype=np.float64).round(3).tolist()
        return out
