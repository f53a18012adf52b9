"""Temporal smoothing of tracked faces: a One-Euro filter in the image frame, causal or offline.

**What is smoothed.** Not the 68 landmarks and the three angles separately, but each face's 62
parameters rewritten in the *image frame* (:func:`to_image_params`): ``q = [M | c, shape,
expression]`` with ``M = A·s·R`` and ``c = A·t + b``, where ``x_img = A·x_model + b`` is the
model-to-image map of the face's roi (:mod:`ddfa.morphable.frames`). In that form a face no
longer depends on the roi it was cropped with, so faces of consecutive frames are comparable
and ``model.reconstruct(q)`` gives image-frame points directly. Everything is derived from the
smoothed ``q``: the landmarks, the dense mesh (overlays, depth, PNCC) and the pose (from the
smoothed rotation, re-orthonormalised by :func:`~ddfa.morphable.pose.decompose_pose`) stay
consistent with each other, and no angle is ever averaged, so there is no wrap-around at ±180°
and no gimbal flip near ±90° yaw.

**One-Euro filter** (Casiez, Roussel and Vogel, CHI 2012): an exponential smoother
``x̂ₜ = x̂ₜ₋₁ + α(xₜ - x̂ₜ₋₁)``, ``α = 1 / (1 + 1/(2π·fc·Δt))``, whose cut-off ``fc`` rises with
the speed: ``fc = (min_cutoff + beta·speed) / strength``. One cut-off per face and frame (not
per coordinate, which would distort the face shape while it moves); ``speed`` is the mean
landmark speed, low-passed at ``d_cutoff``, in *face sizes per second* (the roi side), so the
parameters do not depend on the video resolution. A still face is smoothed at ``min_cutoff``
Hz; a moving one follows with little lag.

**Offline (look-ahead)**: the causal output is filtered once more backwards in time over the
next ``lookahead`` frames with the same per-frame ``α`` (forward-backward filtering): the
backward pass cancels the lag of the forward one (zero phase for a steady motion) and smooths
twice. Results come out ``lookahead`` frames late; works on any stream.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..morphable.frames import CROP_SIZE
from ..morphable.pose import pose_angles

SMOOTH_MODES = ("none", "causal", "offline")


@dataclass(frozen=True)
class SmoothingOptions:
    """Temporal smoothing settings (see the module docstring).

    Attributes:
        mode: ``"none"``, ``"causal"`` (One-Euro, no delay) or ``"offline"`` (One-Euro forward
            and backward over ``lookahead`` future frames; output delayed by that many frames).
        min_cutoff: cut-off frequency of a still face, Hz (lower: smoother, more lag).
        beta: cut-off increase per unit of speed, Hz per (face size / s) (higher: less lag
            during fast motion).
        d_cutoff: cut-off of the speed estimate, Hz.
        strength: divides the cut-off: 2 smooths twice as strongly, 0.5 half as much.
        lookahead: future frames used by ``"offline"``.
    """

    mode: str = "causal"
    min_cutoff: float = 1.0
    beta: float = 10.0
    d_cutoff: float = 3.0
    strength: float = 1.0
    lookahead: int = 10

    def __post_init__(self):
        if self.mode not in SMOOTH_MODES:
            raise InputError(f"smoothing mode must be one of {SMOOTH_MODES}, got {self.mode!r}")
        for name in ("min_cutoff", "d_cutoff", "strength"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise InputError(f"smoothing {name} must be > 0, got {value}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise InputError(f"smoothing beta must be >= 0, got {self.beta}")
        if int(self.lookahead) < 1:
            raise InputError(f"smoothing lookahead must be >= 1 frame, got {self.lookahead}")


def smoothing_options(smoothing) -> SmoothingOptions:
    """A :class:`SmoothingOptions` from options, a mode name, True/False or None (= none)."""
    if isinstance(smoothing, SmoothingOptions):
        return smoothing
    if smoothing is None or smoothing is False:
        return SmoothingOptions(mode="none")
    if smoothing is True:
        return SmoothingOptions()
    if isinstance(smoothing, str):
        return SmoothingOptions(mode=smoothing)
    if isinstance(smoothing, dict):
        return SmoothingOptions(**smoothing)
    raise InputError(f"smoothing must be SmoothingOptions, a mode {SMOOTH_MODES}, True/False or None, "
                     f"got {smoothing!r}")


# ---------------------------------------------------------------------- image-frame parameters
def _roi_affine(roi_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) rois -> diagonal ``a`` (K, 3) and offset ``b`` (K, 3) of model -> image frame."""
    roi = np.asarray(roi_boxes, dtype=np.float64).reshape(-1, 4)
    kx = (roi[:, 2] - roi[:, 0]) / CROP_SIZE
    ky = (roi[:, 3] - roi[:, 1]) / CROP_SIZE
    a = np.stack([kx, -ky, (kx + ky) / 2], axis=1)
    b = np.stack([roi[:, 0] - kx, roi[:, 1] + CROP_SIZE * ky, np.zeros_like(kx)], axis=1)
    return a, b


