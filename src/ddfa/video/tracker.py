"""Tracking every face of a video: landmark-crop tracking, detector re-checks, stable ids.

**Per frame** (:meth:`VideoTracker.step`):

1. *Track.* Every live track's next roi is :func:`~ddfa.pipeline.crop.roi_from_landmarks` of
   its previous landmarks (3DDFA_V2's landmark crop policy); all rois go through the regressor
   in one batch (:meth:`FaceAligner.align_rois`).
2. *Check, without the detector.* Per track: ``consistency`` = IoU between the roi it was
   cropped with and the roi of the new landmarks (a face that is followed well sits where the
   crop expected it; fast motion or a lost face moves it), the roi ``scale`` change, and the
   fractions of the new roi and of the landmark box inside the frame. A track whose landmark
   box is less than ``end_visible`` inside the frame ends ("left the frame"). A track with
   ``consistency < min_consistency``, a scale change beyond ``max_scale_change``, or less than
   ``min_visible`` of its roi inside the frame (at the border the crop is padded with black and
   the regressor may keep fitting a face to what is left) is *uncertain*; so is, when the
   aligner refines (``FaceAligner(refine="flip"|"full")``), a face whose calibrated
   ``confidence`` is below ``min_confidence`` (:mod:`ddfa.pipeline.confidence`). Two tracks whose
   landmarks coincide (mean distance below ``duplicate_distance`` x face size) follow the same
   face: the less consistent one ends ("merged"), so an occluded face never hands its id to
   the face in front of it.
3. *Detect* on the first frame, every ``detect_every`` frames after the last detection, and
   on any frame with an uncertain track. Detections are matched to tracks by the IoU of their
   rois (by the detector's own box-to-roi rule, ``FaceAligner.rois_from_detections``) with the
   tracks' landmark rois, by the Hungarian method (``scipy.optimize.linear_sum_assignment``), accepting IoU >=
   ``match_iou``. A matched track is confirmed (its detection score is kept); if the match is
   loose (IoU < ``reanchor_iou``, e.g. after fast motion) the track is re-aligned from the
   detection box (two-step: box, then landmark crop). An unmatched *uncertain* track ends
   ("lost"); an unmatched certain one survives up to ``max_misses`` detection runs in a row
   (the regressor also fits a face to background, so only the detector can end a track that
   drifted onto nothing; a profile past the detector's range survives that long). Unmatched
   detections start new tracks (two-step alignment) unless they duplicate a track.

**Ids** are consecutive integers from 1, never reused. A face that leaves the frame (or stays
undetected for ``max_misses`` runs) and comes back gets a new id: appearance alone cannot
re-identify people reliably, and a wrong merge is worse than a new id.

Defaults (:class:`TrackerOptions`): detector every 10 frames, match IoU 0.3, re-anchor below
IoU 0.5, uncertain below consistency 0.6 / beyond a x1.3 scale change / below 70% of the roi
inside the frame, ended below 25% of the landmark box inside the frame or after 3 detection
runs in a row without a match (up to ~30 frames), duplicates within 0.1 face size. Chosen on
obama.mp4 (consistency of a followed face: 0.90-0.98) and the synthetic crossing test.

Cost: one batched regressor call per frame, plus a full-frame detection every
``detect_every`` frames or when a track is uncertain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from ..boxes import box_iou
from ..errors import InputError
from ..face import Face
from ..io.image import to_bgr_uint8
from ..pipeline.crop import roi_from_landmarks
from .io import SourceLike, VideoSource, iter_frames
from .options import SmoothingLike, TrackerOptions, smoothing_options
from .smoothing import FaceSmoother, carry_boxes

__all__ = ["FrameResult", "Track", "TrackEvent", "TrackedFace", "TrackerOptions", "VideoTracker", "visible_fraction"]


@dataclass(eq=False)
class TrackedFace(Face):
    """A :class:`~ddfa.face.Face` of a video frame, with its track.

    Attributes:
        track_id: the track's id (1, 2, ...), stable while the face is followed.
        confirmed: a detection was matched to this face on this frame.
        raw: the unsmoothed face when this one is smoothed (None otherwise).

    ``box`` is a detector box, as for photos: on a frame where a detection confirmed (or
    started) the track it is that detection's box ``(x1, y1, x2, y2)``; on the frames between
    detector runs it is that box carried with the face (scaled and shifted as the face's
    landmark box moved since, :func:`~ddfa.video.smoothing.carry_boxes`), so it follows the face
    and may step by the detector's own noise when the detector runs again. The landmarks'
    bounding box of every frame is :attr:`landmark_box`. ``score`` is the score of the track's
    last matched detection.
    """

    track_id: int = 0
    confirmed: bool = False
    raw: Face | None = field(default=None, repr=False)

    def to_dict(self, *, dense: bool = False) -> dict[str, Any]:
        """:meth:`ddfa.Face.to_dict` with ``track_id``, ``confirmed`` and ``landmark_box``."""
        out: dict[str, Any] = {"track_id": int(self.track_id), "confirmed": bool(self.confirmed)}
        out.update(super().to_dict(dense=dense))
        out["landmark_box"] = [float(v) for v in self.landmark_box]
        return out


@dataclass
class TrackEvent:
    """A track starting or ending on a frame (``reason`` says why it ended)."""

    track_id: int
    event: Literal["start", "end"]
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"track_id", "event"[, "reason"]}``."""
        out: dict[str, Any] = {"track_id": self.track_id, "event": self.event}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class FrameResult:
    """The faces of one frame.

    Attributes:
        index: 0-based frame number.
        time: seconds from the first frame.
        faces: :class:`TrackedFace` per live track, by track id.
        detected: the detector ran on this frame.
        events: tracks that started or ended on this frame.
        image: the (H, W, 3) uint8 BGR frame (kept so that delayed results can be rendered).
    """

    index: int
    time: float
    faces: list[TrackedFace]
    detected: bool = False
    events: list[TrackEvent] = field(default_factory=list)
    image: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (without the image)."""
        return {"frame": int(self.index), "time": round(float(self.time), 6), "detected": bool(self.detected),
                "faces": [face.to_dict() for face in self.faces],
                "events": [e.to_dict() for e in self.events]}


@dataclass
class Track:
    """A followed face: its id, last raw face and bookkeeping.

    ``box`` is the (4,) box of the detection that last confirmed (or started) the track and
    ``box_anchor`` the face's landmark box on that frame: the face's ``box`` on later frames is
    ``box`` carried from ``box_anchor`` to the face's landmark box then.
    """

    id: int
    first_frame: int
    last_frame: int
    face: Face
    score: float
    box: np.ndarray
    box_anchor: np.ndarray
    misses: int = 0
    frames: int = 1
    end_reason: str | None = None

    def confirm(self, face: Face, box: np.ndarray, score: float) -> None:
        """A detection (``box``, ``score``) matched this track, whose face is now ``face``."""
        self.face, self.score, self.misses = face, float(score), 0
        self.box = np.asarray(box, np.float32)
        self.box_anchor = face.landmark_box


# ---------------------------------------------------------------------- geometry helpers
def visible_fraction(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(K, 4) boxes in pixels -> (K,) float64 fraction of each box's area inside a width x height
    frame (pixel centres 0 .. width-1, 0 .. height-1)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    area = np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-9)
    w = np.clip(np.minimum(b[:, 2], width - 1) - np.maximum(b[:, 0], 0), 0, None)
    h = np.clip(np.minimum(b[:, 3], height - 1) - np.maximum(b[:, 1], 0), 0, None)
    return w * h / area


def _roi_side(rois: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(rois, np.float64)[:, 2] - np.asarray(rois, np.float64)[:, 0], 1e-6)


# ---------------------------------------------------------------------- the tracker
class VideoTracker:
    """Detect, align, track and smooth every face of a stream of frames.

    Args:
        aligner: a :class:`~ddfa.FaceAligner` with a detector.
        options: :class:`TrackerOptions` (default: its defaults).
        smoothing: :class:`~ddfa.video.SmoothingOptions`, or a mode ``"none"``,
            ``"causal"``, ``"offline"`` (default: causal One-Euro).

    Example:
        >>> tracker = VideoTracker(FaceAligner(assets=...), TrackerOptions(detect_every=10), smoothing="causal")
        >>> for result in tracker.track("video.mp4"):
        ...     for face in result.faces:
        ...         print(result.index, face.track_id, face.pose.yaw)
    """

    def __init__(self, aligner: Any, options: TrackerOptions | None = None, *,
                 smoothing: SmoothingLike = "causal"):
        if getattr(aligner, "detector", None) is None:
            raise InputError("VideoTracker needs a FaceAligner with a detector")
        if options is not None and not isinstance(options, TrackerOptions):
            raise InputError(f"VideoTracker options must be TrackerOptions, got {type(options).__name__}")
        self.aligner = aligner
        self.options = options or TrackerOptions()
        self.smoothing = smoothing_options(smoothing)
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (a new video)."""
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self.detector_runs = 0
        self.frames = 0
        self._next_id = 1
        self._since_detection: int | None = None

    @property
    def tracks(self) -> list[Track]:
        """Every track seen so far (ended and live), by id."""
        return sorted(self.finished + self.active, key=lambda t: t.id)

    # ------------------------------------------------------------------ streams
    def track(self, frames: VideoSource | SourceLike, *,
              fps: float | None = None) -> Iterator[FrameResult]:
        """Follow every face through ``frames`` (a :class:`~ddfa.video.VideoSource`, a path, a
        webcam index, or an iterable of BGR arrays / :class:`~ddfa.video.VideoFrame`).

        Yields one :class:`FrameResult` per frame, in order (``"offline"`` smoothing yields them
        ``lookahead`` frames late). ``fps`` times the frames of plain arrays (default 30).
        """
        self.reset()
        smoother = FaceSmoother(self.smoothing, self.aligner.morphable_model,
                                fps=float(fps or getattr(frames, "fps", None) or 30.0))
        for frame in iter_frames(frames, fps=fps):
            yield from smoother.push(self.step(frame.image, frame.index, frame.time))
        yield from smoother.flush()
        for track in self.active:
            track.end_reason = "end of video"
        self.finished.extend(self.active)
        self.active = []

    def step(self, image: np.ndarray, index: int | None = None, time: float | None = None) -> FrameResult:
        """Track one frame (raw, unsmoothed); frames must come in order."""
        image = to_bgr_uint8(image, "frame")
        index = self.frames if index is None else int(index)
        time = index / 30.0 if time is None else float(time)
        self.frames += 1
        opts = self.options
        height, width = image.shape[:2]
        events: list[TrackEvent] = []
        uncertain: set[int] = set()
        consistency: dict[int, float] = {}

        # 1-2. landmark-crop tracking of all live tracks in one batch, then self-checks
        if self.active:
            prev = np.stack([t.face.landmarks for t in self.active])
            crop_rois = roi_from_landmarks(prev)
            faces = self.aligner.align_rois(image, crop_rois, scores=np.array([t.score for t in self.active]))
            new_rois = roi_from_landmarks(np.stack([f.landmarks for f in faces]))
            iou = np.diag(box_iou(crop_rois, new_rois)) if len(faces) else np.zeros(0)
            scale = _roi_side(new_rois) / _roi_side(crop_rois)
            visible = visible_fraction(np.stack([f.landmark_box for f in faces]), width, height)
            roi_visible = visible_fraction(new_rois, width, height)
            keep = []
            for k, (track, face) in enumerate(zip(self.active, faces)):
                if visible[k] < opts.end_visible:
                    self._end(track, "left the frame", events)
                    continue
                track.face = face
                consistency[track.id] = float(iou[k])
                if (iou[k] < opts.min_consistency or not 1 / opts.max_scale_change <= scale[k] <= opts.max_scale_change
                        or roi_visible[k] < opts.min_visible
                        or (face.confidence is not None and face.confidence < opts.min_confidence)):
                    uncertain.add(track.id)
                keep.append(track)
            self.active = keep
            self._merge_duplicates(consistency, events)

        # 3. detection: periodic, or because a track is uncertain
        detect = (self._since_detection is None or bool(uncertain)
                  or (opts.detect_every > 0 and self._since_detection + 1 >= opts.detect_every))
        confirmed: set[int] = set()
        if detect:
            confirmed = self._detect_and_associate(image, index, uncertain, events)
            self._since_detection = 0
            self.detector_runs += 1
        else:  # (not None: the first frame always detects)
            self._since_detection = (self._since_detection or 0) + 1

        for track in self.active:
            track.last_frame = index
        faces_out = [self._tracked_face(t, t.id in confirmed) for t in sorted(self.active, key=lambda t: t.id)]
        return FrameResult(index, time, faces_out, detect, events, image)

    # ------------------------------------------------------------------ internals
    def _end(self, track: Track, reason: str, events: list[TrackEvent]) -> None:
        track.end_reason = reason
        self.finished.append(track)
        events.append(TrackEvent(track.id, "end", reason))

    def _merge_duplicates(self, consistency: dict[int, float], events: list[TrackEvent]) -> None:
        """End tracks that follow the same face as a more consistent (or older) track."""
        if len(self.active) < 2:
            return
        lmk = np.stack([t.face.landmarks[:, :2] for t in self.active]).astype(np.float64)
        size = _roi_side(roi_from_landmarks(lmk))
        dist = np.linalg.norm(lmk[:, None] - lmk[None], axis=3).mean(axis=2)
        dist /= np.minimum(size[:, None], size[None])
        order = sorted(range(len(self.active)),
                       key=lambda k: (-consistency.get(self.active[k].id, 1.0), self.active[k].id))
        kept: list[int] = []
        for k in order:
            twin = next((j for j in kept if dist[k, j] < self.options.duplicate_distance), None)
            if twin is None:
                kept.append(k)
            else:
                self._end(self.active[k], f"merged into track {self.active[twin].id}", events)
        self.active = [self.active[k] for k in sorted(kept)]

    def _detect_and_associate(self, image: np.ndarray, index: int, uncertain: set[int],
                              events: list[TrackEvent]) -> set[int]:
        """Run the detector, match, re-anchor, end lost tracks and start new ones."""
        from scipy.optimize import linear_sum_assignment

        opts = self.options
        detections = self.aligner.detect(image)
        det_rois = self.aligner.rois_from_detections(detections)
        matched_det: dict[int, int] = {}  # track position -> detection index
        reanchor: list[tuple[int, int]] = []
        if self.active and len(detections):
            track_rois = roi_from_landmarks(np.stack([t.face.landmarks for t in self.active]))
            iou = box_iou(track_rois, det_rois)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols):
                if iou[r, c] >= opts.match_iou:
                    matched_det[r] = c
                    if iou[r, c] < opts.reanchor_iou:
                        reanchor.append((r, c))
        # faces aligned from detection boxes: loose matches and candidate new tracks
        free = [d for d in range(len(detections)) if d not in matched_det.values()]
        room = len(free) if opts.max_faces is None else max(0, int(opts.max_faces) - len(self.active))
        fresh = free[:room]  # detections are sorted by score
        to_align = [c for _, c in reanchor] + fresh
        aligned: dict[int, Face] = {}
        if to_align:
            boxes = detections.select(to_align)  # rois by the detector's own box-to-roi rule
            for d, face in zip(to_align, self.aligner(image, boxes=boxes, crop_policy="landmarks")):
                aligned[d] = face
        confirmed: set[int] = set()
        survivors: list[Track] = []
        for pos, track in enumerate(self.active):
            match = matched_det.get(pos)
            if match is not None:
                track.confirm(aligned.get(match, track.face), detections.boxes[match], detections.scores[match])
                confirmed.add(track.id)
                survivors.append(track)
            elif track.id in uncertain:
                self._end(track, "lost (uncertain and not detected)", events)
            else:
                track.misses += 1
                if track.misses > opts.max_misses:
                    self._end(track, f"not detected in {track.misses} detector runs", events)
                else:
                    survivors.append(track)
        self.active = survivors
        # new tracks, unless they duplicate a live track or each other
        if fresh:
            lmk = [t.face.landmarks[:, :2].astype(np.float64) for t in self.active]
            for d in fresh:
                face = aligned[d]
                pts = face.landmarks[:, :2].astype(np.float64)
                size = float(_roi_side(roi_from_landmarks(pts[None]))[0])
                if any(np.linalg.norm(pts - other, axis=1).mean() < opts.duplicate_distance * size for other in lmk):
                    continue
                lmk.append(pts)
                track = Track(self._next_id, index, index, face, float(detections.scores[d]),
                              box=np.asarray(detections.boxes[d], np.float32), box_anchor=face.landmark_box)
                self._next_id += 1
                self.active.append(track)
                confirmed.add(track.id)
                events.append(TrackEvent(track.id, "start"))
        return confirmed

    def _tracked_face(self, track: Track, confirmed: bool) -> TrackedFace:
        face = track.face
        track.frames = track.last_frame - track.first_frame + 1
        copied = {f.name: getattr(face, f.name) for f in fields(Face)}
        copied.update(box=carry_boxes(track.box, track.box_anchor, face.landmark_box), score=track.score,
                      image_index=0)
        return TrackedFace(**copied, track_id=track.id, confirmed=confirmed)

