"""``process_video``: a video in, a rendered video and per-frame records out.

Records are JSON lines (one JSON document per line), written and flushed frame by frame:

* line 1, ``{"type": "header", "source", "width", "height", "fps", "model", "frame",
  "pose_convention", "tracker": {...}, "smoothing": {...}}``;
* one ``{"type": "frame", "frame": i, "time": s, "detected": bool, "faces": [...],
  "events": [...]}`` per frame, every frame (also those without faces), where each face is
  ``{"track_id", "confirmed", "box", "score", "roi_box", "params", "landmarks_68", "pose"}``
  (the :meth:`ddfa.Face.to_dict` schema of ``ddfa align`` plus the track fields) and events
  are ``{"track_id", "event": "start"|"end", "reason"}``;
* a last ``{"type": "summary", ...}`` line (:meth:`VideoSummary.to_dict`): frames processed,
  where the input stopped and why, the tracks.

A truncated or corrupt input, a failure while processing, or Ctrl-C stop the loop but keep
everything done so far: the video is finalised (playable) and the records end with the summary.
"""

from __future__ import annotations

import json
import os
import sys
import time as _time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from ..errors import DdfaError, InputError
from ..io.results import FRAME_NOTE, POSE_NOTE
from .io import VideoSource, VideoWriter
from .smoothing import SmoothingOptions, smoothing_options
from .tracker import FrameResult, TrackerOptions, VideoTracker

#: BGR colours of track labels, cycled by track id
TRACK_COLORS = ((0, 200, 255), (255, 128, 0), (60, 220, 60), (200, 80, 255), (0, 90, 255), (255, 255, 0),
                (128, 255, 200), (255, 0, 160))


