"""Head pose from the 3x4 pose matrix ``P = [s·R | t]`` of the 62 parameters.

**ddfa's angles follow the AFLW2000-3D ground truth** (``pose_para``): with R the model-frame
rotation from :func:`decompose_pose` and ``A = Rᵀ``,

    A = Rz(roll) · Ry(yaw) · Rx(pitch),   i.e.   R = Rx(-pitch) · Ry(-yaw) · Rz(-roll)

(Rx, Ry, Rz the right-handed elementary rotations). Of the plausible conventions this is the one
that fits the AFLW2000-3D annotations, by a wide margin (``tests/core/test_pose.py`` checks it on
the data; ``ddfa benchmark pose`` re-checks it at run time). Signs, as measured on the
annotations:

* **yaw > 0**: the face turns towards the image's left (the subject's own right); ±90° is a
  profile.
* **pitch > 0**: the chin goes up (the subject looks up).
* **roll > 0**: the face rotates clockwise as seen in the image (y down).

All angles are in degrees. Near |yaw| = 90° pitch and roll become ambiguous (gimbal lock);
then roll is set to 0 and pitch absorbs the in-plane rotation.

3DDFA_V2 reports different angles from the same rotation (:func:`v2_angles`): it splits R in
another order with other signs, which do not match AFLW2000-3D's; compare rotations, not V2's
angles, with AFLW's ground truth.
"""

from __future__ import annotations

import numpy as np

from .params import pose_matrix

_GIMBAL_EPS = 1e-6


def decompose_pose(params: np.ndarray):
    """Split ``P`` into scale, rotation and translation as 3DDFA_V2 does.

    The first two rows of ``P[:, :3]`` are normalised (their mean norm is the scale ``s``) and
    the third row of R is their cross product, so R is a proper rotation when the network's
    rows are orthogonal (to within its accuracy otherwise).

    Args:
        params: (B, 62) or (62,) parameters (only the pose ``P`` is used).

    Returns:
        ``(s, R, t)``: (B,) scale, (B, 3, 3) rotation (model frame, y up), (B, 3) translation;
        unbatched shapes for unbatched input.
    """
    params = np.asarray(params)
    single = params.ndim == 1
    pose = pose_matrix(params.reshape(-1, params.shape[-1]))
    row1, row2 = pose[:, 0, :3], pose[:, 1, :3]
    norm1 = np.linalg.norm(row1, axis=1, keepdims=True)
    norm2 = np.linalg.norm(row2, axis=1, keepdims=True)
    scale = ((norm1 + norm2) / 2)[:, 0]
    r1, r2 = row1 / norm1, row2 / norm2
    rotation = np.stack([r1, r2, np.cross(r1, r2)], axis=1)
    translation = pose[:, :, 3]
    if single:
        return scale[0], rotation[0], translation[0]
    return scale, rotation, translation


def rotation_to_angles(rotation: np.ndarray) -> np.ndarray:
    """(..., 3, 3) model-frame rotations R -> (..., 3) ``(yaw, pitch, roll)`` degrees, AFLW2000-3D
    convention (see the module docstring)."""
    a = np.swapaxes(np.asarray(rotation, dtype=np.float64), -1, -2)  # A = Rᵀ = Rz·Ry·Rx
    sin_yaw = np.clip(-a[..., 2, 0], -1.0, 1.0)
    yaw = np.arcsin(sin_yaw)
    cos_yaw = np.hypot(a[..., 2, 1], a[..., 2, 2])
    regular = cos_yaw > _GIMBAL_EPS
    # at |yaw| = 90 degrees only pitch - sign(yaw)·roll is defined: roll is set to 0
    pitch = np.where(regular, np.arctan2(a[..., 2, 1], a[..., 2, 2]),
                     np.arctan2(np.sign(sin_yaw) * a[..., 0, 1], a[..., 1, 1]))
    roll = np.where(regular, np.arctan2(a[..., 1, 0], a[..., 0, 0]), 0.0)
    return np.degrees(np.stack([yaw, pitch, roll], axis=-1))


def angles_to_rotation(yaw, pitch, roll) -> np.ndarray:
    """Inverse of :func:`rotation_to_angles`: degrees -> (..., 3, 3) model-frame rotation R."""
    yaw, pitch, roll = (np.radians(np.asarray(v, dtype=np.float64)) for v in (yaw, pitch, roll))
    return np.swapaxes(_rz(roll) @ _ry(yaw) @ _rx(pitch), -1, -2)


def pose_angles(params: np.ndarray) -> np.ndarray:
    """(B, 62) or (62,) parameters -> (B, 3) or (3,) ``(yaw, pitch, roll)`` in degrees (AFLW)."""
    _, rotation, _ = decompose_pose(params)
    return rotation_to_angles(rotation)


def v2_angles(rotation: np.ndarray) -> np.ndarray:
    """3DDFA_V2's ``matrix2angle``: (..., 3, 3) -> (..., 3) ``(yaw, pitch, roll)`` degrees.

    V2 signs: yaw > 0 face turned to the image left, pitch < 0 chin up, roll > 0
    counter-clockwise in the image. Provided for comparison with V2 outputs only.
    """
    r = np.asarray(rotation, dtype=np.float64)
    r20 = r[..., 2, 0]
    yaw = np.arcsin(np.clip(r20, -1.0, 1.0))
    cos_yaw = np.cos(yaw)
    with np.errstate(divide="ignore", invalid="ignore"):
        pitch = np.arctan2(r[..., 2, 1] / cos_yaw, r[..., 2, 2] / cos_yaw)
        roll = np.arctan2(r[..., 1, 0] / cos_yaw, r[..., 0, 0] / cos_yaw)
    upper, lower = r20 > 0.998, r20 < -0.998
    yaw = np.where(upper, np.pi / 2, np.where(lower, -np.pi / 2, yaw))
    pitch = np.where(upper, np.arctan2(-r[..., 0, 1], -r[..., 0, 2]),
                     np.where(lower, np.arctan2(r[..., 0, 1], r[..., 0, 2]), pitch))
    roll = np.where(upper | lower, 0.0, roll)
    return np.degrees(np.stack([yaw, pitch, roll], axis=-1))


def _rx(a):
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([i, o, o], -1), np.stack([o, c, -s], -1), np.stack([o, s, c], -1)], -2)


def _ry(a):
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, o, s], -1), np.stack([o, i, o], -1), np.stack([-s, o, c], -1)], -2)


def _rz(a):
    c, s, o, i = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, o], -1), np.stack([s, c, o], -1), np.stack([o, o, i], -1)], -2)
