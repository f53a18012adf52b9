"""Test-time refinement: several views of each face through one network batch, combined.

Each face's crop (its roi box) is seen through a set of :class:`CropTransform` passes: the roi
scaled about its centre and moved by a fraction of its side, and optionally mirrored. Every
pass of every face goes through the regressor in **one batch**; each pass's 68 landmarks are
then brought back to the photo (a mirrored pass is flipped back, ``x -> 119 - x`` in its crop,
and renumbered with the iBUG left/right permutation,
:data:`~ddfa.morphable.mirror.IBUG68_MIRROR`) and the passes are combined. The mirror is exact
in the crop's pixel grid (column ``j`` <-> ``119 - j``), so the flip-refined predictor is
exactly mirror-symmetric there; in the photo, ddfa's crop -> image map (3DDFA_V2's ``x·k + sx``,
``k`` = roi side / 120) puts the pipeline's mirror axis of a roi at its centre minus ``(k - 1) / 2``
pixels (``tests/core/test_refine.py`` checks this round trip).

**The combination rule** (one rule for everything a face carries): the refined face's
parameters are the *mean of the passes' parameters in the roi box's crop frame* —
each pass's pose matrix re-expressed exactly in the frame of the face's roi (through the image
frame: :func:`~ddfa.morphable.frames.params_to_image` with the pass's roi, then
:func:`~ddfa.morphable.frames.params_from_image` with the face's), a mirrored pass mirrored back first
(:func:`~ddfa.morphable.mirror.mirror_params`: exact for the pose, least squares over the dense
mesh for shape and expression); landmarks, dense mesh and pose all follow from those
parameters, so they stay one consistent face. (Averaging the 62 numbers averages the
landmarks up to second-order terms; ``experiments/refine_selection.py`` measured both, and a
landmark-wise median, on synthetic faces: the parameter mean was best, by about 0.01 NME %;
see the README.)

**Uncertainty** of a face: the spread of its passes' 68 landmarks (x, y in the photo) about the
refined landmarks — per landmark the root mean square distance over the passes, averaged over
the 68 landmarks — divided by ``sqrt(w·h)`` of the refined landmarks' bounding box (the
normaliser of the NME), so it reads like an NME fraction.

The sets of passes (:data:`REFINE_TRANSFORMS`) were chosen on synthetic faces from ``ddfa
synth`` only (``experiments/refine_selection.py``), never on a benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ..boxes import landmark_boxes
from ..errors import InputError
from ..morphable.frames import (
    CROP_SIZE,
    crop_to_image,
    model_to_crop,
    model_to_image,
    params_from_image,
    params_to_image,
)
from ..morphable.mirror import IBUG68_MIRROR, mirror_params, mirror_points
from .crop import crop_face

RefineMode = Literal["none", "flip", "full"]
REFINE_MODES: tuple[str, ...] = get_args(RefineMode)


@dataclass(frozen=True)
class CropTransform:
    """One refinement pass: the roi box scaled by ``scale`` about its centre, moved by
    ``(dx, dy)`` times its side (x right, y down), then mirrored left/right if ``flip``."""

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    flip: bool = False

    @property
    def is_identity_roi(self) -> bool:
        return self.scale == 1.0 and self.dx == 0.0 and self.dy == 0.0


IDENTITY = CropTransform()
#: jitters of the ``"full"`` set: the roi 10% smaller and larger, and moved by 5% of its side left,
#: right, up and down (chosen on synthetic faces, ``experiments/refine_selection.py``)
_JITTERS = (CropTransform(scale=0.9), CropTransform(scale=1.1),
            CropTransform(dx=-0.05), CropTransform(dx=0.05), CropTransform(dy=-0.05), CropTransform(dy=0.05))

#: the passes of each refinement mode (the first is always the plain pass); in ``"full"`` every
#: jittered crop is also mirrored, so that half the passes of every roi are mirror images
REFINE_TRANSFORMS: dict[str, tuple[CropTransform, ...]] = {
    "none": (IDENTITY,),
    "flip": (IDENTITY, CropTransform(flip=True)),
    "full": (IDENTITY, CropTransform(flip=True), *_JITTERS,
             *(CropTransform(t.scale, t.dx, t.dy, flip=True) for t in _JITTERS)),
}


def refine_transforms(mode: str) -> tuple[CropTransform, ...]:
    """The passes of a refinement mode (``"none"``, ``"flip"``, ``"full"``)."""
    try:
        return REFINE_TRANSFORMS[mode]
    except KeyError:
        raise InputError(f"refine must be one of {REFINE_MODES}, got {mode!r}") from None


def transform_rois(rois: np.ndarray, transforms) -> np.ndarray:
    """(K, 4) roi boxes -> (K, T, 4) float64 roi box of each pass (a flip leaves the roi as is)."""
    r = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    side = r[:, 2] - r[:, 0]
    cx, cy = (r[:, 0] + r[:, 2]) / 2, (r[:, 1] + r[:, 3]) / 2
    out = np.empty((len(r), len(transforms), 4))
    for t, tr in enumerate(transforms):
        if tr.is_identity_roi:
            out[:, t] = r
            continue
        half = side * tr.scale / 2
        x, y = cx + tr.dx * side, cy + tr.dy * side
        out[:, t] = np.stack([x - half, y - half, x + half, y + half], axis=1)
    return out


def crop_exact(image: np.ndarray, roi_box, size: int = CROP_SIZE) -> np.ndarray:
    """Like :func:`~ddfa.pipeline.crop.crop_face` (bilinear, zero outside the photo, cv2.resize's
    pixel-centre sampling) but for a sub-pixel roi box, without rounding its corners."""
    import cv2  # on first use, not at start-up (docs/architecture.md, "Start-up without torch")
    sx, sy, ex, ey = (float(v) for v in roi_box)
    kx, ky = (ex - sx) / size, (ey - sy) / size
    matrix = np.array([[kx, 0.0, sx + 0.5 * kx - 0.5], [0.0, ky, sy + 0.5 * ky - 0.5]])
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def pass_crops(image: np.ndarray, rois: np.ndarray, transforms, size: int = CROP_SIZE) -> np.ndarray:
    """(K, 4) roi boxes of one image -> (K, T, size, size, 3) uint8 crops of every pass.

    The unjittered pass is :func:`~ddfa.pipeline.crop.crop_face`'s crop (the plain pipeline's,
    byte for byte); jittered passes use :func:`crop_exact`; a mirrored pass is the mirror image
    of the same roi's crop.
    """
    r = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    pass_rois = transform_rois(r, transforms)
    out = np.empty((len(r), len(transforms), size, size, 3), np.uint8)
    for k in range(len(r)):
        cache: dict[tuple, np.ndarray] = {}
        for t, tr in enumerate(transforms):
            key = (tr.scale, tr.dx, tr.dy)
            if key not in cache:
                cache[key] = crop_face(image, r[k], size) if tr.is_identity_roi else crop_exact(
                    image, pass_rois[k, t], size)
            out[k, t] = cache[key][:, ::-1] if tr.flip else cache[key]
    return out


@dataclass
class Refined:
    """The combination of the passes of K faces.

    Attributes:
        params: (K, 62) float32 refined parameters in the crop frame of each face's roi box.
        landmarks: (K, 68, 3) float32 refined landmarks, image frame.
        pass_landmarks: (K, T, 68, 3) float32 each pass's landmarks, image frame, in the
            unmirrored numbering.
        uncertainty: (K,) float64 spread of the passes (see the module docstring); 0 for a single
            pass.
    """

    params: np.ndarray
    landmarks: np.ndarray
    pass_landmarks: np.ndarray
    uncertainty: np.ndarray


def pass_params_in_roi(params: np.ndarray, rois: np.ndarray, transforms, model) -> np.ndarray:
    """(K, T, 62) parameters of each pass (in its own crop) -> (K, T, 62) float64 parameters of
    the same face in the crop frame of each face's roi (mirrored passes mirrored back)."""
    p = np.asarray(params, dtype=np.float64).copy()
    flips = np.array([tr.flip for tr in transforms])
    if flips.any():
        p[:, flips] = mirror_params(p[:, flips], model)
    pass_rois = transform_rois(rois, transforms)
    return params_from_image(params_to_image(p, pass_rois), np.asarray(rois, dtype=np.float64)[:, None, :])


