"""Reading and writing video frames.

:class:`VideoSource` turns a video file, a webcam index or an iterable of arrays into
:class:`VideoFrame` records ``(index, time, image)`` with ``image`` an (H, W, 3) uint8 BGR array.
Files are read with OpenCV (``cv2.VideoCapture``); a file OpenCV cannot open falls back to the
ffmpeg binary of ``imageio-ffmpeg`` when it is installed.

A truncated or corrupt file is not an exception in the middle of a long job: the source stops,
keeps what it read, and says why in :attr:`VideoSource.problem`. Whether a file that ended was
complete is checked with a demux-only ffmpeg pass (:func:`probe_video`, milliseconds: no
decoding) that measures the video stream's duration and collects ffmpeg's warnings (``partial file``,
``corrupt input packet``, ...); without ``imageio-ffmpeg`` only read errors are detected.

:class:`VideoWriter` writes BGR frames with OpenCV (``mp4v`` for .mp4/.mov/.m4v, ``MJPG`` for
.avi) or, with ``codec="h264"``, with imageio-ffmpeg's libx264.
"""

from __future__ import annotations

import os
import re
import subprocess
import time as _time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

from ..errors import InputError, VideoReadError, VideoWriteError
from ..io.image import to_bgr_uint8

#: frames per second assumed for arrays without timing and for cameras that do not report one
DEFAULT_FPS = 30.0

#: what a video source argument may be: a file, a webcam index (or a string of digits), or an
#: iterable of (H, W, 3) frames
SourceLike = str | os.PathLike | int | np.integer | Iterable[Any]


@dataclass
class VideoFrame:
    """One decoded frame.

    Attributes:
        index: 0-based frame number in the source.
        time: seconds since the first frame (``index / fps`` for files and arrays, the wall
            clock for cameras).
        image: (H, W, 3) uint8 BGR frame.
    """

    index: int
    time: float
    image: np.ndarray


@dataclass
class ProbeResult:
    """What a demux-only ffmpeg pass says about a file.

    Attributes:
        duration: time stamp of the last video packet, seconds (None when unknown). Packets
            are not counted: some files hold more packets than displayed frames.
        problems: ffmpeg's warning and error lines (empty for an intact file).
    """

    duration: float | None = None
    problems: list[str] = field(default_factory=list)


def _ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        return None