def to_image_params(params: np.ndarray, roi_boxes: np.ndarray) -> np.ndarray:
    """(K, 62) crop-frame parameters and (K, 4) rois -> (K, 62) float64 image-frame parameters.

    The pose block ``[M | c]`` maps model-frame points straight to image-frame pixels
    (``model.reconstruct(q)`` = image-frame landmarks or vertices); shape and expression are
    unchanged.
    """
    p = np.asarray(params, dtype=np.float64).reshape(-1, 62)
    a, b = _roi_affine(roi_boxes)
    pose = p[:, :12].reshape(-1, 3, 4)
    m = a[:, :, None] * pose[:, :, :3]
    c = a * pose[:, :, 3] + b
    return np.concatenate([np.concatenate([m, c[:, :, None]], axis=2).reshape(-1, 12), p[:, 12:]], axis=1)


def from_image_params(q: np.ndarray, roi_boxes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_image_params`: (K, 62) image-frame -> (K, 62) crop-frame params."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 62)
    a, b = _roi_affine(roi_boxes)
    pose = q[:, :12].reshape(-1, 3, 4)
    p3 = pose[:, :, :3] / a[:, :, None]
    t = (pose[:, :, 3] - b) / a
    return np.concatenate([np.concatenate([p3, t[:, :, None]], axis=2).reshape(-1, 12), q[:, 12:]], axis=1)


def one_euro_alpha(cutoff, dt):
    """Smoothing factor of an exponential filter with cut-off ``cutoff`` Hz at step ``dt`` s."""
    tau = 1.0 / (2.0 * np.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / np.asarray(dt, dtype=np.float64))


# ---------------------------------------------------------------------- the smoother
@dataclass
class _TrackState:
    q: np.ndarray  # (62,) filtered image-frame parameters
    landmarks: np.ndarray  # (68, 2) landmarks of q
    speed: np.ndarray  # (68, 2) filtered landmark velocity, px/s
    time: float


class FaceSmoother:
    """Per-track One-Euro smoothing of a stream of frame results.

    ``push(result)`` takes one raw :class:`~ddfa.video.tracker.FrameResult` (faces with
    ``track_id``) and returns the results ready for output (the same frame for ``"causal"``;
    the frame ``lookahead`` steps back for ``"offline"``); :meth:`flush` returns the rest at the
    end of the stream. Smoothed faces keep the unsmoothed one in ``raw``.

    Args:
        options: :class:`SmoothingOptions`.
        model: the :class:`~ddfa.morphable.MorphableModel` of the faces (default: each face's).
        fps: frame rate assumed when two frames have the same time stamp.
    """

    def __init__(self, options: SmoothingOptions | str | None = None, model=None, fps: float = 30.0):
        self.options = smoothing_options(options)
        self.model = model
        self.fps = float(fps)
        self._states: dict[int, _TrackState] = {}
        # offline: raw results waiting for their look-ahead, and per track the forward-filtered
        # q and alpha of the frames still needed, by frame index
        self._pending: deque = deque()
        self._history: dict[int, dict[int, tuple[np.ndarray, float]]] = {}

    def push(self, result) -> list:
        mode = self.options.mode
        if mode == "none":
            return [result]
        q, alpha = self._forward(result)
        if mode == "causal":
            return [self._with_faces(result, q)]
        for face, qk, ak in zip(result.faces, q, alpha):
            self._history.setdefault(face.track_id, {})[result.index] = (qk, float(ak))
        self._pending.append(result)
        out = []
        while len(self._pending) > self.options.lookahead:
            out.append(self._backward(self._pending.popleft()))
        return out

    def flush(self) -> list:
        out = [self._backward(r) for r in self._pending] if self.options.mode == "offline" else []
        self._pending.clear()
        self._history.clear()
        self._states.clear()
        return out

    def smooth(self, results) -> Iterator:
        """Smooth a whole stream of frame results (generator)."""
        for result in results:
            yield from self.push(result)
        yield from self.flush()

    # ------------------------------------------------------------------ internals
    def _model(self, faces):
        return self.model if self.model is not None else faces[0].model

    def _forward(self, result) -> tuple[np.ndarray, np.ndarray]:
        """Causal One-Euro step of every face of one frame: (K, 62) q̂ and (K,) alpha."""
        faces = result.faces
        live = {face.track_id for face in faces}
        for gone in set(self._states) - live:
            del self._states[gone]
        if not faces:
            return np.zeros((0, 62)), np.zeros(0)
        opts = self.options
        q_raw = to_image_params(np.stack([f.params for f in faces]), np.stack([f.roi_box for f in faces]))
        lmk_raw = np.stack([f.landmarks[:, :2] for f in faces]).astype(np.float64)
        sizes = np.array([max(float(f.roi_box[2] - f.roi_box[0]), 1.0) for f in faces])
        states = [self._states.get(f.track_id) for f in faces]
        idx = np.array([k for k, state in enumerate(states) if state is not None], dtype=np.int64)
        alpha = np.ones(len(faces))
        q_hat = q_raw.copy()
        speed_vec = np.zeros_like(lmk_raw)
        if idx.size:
            prev = [states[k] for k in idx]
            prev_q = np.stack([s.q for s in prev])
            prev_speed = np.stack([s.speed for s in prev])
            dt = np.array([result.time - s.time for s in prev])
            dt = np.where(np.isfinite(dt) & (dt > 0), dt, 1.0 / self.fps)
            velocity = (lmk_raw[idx] - np.stack([s.landmarks for s in prev])) / dt[:, None, None]
            speed_vec[idx] = prev_speed + one_euro_alpha(opts.d_cutoff, dt)[:, None, None] * (velocity - prev_speed)
            speed = np.linalg.norm(speed_vec[idx], axis=2).mean(axis=1) / sizes[idx]
            alpha[idx] = one_euro_alpha((opts.min_cutoff + opts.beta * speed) / opts.strength, dt)
            q_hat[idx] = prev_q + alpha[idx, None] * (q_raw[idx] - prev_q)
        landmarks = self._model(faces).landmarks(q_hat)[:, :, :2]
        for k, face in enumerate(faces):
            self._states[face.track_id] = _TrackState(q_hat[k], landmarks[k], speed_vec[k], float(result.time))
        return q_hat, alpha

    def _backward(self, result):
        """Forward-backward output of a buffered frame, using the look-ahead frames stored."""
        faces = result.faces
        if not faces:
            return result
        tracks = [self._history[f.track_id] for f in faces]
        horizon = max(max(h) for h in tracks) - result.index
        # a (K, horizon+1) sequence per face; past a track's end repeat its last value (any alpha)
        qs = np.empty((len(faces), horizon + 1, 62))
        alphas = np.ones((len(faces), horizon + 1))
        for k, hist in enumerate(tracks):
            last = result.index
            for j in range(horizon + 1):
                entry = hist.get(result.index + j)
                if entry is None:
                    entry = (hist[last][0], 1.0)
                else:
                    last = result.index + j
                qs[k, j], alphas[k, j] = entry
        y = qs[:, -1].copy()
        for j in range(horizon - 1, -1, -1):
            y += alphas[:, j + 1, None] * (qs[:, j] - y)
        for hist in tracks:
            hist.pop(result.index, None)
        for tid in [t for t, h in self._history.items() if not h]:
            del self._history[tid]
        return self._with_faces(result, y)

    def _with_faces(self, result, q: np.ndarray):
        if not result.faces:
            return result
        faces = smoothed_faces(result.faces, q, self._model(result.faces))
        return replace(result, faces=faces)


def smoothed_faces(faces: Sequence, q: np.ndarray, model) -> list:
    """Copies of ``faces`` rebuilt from (K, 62) image-frame parameters ``q``.

    Each copy keeps its roi box (``params`` are re-expressed relative to it), gets landmarks and
    pose from ``q`` and its landmarks' bounding box as ``box``; ``raw`` is the input face.
    """
    rois = np.stack([f.roi_box for f in faces])
    params = from_image_params(q, rois)
    landmarks = model.landmarks(q).astype(np.float32)
    angles = pose_angles(params)
    boxes = np.concatenate([landmarks[:, :, :2].min(axis=1), landmarks[:, :, :2].max(axis=1)], axis=1)
    from ..face import Pose

    out = []
    for k, face in enumerate(faces):
        out.append(replace(face, params=params[k].astype(np.float32), landmarks=landmarks[k],
                           pose=Pose(*(float(a) for a in angles[k])), box=boxes[k],
                           raw=getattr(face, "raw", None) or face))
    return out