def pass_landmarks_in_image(params: np.ndarray, rois: np.ndarray, transforms, model) -> np.ndarray:
    """(K, T, 62) parameters of each pass (in its own crop) -> (K, T, 68, 3) float64 landmarks
    in the image frame, mirrored passes flipped back and renumbered (exact, no projection)."""
    k, t = params.shape[:2]
    pass_rois = transform_rois(rois, transforms)
    crop = model_to_crop(model.landmarks(np.asarray(params, dtype=np.float64).reshape(k * t, -1))).reshape(k, t, -1, 3)
    for j, tr in enumerate(transforms):
        if tr.flip:
            crop[:, j] = mirror_points(crop[:, j], permutation=IBUG68_MIRROR)
    return crop_to_image(crop.reshape(k * t, -1, 3), pass_rois.reshape(k * t, 4)).reshape(k, t, -1, 3)


def spread(pass_landmarks: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """(K, T, P, 2+) pass landmarks about (K, P, 2+) refined ones -> (K,) uncertainty (see the
    module docstring)."""
    diff = np.asarray(pass_landmarks, dtype=np.float64)[..., :2] - np.asarray(centre, dtype=np.float64)[:, None, :, :2]
    rms = np.sqrt((diff ** 2).sum(-1).mean(axis=1))  # (K, P)
    box = landmark_boxes(np.asarray(centre, dtype=np.float64))
    norm = np.sqrt(np.clip(box[:, 2] - box[:, 0], 1e-9, None) * np.clip(box[:, 3] - box[:, 1], 1e-9, None))
    return rms.mean(axis=1) / norm


def combine_passes(params: np.ndarray, rois: np.ndarray, transforms, model) -> Refined:
    """Combine the passes of K faces (the rule of the module docstring).

    Args:
        params: (K, T, 62) de-whitened parameters of each pass, each in its own crop's frame.
        rois: (K, 4) roi box of each face (the unjittered pass's).
        transforms: the T :class:`CropTransform` of the passes.
        model: the morphable model.
    """
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    in_roi = pass_params_in_roi(params, rois, transforms, model)
    refined = in_roi.mean(axis=1)
    landmarks = model_to_image(model.landmarks(refined), rois)
    per_pass = pass_landmarks_in_image(params, rois, transforms, model)
    uncertainty = spread(per_pass, landmarks) if len(transforms) > 1 else np.zeros(len(rois))
    return Refined(params=refined.astype(np.float32), landmarks=landmarks.astype(np.float32),
                   pass_landmarks=per_pass.astype(np.float32), uncertainty=uncertainty)


def regress_refined(regressor, model, images, image_index: np.ndarray, rois: np.ndarray, transforms,
                    batch_size: int = 256) -> Refined:
    """Crop every pass of every face, regress them in one batch and combine them.

    Args:
        regressor: a :class:`~ddfa.nets.Regressor` (crops -> de-whitened parameters).
        model: the morphable model.
        images: the (H, W, 3) uint8 BGR images.
        image_index: (K,) image of each face, sorted (faces of image 0 first).
        rois: (K, 4) roi box of each face.
        transforms: the T passes (:data:`REFINE_TRANSFORMS`).
    """
    rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
    index = np.asarray(image_index)
    crops = np.concatenate([pass_crops(images[i], rois[index == i], transforms) for i in np.unique(index)])
    raw = regressor(crops.reshape(-1, *crops.shape[2:]), batch_size=batch_size)
    return combine_passes(np.asarray(raw).reshape(len(rois), len(transforms), -1), rois, transforms, model)
