"""``process_video``: a video in, a rendered video and per-frame records out.

Records are JSON lines (one JSON document per line), written and flushed frame by frame.
Every record starts with ``"schema_version"`` (:data:`ddfa.io.results.SCHEMA_VERSION`, as in
every JSON document ddfa writes) and ``"type"``:

* line 1, ``{"schema_version", "type": "header", "source", "width", "height", "fps", "model",
  "frame", "pose_convention", "tracker": {...}, "smoothing": {...}}``;
* one ``{"schema_version", "type": "frame", "frame": i, "time": s, "detected": bool,
  "faces": [...], "events": [...]}`` per frame, every frame (also those without faces), where
  each face is ``{"track_id", "confirmed", "box", "score", "roi_box", "params",
  "landmarks_68", "pose", "landmark_box"}`` (the :meth:`ddfa.Face.to_dict` schema of
  ``ddfa align`` plus the track fields; ``box`` is the detector box carried with the face,
  ``landmark_box`` the landmarks' bounding box, see :class:`~ddfa.video.TrackedFace`) and
  events are ``{"track_id", "event": "start"|"end", "reason"}``;
* a last ``{"schema_version", "type": "summary", ...}`` line (:meth:`VideoSummary.to_dict`):
  frames processed, where the input stopped and why, the tracks.

A truncated or corrupt input, a failure while processing, or Ctrl-C stop the loop but keep
everything done so far: the video is finalised (playable) and the records end with the summary.

Decoding, tracking, drawing and writing (encoding and the records) overlap, each in its own
thread, tracking in the caller's; every frame goes through them in order, and a stage that
fails (or Ctrl-C) stops the run once the frames before it are drawn and written
(:attr:`VideoOptions.sequential`: one stage after the other, the same results).
"""

from __future__ import annotations

import json
import os
import sys
import time as _time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from ..errors import DdfaError, InputError
from ..io.results import FRAME_NOTE, POSE_NOTE, SCHEMA_VERSION, dumps
from ..pipeline.throughput import Sink, prefetch
from .io import SourceLike, VideoSource, VideoWriter
from .options import VideoOptions, video_output_names
from .tracker import FrameResult, VideoTracker

__all__ = ["RecordsWriter", "VideoOptions", "VideoSummary", "draw_track_ids", "process_video", "read_records",
           "render_frame", "video_output_names"]

#: BGR colours of track labels, cycled by track id
TRACK_COLORS = ((0, 200, 255), (255, 128, 0), (60, 220, 60), (200, 80, 255), (0, 90, 255), (255, 255, 0),
                (128, 255, 200), (255, 0, 160))


