"""The settings of video processing, as typed, frozen, keyword-only option records.

* :class:`TrackerOptions`: the tracking policy of :class:`~ddfa.video.VideoTracker` (see
  :mod:`ddfa.video.tracker`);
* :class:`SmoothingOptions`: the One-Euro smoothing (see :mod:`ddfa.video.smoothing`);
* :class:`VideoOptions`: everything :func:`~ddfa.video.process_video` does besides tracking and
  smoothing: overlays, track labels, codec, frame rate, frame limit, progress bar.

Every record checks its values when it is made and raises :class:`~ddfa.errors.InputError`
naming the field.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ..errors import InputError
from .io import CODECS, Codec

SmoothMode = Literal["none", "causal", "offline"]
SMOOTH_MODES: tuple[str, ...] = get_args(SmoothMode)


def _check_number(owner: str, name: str, value: Any, *, low: float, high: float = math.inf,
                  strict: bool = False, integer: bool = False) -> None:
    """Raise :class:`InputError` unless ``value`` is a finite (integer) number in ``[low, high]``
    (``(low, high]`` when ``strict``)."""
    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if ok:
        number = float(value)
        ok = math.isfinite(number) and (number > low if strict else number >= low) and number <= high
    if not ok:
        what = "an integer" if integer else "a number"
        bounds = f"{'>' if strict else '>='} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
        raise InputError(f"{owner}{name} must be {what} {bounds}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class TrackerOptions:
    """Tracking policy (see :mod:`ddfa.video.tracker`).

    Attributes:
        detect_every: run the detector on every N-th frame after the last run (1: every
            frame; 0: only on the first frame and when a track is uncertain).
        max_faces: follow at most this many faces (None: all).
        match_iou: minimum roi IoU to match a detection to a track.
        reanchor_iou: below this IoU a matched track is re-aligned from the detection box.
        min_consistency: a track whose crop roi and new landmark roi have a lower IoU is
            uncertain.
        max_scale_change: a track whose roi side changes by more than this factor between
            two frames is uncertain.
        min_visible: a track with less of its roi inside the frame is uncertain.
        end_visible: a track with less of its landmark box inside the frame ends.
        duplicate_distance: two tracks whose mean landmark distance is below this fraction of
            the face size follow the same face.
        max_misses: detection runs in a row that may miss a (certain) track before it ends.
        min_confidence: a refined face (the aligner's ``refine`` is not ``"none"``) whose
            ``confidence`` is below this is uncertain (ignored for unrefined faces).
    """

    detect_every: int = 10
    max_faces: int | None = None
    match_iou: float = 0.3
    reanchor_iou: float = 0.5
    min_consistency: float = 0.6
    max_scale_change: float = 1.3
    min_visible: float = 0.7
    end_visible: float = 0.25
    duplicate_distance: float = 0.1
    max_misses: int = 2
    min_confidence: float = 0.5

    def __post_init__(self) -> None:
        for name in ("detect_every", "max_misses") + (("max_faces",) if self.max_faces is not None else ()):
            _check_number("", name, getattr(self, name), low=0, integer=True)
        _check_number("", "max_scale_change", self.max_scale_change, low=1)
        _check_number("", "duplicate_distance", self.duplicate_distance, low=0)
        for name in ("match_iou", "reanchor_iou", "min_consistency", "min_visible", "end_visible", "min_confidence"):
            _check_number("", name, getattr(self, name), low=0, high=1)


@dataclass(frozen=True, kw_only=True)
class SmoothingOptions:
    """Temporal smoothing settings (see :mod:`ddfa.video.smoothing`).

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

    mode: SmoothMode = "causal"
    min_cutoff: float = 1.0
    beta: float = 10.0
    d_cutoff: float = 3.0
    strength: float = 1.0
    lookahead: int = 10

    def __post_init__(self) -> None:
        if self.mode not in SMOOTH_MODES:
            raise InputError(f"smoothing mode must be one of {SMOOTH_MODES}, got {self.mode!r}")
        for name in ("min_cutoff", "d_cutoff", "strength"):
            _check_number("smoothing ", name, getattr(self, name), low=0, strict=True)
        _check_number("smoothing ", "beta", self.beta, low=0)
        _check_number("smoothing ", "lookahead", self.lookahead, low=1, integer=True)


#: what ``smoothing=`` arguments accept: options, a mode, True (causal defaults) or False/None (none)
SmoothingLike = SmoothingOptions | SmoothMode | bool | None


def smoothing_options(smoothing: SmoothingLike) -> SmoothingOptions:
    """A :class:`SmoothingOptions` from options, a mode name, True (the defaults) or False/None
    (no smoothing)."""
    if isinstance(smoothing, SmoothingOptions):
        return smoothing
    if smoothing is None or smoothing is False:
        return SmoothingOptions(mode="none")
    if smoothing is True:
        return SmoothingOptions()
    if isinstance(smoothing, str):
        return SmoothingOptions(mode=smoothing)  # the mode is checked there
    raise InputError(f"smoothing must be SmoothingOptions, a mode {SMOOTH_MODES}, True/False or None, "
                     f"got {smoothing!r}")


def video_output_names(names: Sequence[str] | None = None) -> list[str]:
    """Validate image-output names for video (all usable ones when ``names`` is None).

    An overlay for video must return an image of the frame's size: the output registry says
    which do (:attr:`~ddfa.render.outputs.OutputSpec.frame_sized`); naming an unknown output or
    one that is not frame-sized (e.g. ``uv_tex``, a texture atlas) raises
    :class:`~ddfa.errors.InputError`.
    """
    from ..render.outputs import check_output_names, image_output_names

    usable = image_output_names(frame_sized=True)
    if names is None:
        return usable
    names = check_output_names(list(names), images_only=True)
    refused = [name for name in names if name not in usable]
    if refused:
        raise InputError(f"output(s) {', '.join(refused)} do not draw on the frame (not frame-sized); "
                         f"for video choose from {', '.join(usable)}")
    return names


@dataclass(frozen=True, kw_only=True)
class VideoOptions:
    """What :func:`~ddfa.video.process_video` does with a video.

    Attributes:
        outputs: image outputs drawn in this order on each frame (frame-sized names of
            :mod:`ddfa.render.outputs`, e.g. ``"2d_sparse"``, ``"3d"``, ``"pose"``; see
            :func:`video_output_names`); a list is accepted and stored as a tuple.
        smoothing: :class:`SmoothingOptions` (a mode name, True or None is accepted and
            converted, see :func:`smoothing_options`).
        tracker: :class:`TrackerOptions`.
        draw_ids: label each face with its track id.
        codec: output codec (see :class:`~ddfa.video.VideoWriter`).
        fps: frame rate (frames per second) of arrays, or override of a file's; not used for a
            :class:`~ddfa.video.VideoSource`.
        max_frames: stop after this many frames (None: all); not used for a VideoSource.
        progress: show a progress bar (frames per second) on stderr.
        sequential: decode, track, draw and write each frame in turn in the caller's thread
            (default: decoding reads ahead and drawing and writing follow behind, each in a
            thread of its own, so that the three overlap; the same results either way).
    """

    outputs: tuple[str, ...] = ("2d_sparse",)
    smoothing: SmoothingOptions = field(default_factory=SmoothingOptions)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    draw_ids: bool = True
    codec: Codec = "auto"
    fps: float | None = None
    max_frames: int | None = None
    progress: bool = False
    sequential: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.outputs, str):
            raise InputError(f"video outputs must be a sequence of names, got the string {self.outputs!r}")
        object.__setattr__(self, "outputs", tuple(video_output_names(self.outputs)))
        object.__setattr__(self, "smoothing", smoothing_options(self.smoothing))
        if not isinstance(self.tracker, TrackerOptions):
            raise InputError(f"video tracker options must be TrackerOptions, got {type(self.tracker).__name__}")
        if self.codec not in CODECS:
            raise InputError(f"codec must be one of {CODECS}, got {self.codec!r}")
        if self.fps is not None:
            _check_number("video ", "fps", self.fps, low=0, strict=True)
        if self.max_frames is not None:
            _check_number("video ", "max_frames", self.max_frames, low=0, integer=True)
