"""Video: every face tracked with stable ids, smoothed, rendered and recorded.

    >>> from ddfa import FaceAligner
    >>> from ddfa.video import SmoothingOptions, TrackerOptions, VideoOptions, VideoTracker, process_video
    >>> tracker = VideoTracker(FaceAligner(assets="..."), TrackerOptions(detect_every=10), smoothing="causal")
    >>> for result in tracker.track("video.mp4"):          # or a webcam index, or arrays
    ...     for face in result.faces:
    ...         print(result.index, result.time, face.track_id, face.pose.yaw)
    >>> options = VideoOptions(outputs=("2d_sparse",), smoothing=SmoothingOptions(mode="offline"))
    >>> summary = process_video("video.mp4", "out.mp4", aligner=FaceAligner(assets="..."), options=options)

See :mod:`ddfa.video.tracker` for the tracking policy, :mod:`ddfa.video.smoothing` for the
filters, :mod:`ddfa.video.options` for the settings, :mod:`ddfa.video.process` for the records
format and :mod:`ddfa.video.io` for reading and writing frames.
"""

from .io import VideoFrame, VideoReadError, VideoSource, VideoWriteError, VideoWriter, probe_video
from .options import SmoothingOptions, TrackerOptions, VideoOptions, video_output_names
from .process import VideoSummary, draw_track_ids, process_video, read_records, render_frame
from .smoothing import FaceSmoother
from .tracker import FrameResult, TrackedFace, TrackEvent, VideoTracker

__all__ = [
    "FaceSmoother",
    "FrameResult",
    "SmoothingOptions",
    "TrackEvent",
    "TrackedFace",
    "TrackerOptions",
    "VideoFrame",
    "VideoOptions",
    "VideoReadError",
    "VideoSource",
    "VideoSummary",
    "VideoTracker",
    "VideoWriteError",
    "VideoWriter",
    "draw_track_ids",
    "probe_video",
    "process_video",
    "read_records",
    "render_frame",
    "video_output_names",
]