def draw_track_ids(image: np.ndarray, faces: Sequence[Any]) -> np.ndarray:
    """Draw a small ``#id`` label under each face's box (in place; returns ``image``).

    Under the box, at its left end: the space above a face is the ``pose`` overlay's (its
    yaw/pitch/roll text, :func:`ddfa.render.draw.draw_pose`). Where the frame ends below the
    box, the label moves up inside the box's bottom edge.

    Args:
        image: (H, W, 3) uint8 BGR frame.
        faces: faces with ``track_id`` and ``box`` (x1, y1, x2, y2) in pixels.
    """
    for face in faces:
        x1, _, x2, y2 = (float(v) for v in face.box)
        scale = float(np.clip((x2 - x1) / 220.0, 0.35, 1.5))
        thickness = max(1, int(round(2 * scale)))
        text = f"#{face.track_id}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        height = th + base + 4  # the label's filled rectangle
        x = int(round(min(max(x1, 0), image.shape[1] - tw - 4)))
        top = int(round(min(max(y2 + 4, 0), image.shape[0] - height)))
        color = TRACK_COLORS[(face.track_id - 1) % len(TRACK_COLORS)]
        cv2.rectangle(image, (x, top), (x + tw + 4, top + height - 1), color, -1)
        cv2.putText(image, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
    return image


def render_frame(result: FrameResult, outputs: Sequence[str], *, draw_ids: bool = True) -> np.ndarray:
    """The frame (``result.image``) with the image outputs ``outputs`` drawn in order, then the
    track ids: a new (H, W, 3) uint8 BGR image."""
    from ..render.outputs import render_output

    if result.image is None:
        raise InputError(f"frame {result.index}: the result holds no image to draw on")
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
        """The summary record (see the module docstring)."""
        return {"schema_version": SCHEMA_VERSION, "type": "summary", "source": self.source, "frames": self.frames,
                "last_frame": self.last_frame,
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

    def _write(self, kind: Literal["header", "frame", "summary"], record: dict[str, Any]) -> None:
        record = {"schema_version": SCHEMA_VERSION, "type": kind, **record}
        self._file.write(dumps(record, separators=(",", ":")) + "\n")  # strict JSON: NaN as null

    def frame(self, result: FrameResult) -> None:
        """Write one frame's record (after the header, on the first call); flushed."""
        if not self._header_written:
            shape = result.image.shape if result.image is not None else (None, None)
            self._write("header", {**self._header, "width": shape[1], "height": shape[0]})
            self._header_written = True
        self._write("frame", result.to_dict())
        self._file.flush()

    def close(self, summary: VideoSummary | None = None) -> None:
        """Write the header (if no frame came) and the summary, and close the file."""
        if self._file.closed:
            return
        if not self._header_written:
            self._write("header", {**self._header, "width": None, "height": None})
        if summary is not None:
            self._write("summary", summary.to_dict())
        self._file.close()


def read_records(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """Read a records file: (header, frame records, summary or None if the run was killed)."""
    header: dict[str, Any] = {}
    frames: list[dict[str, Any]] = []
    summary: dict[str, Any] | None = None
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
    source: VideoSource | SourceLike,
    output: str | os.PathLike | None = None,
    *,
    records: str | os.PathLike | Literal["auto"] | None = "auto",
    aligner: Any = None,
    options: VideoOptions | None = None,
) -> VideoSummary:
    """Track every face of a video, write the rendered video and per-frame records.

    Args:
        source: video file, webcam index, :class:`~ddfa.video.VideoSource`, or an iterable of
            BGR arrays.
        output: rendered video file (None: none).
        records: JSON-lines file; ``"auto"``: ``output`` with the suffix ``.jsonl`` (none when
            there is no output); None: none.
        aligner: a :class:`~ddfa.FaceAligner` with a detector (default: ``FaceAligner()``, the
            default model and asset root).
        options: :class:`VideoOptions`: overlays, smoothing, tracking policy, codec, frame
            rate, frame limit, progress bar (default: its defaults).

    Returns:
        A :class:`VideoSummary`; ``summary.problem`` says why an input stopped early (no
        exception is raised for a truncated or corrupt video once its first frame was read).

    Raises:
        VideoReadError: the input cannot be opened or has no readable frame.
        InputError: bad arguments (nothing to write, records file = output video, ...).

    Example:
        >>> opts = VideoOptions(outputs=("2d_sparse", "pose"), smoothing=SmoothingOptions(mode="offline"),
        ...                     tracker=TrackerOptions(detect_every=5))
        >>> summary = process_video("clip.mp4", "out.mp4", aligner=FaceAligner(assets=...), options=opts)
    """
    opts = options if options is not None else VideoOptions()
    if not isinstance(opts, VideoOptions):
        raise InputError(f"process_video options must be VideoOptions, got {type(opts).__name__}")
    if output is None and records is None:
        raise InputError("nothing to write: give an output video and/or a records file")
    if records == "auto":
        records = None if output is None else Path(output).with_suffix(".jsonl")
    if output is not None and records is not None and Path(output).resolve() == Path(records).resolve():
        raise InputError(f"{output}: the records file must differ from the output video")
    src = source if isinstance(source, VideoSource) else VideoSource(source, fps=opts.fps,
                                                                     max_frames=opts.max_frames)
    if aligner is None:
        from ..pipeline import FaceAligner

        aligner = FaceAligner()
    if src.frame_size is not None and hasattr(aligner, "prepare"):  # the detector's network for the
        aligner.prepare([src.frame_size])  # frame size gets ready in the background (OpenVINO)
    if output is not None and opts.outputs:
        from ..render.visibility import load_compiled_kernels_in_background

        load_compiled_kernels_in_background()  # drawn landmarks show their visibility: numba's kernels
    tracker = VideoTracker(aligner, opts.tracker, smoothing=opts.smoothing)
    summary = VideoSummary(src.name, output=None if output is None else Path(output),
                           records=None if records is None else Path(records))
    header = {"source": src.name, "fps": src.fps, "model": aligner.regressor.name, "frame": FRAME_NOTE,
              "pose_convention": POSE_NOTE, "tracker": asdict(opts.tracker), "smoothing": asdict(opts.smoothing)}
    writer = VideoWriter(output, src.fps, opts.codec) if output is not None else None
    record_file = RecordsWriter(records, header) if records is not None else None
    from tqdm import tqdm

    bar = tqdm(total=src.frame_count, unit="frame", disable=not opts.progress, file=sys.stderr, dynamic_ncols=True,
               desc=Path(src.name).name if src.kind == "file" else src.name)

    def draw(item: tuple[FrameResult, int]) -> None:  # the frame's image outputs
        result, tracks = item
        image = None if writer is None else render_frame(result, opts.outputs, draw_ids=opts.draw_ids)
        encoder.put((result, tracks, image))

    def encode(item: tuple[FrameResult, int, np.ndarray | None]) -> None:  # the video and the record
        result, tracks, image = item
        if writer is not None and image is not None:
            writer.write(image)
        if record_file is not None:
            record_file.frame(result)
        summary.frames += 1
        summary.last_frame, summary.last_time = result.index, result.time
        bar.update(1)
        bar.set_postfix(faces=len(result.faces), tracks=tracks, refresh=False)

    # four stages that overlap, each frame going through them in order: decoding reads ahead
    # in a thread; tracking runs here (each frame from the last); drawing, then encoding and
    # the records, follow behind in a thread each (opts.sequential: all in turn, here)
    reader = None if opts.sequential else prefetch(src, depth=3, name="ddfa-video-decoder")
    encoder = Sink(encode, depth=2, name="ddfa-video-encoder", threaded=not opts.sequential)
    drawer = Sink(draw, depth=2, name="ddfa-video-drawer", threaded=not opts.sequential)
    start = _time.perf_counter()
    try:
        for result in tracker.track(src if reader is None else reader, fps=src.fps):
            drawer.put((result, len(tracker.tracks)))
        drawer.close()  # every frame drawn and written (a stage's error is raised here at the latest)
        encoder.close()
        summary.problem = src.problem
    except KeyboardInterrupt:
        summary.interrupted = True
    except (DdfaError, cv2.error, MemoryError, OSError, RuntimeError, ValueError) as exc:
        drawer.finish()  # the frames tracked before the failure are written first
        encoder.finish()
        if isinstance(exc, InputError) and summary.frames == 0 and src.frames_read == 0:
            raise
        where = summary.stopped_at()
        summary.problem = f"processing failed after {summary.frames} frame(s) ({where}): {type(exc).__name__}: {exc}"
    finally:
        # (after Ctrl-C: the frames already tracked); a write's exception not reported yet
        late = next((error for error in [drawer.finish(), encoder.finish()] if error is not None), None)
        if late is not None and summary.problem is None:
            summary.problem = (f"writing failed after {summary.frames} frame(s) ({summary.stopped_at()}): "
                               f"{type(late).__name__}: {late}")
        if reader is not None:
            reader.close()  # the decoding thread stops before the source closes
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
