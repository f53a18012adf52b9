"""Video: every face tracked with stable ids, smoothed, rendered and recorded.

    >>> from ddfa import FaceAligner
    >>> from ddfa.video import VideoTracker, process_video
    >>> tracker = VideoTracker(FaceAligner(assets="..."), detect_every=10, smoothing="causal")
    >>> for result in tracker.track("video.mp4"):          # or a webcam index, or arrays
    ...     for face in result.faces:
    ...         print(result.index, result.time, face.track_id, face.pose.yaw)
    >>> summary = process_video("video.mp4", "out.mp4", outputs=["2d_sparse"], smoothing="offline")

See :mod:`ddfa.video.tracker` for the tracking policy, :mod:`ddfa.video.smoothing` for the
filters, :mod:`ddfa.video.process` for the records format and :mod:`ddfa.video.io` for reading
and writing frames.
"""

from .io import VideoFrame, VideoReadError, VideoSource, VideoWriteError, VideoWriter, probe_video
from .process import (VideoSummary, draw_track_ids, process_video, read_records, render_frame,
                      video_output_names)
from .smoothing import FaceSmoother, SmoothingOptions, from_image_params, to_image_params
from .tracker import FrameResult, TrackedFace, TrackerOptions, TrackEvent, VideoTracker

__all__ = [
    "FaceSmoother",
    "FrameResult",
    "SmoothingOptions",
    "TrackEvent",
    "TrackedFace",
    "TrackerOptions",
    "VideoFrame",
    "VideoReadError",
    "VideoSource",
    "VideoSummary",
    "VideoTracker",
    "VideoWriteError",
    "VideoWriter",
    "draw_track_ids",
    "from_image_params",
    "probe_video",
    "process_video",
    "read_records",
    "render_frame",
    "to_image_params",
    "video_output_names",
]
