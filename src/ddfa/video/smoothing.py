"""Temporal smoothing of tracked faces: a One-Euro filter in the image frame, causal or offline.

**What is smoothed.** Not the 68 landmarks and the three angles separately, but each face's 62
parameters rewritten in the *image frame* (:func:`ddfa.morphable.frames.params_to_image`):
``q = [M | c, shape, expression]`` with ``M = A·s·R`` and ``c = A·t + b``, where
``x_img = A·x_model + b`` is the model-to-image map of the face's roi
(:func:`~ddfa.morphable.frames.roi_affine`). In that form a face no
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

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..boxes import landmark_boxes
from ..morphable.frames import params_from_image, params_to_image
from ..morphable.params import NUM_PARAMS
from ..morphable.pose import pose_angles
from .options import SMOOTH_MODES, SmoothingLike, SmoothingOptions, SmoothMode, smoothing_options

if TYPE_CHECKING:  # pragma: no cover
    from ..morphable.model import MorphableModel
    from .tracker import FrameResult

__all__ = ["SMOOTH_MODES", "FaceSmoother", "SmoothMode", "SmoothingOptions", "carry_boxes", "one_euro_alpha",
           "smoothed_faces", "smoothing_options"]


def carry_boxes(boxes: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Move boxes with the faces they belong to.

    Each box is carried by the axis-aligned map (per-axis scale about the centre, then shift)
    that takes the reference box ``before`` to ``after`` (e.g. a face's landmark box on the frame
    the box was found, and now).

    Args:
        boxes, before, after: (K, 4) or (4,) boxes ``(x1, y1, x2, y2)`` in image pixels.

    Returns:
        (K, 4) or (4,) float32 boxes.
    """
    boxes, before, after = (np.asarray(b, dtype=np.float64) for b in (boxes, before, after))
    scale = np.maximum(after[..., 2:] - after[..., :2], 1e-6) / np.maximum(before[..., 2:] - before[..., :2], 1e-6)
    centre_before = (before[..., :2] + before[..., 2:]) / 2
    centre_after = (after[..., :2] + after[..., 2:]) / 2
    corners = [centre_after + (boxes[..., k:k + 2] - centre_before) * scale for k in (0, 2)]
    return np.concatenate(corners, axis=-1).astype(np.float32)


def one_euro_alpha(cutoff: Any, dt: Any) -> np.ndarray:
    """Smoothing factor (float64, same shape as the broadcast inputs) of an exponential filter
    with cut-off ``cutoff`` Hz at step ``dt`` seconds."""
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

    def __init__(self, options: SmoothingLike = None, model: MorphableModel | None = None, fps: float = 30.0):
        self.options = smoothing_options(options)
        self.model = model
        self.fps = float(fps)
        self._states: dict[int, _TrackState] = {}
        # offline: raw results waiting for their look-ahead, and per track the forward-filtered
        # q and alpha of the frames still needed, by frame index
        self._pending: deque[FrameResult] = deque()
        self._history: dict[int, dict[int, tuple[np.ndarray, float]]] = {}

    def push(self, result: FrameResult) -> list[FrameResult]:
        """Take one raw frame result; return the results ready for output (see the class)."""
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

    def flush(self) -> list[FrameResult]:
        """The results still held back (``"offline"``), at the end of a stream; resets the state."""
        out = [self._backward(r) for r in self._pending] if self.options.mode == "offline" else []
        self._pending.clear()
        self._history.clear()
        self._states.clear()
        return out

    def smooth(self, results: Iterable[FrameResult]) -> Iterator[FrameResult]:
        """Smooth a whole stream of frame results (generator)."""
        for result in results:
            yield from self.push(result)
        yield from self.flush()

    # ------------------------------------------------------------------ internals
    def _model(self, faces: Sequence[Any]) -> MorphableModel:
        return self.model if self.model is not None else faces[0].model

    def _forward(self, result: FrameResult) -> tuple[np.ndarray, np.ndarray]:
        """Causal One-Euro step of every face of one frame: (K, 62) q̂ and (K,) alpha."""
        faces = result.faces
        live = {face.track_id for face in faces}
        for gone in set(self._states) - live:
            del self._states[gone]
        if not faces:
            return np.zeros((0, NUM_PARAMS)), np.zeros(0)
        opts = self.options
        q_raw = params_to_image(np.stack([f.params for f in faces]), np.stack([f.roi_box for f in faces]))
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

    def _backward(self, result: FrameResult) -> FrameResult:
        """Forward-backward output of a buffered frame, using the look-ahead frames stored."""
        faces = result.faces
        if not faces:
            return result
        tracks = [self._history[f.track_id] for f in faces]
        horizon = max(max(h) for h in tracks) - result.index
        # a (K, horizon+1) sequence per face; past a track's end repeat its last value (any alpha)
        qs = np.empty((len(faces), horizon + 1, NUM_PARAMS))
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

    def _with_faces(self, result: FrameResult, q: np.ndarray) -> FrameResult:
        if not result.faces:
            return result
        faces = smoothed_faces(result.faces, q, self._model(result.faces))
        return replace(result, faces=faces)


def smoothed_faces(faces: Sequence[Any], q: np.ndarray, model: MorphableModel) -> list[Any]:
    """Copies of ``faces`` rebuilt from (K, 62) image-frame parameters ``q``.

    Each copy keeps its roi box (``params`` are re-expressed relative to it, see
    :func:`~ddfa.morphable.frames.params_from_image`), gets landmarks and pose from ``q``, and its
    ``box`` carried from the input face's landmark box to the new one (:func:`carry_boxes`);
    ``raw`` is the input face (or the input's own ``raw``).
    """
    from ..face import Pose

    params = params_from_image(q, np.stack([f.roi_box for f in faces]))
    landmarks = model.landmarks(q).astype(np.float32)
    angles = pose_angles(params)
    boxes = carry_boxes(np.stack([f.box for f in faces]), np.stack([f.landmark_box for f in faces]),
                        landmark_boxes(landmarks))
    out = []
    for k, face in enumerate(faces):
        out.append(replace(face, params=params[k].astype(np.float32), landmarks=landmarks[k],
                           pose=Pose(*(float(a) for a in angles[k])), box=boxes[k],
                           raw=getattr(face, "raw", None) or face))
    return out