def draw_track_ids(image: np.ndarray, faces: Sequence) -> np.ndarray:
    """Draw a small ``#id`` label above each face's box (in place; returns ``image``).

    Args:
        image: (H, W, 3) uint8 BGR frame.
        faces: faces with ``track_id`` and ``box`` (x1, y1, x2, y2) in pixels.
    """
    for face in faces:
        x1, y1, x2, _ = (float(v) for v in face.box)
        scale = float(np.clip((x2 - x1) / 220.0, 0.35, 1.5))
        thickness = max(1, int(round(2 * scale)))
        text = f"#{face.track_id}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        x = int(round(min(max(x1, 0), image.shape[1] - tw - 4)))
        y = int(round(min(max(y1 - 4, th + 4), image.shape[0] - 2)))
        color = TRACK_COLORS[(face.track_id - 1) % len(TRACK_COLORS)]
        cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y + base - 2), color, -1)
        cv2.putText(image, text, (x + 2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return image


def video_output_names(names: Sequence[str] | None = None) -> list[str]:
    """Validate image-output names for video (all usable ones when ``names`` is None).

    An overlay for video must return an image of the frame's size: each named output is tried
    on a small blank frame without faces, and one that returns another size (e.g. ``uv_tex``, a
    texture atlas) or fails is refused with :class:`~ddfa.errors.InputError`.
    """
    from ..render.outputs import check_output_names, image_output_names, render_output

    candidates = image_output_names() if names is None else check_output_names(list(names), images_only=True)
    blank = np.full((48, 64, 3), 127, np.uint8)
    usable, refused = [], []
    for name in candidates:
        try:
            ok = render_output(name, blank, []).shape == blank.shape
        except Exception:  # noqa: BLE001 - any failure means it cannot draw on frames
            ok = False
        (usable if ok else refused).append(name)
    if refused and names is not None:
        raise InputError(f"output(s) {', '.join(refused)} do not draw on the frame (not frame-sized); "
                         f"for video choose from {', '.join(video_output_names())}")
    return usable


def render_frame(result: FrameResult, outputs: Sequence[str], *, draw_ids: bool = True) -> np.ndarray:
    """The frame with the image outputs ``outputs`` drawn in order, then the track ids."""
    from ..render.outputs import render_output

    frame = result.image
    for name in outputs:
        frame = render_output(name, frame, result.faces)
    if draw_ids:
        frame = draw_track_ids(frame.copy() if frame is result.image else frame, result.faces)
    return frame


@dataclass
class VideoSummary:
    """What :func:`process_video` did.

    Attributes:
        source: the input's name.
        frames: frames processed (rendered and recorded).
        last_frame, last_time: index and time (s) of the last processed frame (None: none).
        fps: processing speed, frames per second (whole loop).
        detector_runs: frames on which the detector ran.
        tracks: per track ``{"track_id", "first_frame", "last_frame", "frames", "end"}``.
        problem: why the input stopped early or looks damaged (None: it was read completely).
        interrupted: stopped by Ctrl-C.
        output, records: the files written (None: not requested).
    """

    source: str
    frames: int = 0
    last_frame: int | None = None
    last_time: float | None = None
    fps: float = 0.0
    detector_runs: int = 0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None
    interrupted: bool = False
    output: Path | None = None
    records: Path | None = None

    @property
    def complete(self) -> bool:
        return self.problem is None and not self.interrupted

    def stopped_at(self) -> str:
        if self.last_frame is None:
            return "before the first frame"
        return f"at frame {self.last_frame} ({self.last_time:.2f} s)"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "summary", "source": self.source, "frames": self.frames, "last_frame": self.last_frame,
                "last_time": None if self.last_time is None else round(self.last_time, 6),
                "complete": self.complete, "problem": self.problem, "interrupted": self.interrupted,
                "fps": round(self.fps, 3), "detector_runs": self.detector_runs, "tracks": self.tracks}


class RecordsWriter:
    """JSON-lines records of a video run (see the module docstring); flushed every frame."""

    def __init__(self, path: str | os.PathLike, header: dict[str, Any]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")
        self._header = header
        self._header_written = False

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def frame(self, result: FrameResult) -> None:
        if not self._header_written:
            shape = result.image.shape if result.image is not None else (None, None)
            self._write({"type": "header", **self._header, "width": shape[1], "height": shape[0]})
            self._header_written = True
        self._write({"type": "frame", **result.to_dict()})
        self._file.flush()

    def close(self, summary: VideoSummary | None = None) -> None:
        if self._file.closed:
            return
        if not self._header_written:
            self._write({"type": "header", **self._header, "width": None, "height": None})
        if summary is not None:
            self._write(summary.to_dict())
        self._file.close()


def read_records(path: str | os.PathLike) -> tuple[dict, list[dict], dict | None]:
    """Read a records file: (header, frame records, summary or None if the run was killed)."""
    header, frames, summary = {}, [], None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            record = json.loads(line)
            kind = record.get("type")
            if kind == "header":
                header = record
            elif kind == "frame":
                frames.append(record)
            elif kind == "summary":
                summary = record
    return header, frames, summary


def process_video(
    source,
    output: str | os.PathLike | None = None,
    *,
    records: str | os.PathLike | None = "auto",
    aligner=None,
    assets=None,
    outputs: Sequence[str] = ("2d_sparse",),
    smoothing: SmoothingOptions | str | None = "causal",
    tracker_options: TrackerOptions | None = None,
    draw_ids: bool = True,
    codec: str = "auto",
    fps: float | None = None,
    max_frames: int | None = None,
    progress: bool = False,
    **tracker_overrides,
) -> VideoSummary:
    """Track every face of a video, write the rendered video and per-frame records.

    Args:
        source: video file, webcam index, :class:`~ddfa.video.VideoSource`, or an iterable of
            BGR arrays.
        output: rendered video file (None: none).
        records: JSON-lines file; ``"auto"``: ``output`` with the suffix ``.jsonl`` (none when
            there is no output); None: none.
        aligner: a :class:`~ddfa.FaceAligner` (default: ``FaceAligner(assets=assets)``).
        outputs: image outputs drawn in this order on each frame (names of
            :mod:`ddfa.render.outputs` that draw on the frame, e.g. ``2d_sparse``, ``3d``,
            ``pose``; see :func:`video_output_names`).
        smoothing: ``"none"``, ``"causal"``, ``"offline"`` or
            :class:`~ddfa.video.SmoothingOptions`.
        tracker_options, **tracker_overrides: :class:`~ddfa.video.TrackerOptions` and keyword
            overrides (``detect_every=...``, ...).
        draw_ids: label each face with its track id.
        codec: output codec (see :class:`~ddfa.video.VideoWriter`).
        fps: frame rate of arrays / override of the file's (not used for a VideoSource).
        max_frames: stop after this many frames (not used for a VideoSource).
        progress: show a progress bar (frames per second) on stderr.

    Returns:
        A :class:`VideoSummary`; ``summary.problem`` says why an input stopped early (no
        exception is raised for a truncated or corrupt video once its first frame was read).

    Raises:
        VideoReadError: the input cannot be opened or has no readable frame.
        InputError: bad arguments (unknown output name, ...).
    """
    outputs = video_output_names(outputs)
    if output is None and records is None:
        raise InputError("nothing to write: give an output video and/or a records file")
    if records == "auto":
        records = None if output is None else Path(output).with_suffix(".jsonl")
    if output is not None and records is not None and Path(output).resolve() == Path(records).resolve():
        raise InputError(f"{output}: the records file must differ from the output video")
    smoothing = smoothing_options(smoothing)
    src = source if isinstance(source, VideoSource) else VideoSource(source, fps=fps, max_frames=max_frames)
    if aligner is None:
        from ..pipeline import FaceAligner

        aligner = FaceAligner(assets=assets)
    tracker = VideoTracker(aligner, tracker_options, smoothing=smoothing, **tracker_overrides)
    summary = VideoSummary(src.name, output=None if output is None else Path(output),
                           records=None if records is None else Path(records))
    header = {"source": src.name, "fps": src.fps, "model": aligner.regressor.name, "frame": FRAME_NOTE,
              "pose_convention": POSE_NOTE, "tracker": asdict(tracker.options), "smoothing": asdict(smoothing)}
    writer = VideoWriter(output, src.fps, codec) if output is not None else None
    record_file = RecordsWriter(records, header) if records is not None else None
    from tqdm import tqdm

    bar = tqdm(total=src.frame_count, unit="frame", disable=not progress, file=sys.stderr, dynamic_ncols=True,
               desc=Path(src.name).name if src.kind == "file" else src.name)
    start = _time.perf_counter()
    try:
        for result in tracker.track(src):
            if writer is not None:
                writer.write(render_frame(result, outputs, draw_ids=draw_ids))
            if record_file is not None:
                record_file.frame(result)
            summary.frames += 1
            summary.last_frame, summary.last_time = result.index, result.time
            bar.update(1)
            bar.set_postfix(faces=len(result.faces), tracks=tracker._next_id - 1, refresh=False)
        summary.problem = src.problem
    except KeyboardInterrupt:
        summary.interrupted = True
    except (DdfaError, cv2.error, MemoryError, OSError, RuntimeError, ValueError) as exc:
        if isinstance(exc, InputError) and summary.frames == 0 and src.frames_read == 0:
            raise
        where = summary.stopped_at()
        summary.problem = f"processing failed after {summary.frames} frame(s) ({where}): {type(exc).__name__}: {exc}"
    finally:
        bar.close()
        src.close()
        summary.fps = summary.frames / max(_time.perf_counter() - start, 1e-9)
        summary.detector_runs = tracker.detector_runs
        summary.tracks = [{"track_id": t.id, "first_frame": t.first_frame, "last_frame": t.last_frame,
                           "frames": t.frames, "end": t.end_reason or "interrupted"} for t in tracker.tracks]
        if writer is not None:
            writer.close()
        if record_file is not None:
            record_file.close(summary)
    return summary