def probe_video(path: str | os.PathLike, timeout: float = 120.0) -> ProbeResult | None:
    """Measure the video stream of a file and collect ffmpeg's complaints, without decoding.

    Runs ``ffmpeg -v warning -stats -i PATH -map 0:v:0 -c copy -f null -`` (imageio-ffmpeg's
    binary). Returns None when ffmpeg is not available or does not answer in ``timeout`` s.
    """
    exe = _ffmpeg_exe()
    if exe is None:
        return None
    cmd = [exe, "-hide_banner", "-nostdin", "-v", "warning", "-stats", "-i", str(path),
           "-map", "0:v:0", "-c", "copy", "-f", "null", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stderr.decode("utf-8", "replace")
    times = re.findall(r"time=\s*(\d+):(\d+):(\d+(?:\.\d+)?)", text)
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    problems = [ln for ln in lines if not ln.startswith(("frame=", "size=")) and "frame=" not in ln]
    if proc.returncode != 0 and not problems:
        problems = [f"ffmpeg exited with status {proc.returncode}"]
    duration = None
    if times:
        hours, minutes, seconds = times[-1]
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return ProbeResult(duration, problems)


def _short(problem: str) -> str:
    """An ffmpeg log line without its ``[component @ 0x...]`` prefix."""
    return re.sub(r"^\[[^\]]*\]\s*", "", problem).strip()


class VideoSource:
    """Frames of a video file, a webcam or an iterable of arrays.

    Args:
        source: a file path, a webcam index (int, or a string of digits), or an iterable of
            (H, W, 3|4) / (H, W) arrays (converted to uint8 BGR; ``rgb=True`` if they are RGB).
        fps: frames per second for arrays (default 30), overriding the file's own rate for
            the frame times of files.
        max_frames: stop after this many frames (None: all).
        rgb: the arrays of an iterable are RGB(A) instead of BGR(A).

    Attributes:
        name: a printable name of the source.
        kind: ``"file"``, ``"camera"`` or ``"arrays"``.
        fps: frames per second (nominal for cameras).
        frame_count: frames expected (files: ffmpeg's demuxed duration x fps, else OpenCV's
            header count), None when unknown.
        frames_read: frames delivered so far.
        problem: None while nothing went wrong; else why the source stopped early or why the
            file looks damaged (set when iteration ends).
        backend: ``"opencv"`` or ``"ffmpeg"`` for files.
    """

    def __init__(self, source: SourceLike, *, fps: float | None = None,
                 max_frames: int | None = None, rgb: bool = False):
        if max_frames is not None and int(max_frames) < 0:
            raise InputError(f"max_frames must be >= 0, got {max_frames}")
        self.max_frames = None if max_frames is None else int(max_frames)
        self.rgb = rgb
        self.frames_read = 0
        self.problem: str | None = None
        self.last_time: float | None = None
        self.frame_count: int | None = None
        self.backend: str | None = None
        self._probe: ProbeResult | None = None
        self._capture: Any = None  # cv2.VideoCapture of files and cameras
        self._iterable: Iterable[Any] = ()
        self._first: np.ndarray | None = None  # a file's first frame, read while opening it
        if isinstance(source, str) and source.strip().isdigit() and not Path(source).exists():
            source = int(source)
        if isinstance(source, (bool, np.bool_)):
            raise InputError(f"not a video source: {source!r}")
        if isinstance(source, (int, np.integer)):
            self.kind = "camera"
            self.name = f"camera {int(source)}"
            self._capture = cv2.VideoCapture(int(source))
            if not self._capture.isOpened():
                raise VideoReadError(f"{self.name}: cannot open the webcam")
            self.fps = float(fps or self._capture.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS)
            self.backend = "opencv"
        elif isinstance(source, (str, os.PathLike)):
            self.kind = "file"
            self.path = Path(source)
            self.name = str(source)
            self._open_file(fps)
        elif isinstance(source, np.ndarray):
            raise InputError("expected an iterable of frames, got a single array; wrap it in a list")
        elif hasattr(source, "__iter__"):
            self.kind = "arrays"
            self.name = "frames"
            self._iterable = source
            self.fps = float(fps or DEFAULT_FPS)
            self.frame_count = len(source) if isinstance(source, Sized) else None
        else:
            raise InputError(f"not a video source (path, webcam index or iterable of arrays): {source!r}")
        if self.fps <= 0 or not np.isfinite(self.fps):
            raise InputError(f"{self.name}: fps must be > 0, got {self.fps}")
        if self.max_frames is not None:
            self.frame_count = min(self.frame_count or self.max_frames, self.max_frames)

    # ------------------------------------------------------------------ opening
    def _open_file(self, fps: float | None) -> None:
        path = self.path
        if not path.exists():
            raise VideoReadError(f"{path}: no such file")
        if path.is_dir():
            raise VideoReadError(f"{path}: is a folder, not a video")
        if path.stat().st_size == 0:
            raise VideoReadError(f"{path}: empty file")
        self._probe = probe_video(path)
        capture = cv2.VideoCapture(str(path))
        first = None
        if capture.isOpened():
            ok, first = capture.read()
            if not ok:
                first = None
        if first is not None:
            self._capture, self._first = capture, first
            self.backend = "opencv"
            native_fps = capture.get(cv2.CAP_PROP_FPS)
            header_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
        else:
            capture.release()
            native_fps, header_count = self._open_ffmpeg()
        self.fps = float(fps or native_fps or DEFAULT_FPS)
        duration = self._probe.duration if self._probe is not None else None
        # the demuxed duration is more reliable than container headers (edit lists, wrong counts)
        self.frame_count = int(round(duration * self.fps)) if duration else header_count

    def _open_ffmpeg(self) -> tuple[float, int | None]:
        """Fallback reader: imageio-ffmpeg piping BGR frames."""
        reason = self._probe.problems[0] if self._probe and self._probe.problems else None
        if _ffmpeg_exe() is None:
            raise VideoReadError(f"{self.path}: OpenCV cannot decode it (not a video, or truncated/corrupt)"
                                 + (f": {_short(reason)}" if reason else ""))
        import imageio_ffmpeg

        gen = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="bgr24")
        try:
            meta = next(gen)
            first = next(gen)
        except (OSError, RuntimeError, StopIteration) as exc:
            gen.close()
            detail = _short(reason) if reason else (str(exc).splitlines()[0] if str(exc) else "no frames")
            raise VideoReadError(f"{self.path}: not a readable video (truncated or corrupt?): {detail}") from None
        width, height = meta["size"]
        self._ffmpeg = (gen, width, height)
        self._first = np.frombuffer(first, np.uint8).reshape(height, width, 3)
        self.backend = "ffmpeg"
        duration, fps = meta.get("duration") or 0.0, meta.get("fps") or 0.0
        return fps, (int(round(duration * fps)) or None) if duration and fps else None

    # ------------------------------------------------------------------ iteration
    @property
    def frame_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of a file's frames, from its first frame (read while opening it),
        before iterating; None for cameras and arrays, or once iteration has begun."""
        return None if self._first is None else (int(self._first.shape[0]), int(self._first.shape[1]))

    def __iter__(self) -> Iterator[VideoFrame]:
        if self.frames_read:
            raise InputError(f"{self.name}: a VideoSource can be iterated only once")
        start = _time.monotonic()
        try:
            for image in self._images():
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    break
                index = self.frames_read
                t = _time.monotonic() - start if self.kind == "camera" else index / self.fps
                self.frames_read += 1
                self.last_time = t
                yield VideoFrame(index, t, image)
        finally:
            self.close()
        self._check_complete()

    def _images(self) -> Iterator[np.ndarray]:
        if self.kind == "arrays":
            for i, arr in enumerate(self._iterable):
                yield to_bgr_uint8(np.asarray(arr), f"frame {i}", rgb=self.rgb)
            return
        if self.kind == "file" and self._first is not None:
            yield self._first
            self._first = None
        while True:
            try:
                if self.backend == "ffmpeg":
                    gen, width, height = self._ffmpeg
                    data = next(gen, None)
                    if data is None:
                        return
                    yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
                    continue
                ok, image = self._capture.read()
            except (cv2.error, RuntimeError, OSError, ValueError) as exc:
                self.problem = f"decoding failed after frame {self.frames_read - 1}: {str(exc).splitlines()[0]}"
                return
            if not ok:
                if self.kind == "camera":
                    self.problem = f"the camera stopped delivering frames after frame {self.frames_read - 1}"
                return
            yield image

    def _check_complete(self) -> None:
        """After the last frame: did the file end where it should?"""
        if self.kind != "file" or self.problem is not None:
            return
        if self.max_frames is not None and self.frames_read >= self.max_frames:
            return
        probe = self._probe
        if probe is None:
            return
        expected = int(round(probe.duration * self.fps)) if probe.duration else None
        if expected is not None and self.frames_read < 0.97 * expected - 2:
            self.problem = (f"the decoder stopped after {self.frames_read} of about {expected} frames"
                            + (f" ({_short(probe.problems[0])})" if probe.problems else ""))
        elif probe.problems:
            self.problem = f"the file is truncated or corrupt: {_short(probe.problems[-1])}"

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        ffmpeg = getattr(self, "_ffmpeg", None)
        if ffmpeg is not None:
            ffmpeg[0].close()

    def __repr__(self) -> str:
        return f"VideoSource({self.name!r}, kind={self.kind!r}, fps={self.fps:g}, frames={self.frame_count})"


def iter_frames(source: VideoSource | SourceLike, *, fps: float | None = None) -> Iterator[VideoFrame]:
    """:class:`VideoFrame` records from a :class:`VideoSource`, a source argument, or already
    made :class:`VideoFrame` records."""
    if isinstance(source, VideoSource):
        yield from source
        return
    if isinstance(source, (str, os.PathLike, int, np.integer)):
        yield from VideoSource(source, fps=fps)
        return
    rate = float(fps or DEFAULT_FPS)
    for i, item in enumerate(source):
        if isinstance(item, VideoFrame):
            yield item
        else:
            yield VideoFrame(i, i / rate, to_bgr_uint8(np.asarray(item), f"frame {i}"))


# ---------------------------------------------------------------------- writing
#: output codecs of :class:`VideoWriter`
Codec = Literal["auto", "mp4v", "mjpg", "h264"]
CODECS: tuple[str, ...] = get_args(Codec)


class VideoWriter:
    """Write BGR frames to a video file (opened on the first frame, whose size is kept).

    Args:
        path: output file; its folder is created.
        fps: frames per second.
        codec: ``"auto"`` (MJPG for .avi, else mp4v), ``"mp4v"``, ``"mjpg"`` (OpenCV), or
            ``"h264"`` (libx264 through imageio-ffmpeg's ffmpeg).

    Frames of another size than the first are resized to it. Use as a context manager, or call
    :meth:`close`: the file is finalised (playable) even after an error.
    """

    def __init__(self, path: str | os.PathLike, fps: float, codec: Codec = "auto"):
        if codec not in CODECS:
            raise InputError(f"codec must be one of {CODECS}, got {codec!r}")
        self.path = Path(path)
        self.fps = float(fps)
        if codec == "auto":
            codec = "mjpg" if self.path.suffix.lower() == ".avi" else "mp4v"
        if codec == "h264" and _ffmpeg_exe() is None:
            raise VideoWriteError(f"{self.path}: codec h264 needs imageio-ffmpeg (pip install imageio-ffmpeg)")
        self.codec = codec
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self._writer: Any = None  # cv2.VideoWriter, or imageio-ffmpeg's frame generator (h264)

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (width, height)
        if self.codec == "h264":
            import imageio_ffmpeg

            self._writer = imageio_ffmpeg.write_frames(
                str(self.path), (width, height), fps=self.fps, codec="libx264", pix_fmt_in="bgr24",
                quality=7, macro_block_size=2, ffmpeg_log_level="error")
            self._writer.send(None)
        else:
            fourcc = cv2.VideoWriter.fourcc(*("MJPG" if self.codec == "mjpg" else "mp4v"))
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
            if not self._writer.isOpened():
                raise VideoWriteError(f"{self.path}: cannot create the video (codec {self.codec})")

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame."""
        if self._writer is None:
            self._open(frame.shape[1], frame.shape[0])
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        if self.codec == "h264":
            self._writer.send(np.ascontiguousarray(frame))
        else:
            self._writer.write(frame)
        self.frames_written += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        if self.codec == "h264":
            writer.close()
        else:
            writer.release()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_video_frames(path: str | os.PathLike, max_frames: int | None = None) -> list[np.ndarray]:
    """All frames of a (short) video as BGR arrays (a convenience for tests and scripts)."""
    return [frame.image for frame in VideoSource(path, max_frames=max_frames)]

