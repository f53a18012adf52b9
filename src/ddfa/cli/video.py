"""``ddfa video INPUT --output OUT.mp4``: track, smooth and render every face of a video.

Writes the rendered video and ``OUT.jsonl`` (per-frame records, see :mod:`ddfa.video.process`).
A truncated or corrupt input keeps everything processed so far, says where it stopped and
exits with status 1; Ctrl-C does the same with status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from ..errors import one_line

EPILOG = """\
examples:
  ddfa video clip.mp4 --output out/clip.mp4
  ddfa video clip.mp4 --output out/clip.mp4 --outputs 3d,pose --smooth offline --detect-every 5
  ddfa video clip.mp4 --records out/clip.jsonl --outputs none      # records only
  ddfa video 0 --output webcam.mp4 --max-frames 300               # webcam 0, causal smoothing

tracking: each face's next crop comes from its previous landmarks; the detector runs on the
first frame, every --detect-every frames, and whenever a track looks unsure (its crop moved or
rescaled too much, it is leaving the frame, or with --refine its confidence is below 0.5). New
faces get new ids (1, 2, ...); a face that leaves the frame and comes back gets a new id.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    from ..pipeline.refine import REFINE_MODES
    from ..video.io import CODECS
    from ..video.options import SMOOTH_MODES, SmoothingOptions, TrackerOptions, video_output_names
    from .main import add_common_model_options

    smooth, track = SmoothingOptions(), TrackerOptions()
    parser = subparsers.add_parser(
        "video",
        help="track, smooth and render every face of a video or webcam",
        description="Detect, align and track every face of a video; write the rendered video and "
        "per-frame records (frame, time, track id, box, landmarks, pose) as JSON lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="INPUT",
                        help="video file (anything OpenCV or ffmpeg reads) or webcam index (0, 1, ...)")
    parser.add_argument("-o", "--output", metavar="OUT.mp4", default=None,
                        help="rendered video (.mp4, .avi, ...)")
    parser.add_argument("--records", metavar="PATH", default=None,
                        help="per-frame JSON-lines records (default: OUT.jsonl next to the video)")
    parser.add_argument("--no-records", action="store_true", help="write no records file")
    parser.add_argument(
        "--outputs", default="2d_sparse", metavar="LIST",
        help="comma-separated overlays drawn in order on each frame: the image outputs of `ddfa align` that "
        "draw on the photo (" + ", ".join(video_output_names()) + "; not texture atlases such as uv_tex); "
        "default: 2d_sparse; 'none': track ids only")
    parser.add_argument("--no-ids", action="store_true", help="do not label faces with their track id")
    group = parser.add_argument_group("tracking")
    group.add_argument("--detect-every", type=int, default=track.detect_every, metavar="N",
                       help=f"run the detector every N frames (1: every frame; 0: only when a track is unsure; "
                       f"default: {track.detect_every})")
    group.add_argument("--max-faces", type=int, default=None, metavar="N", help="follow at most N faces")
    group.add_argument("--refine", choices=REFINE_MODES, default="none",
                       help="test-time refinement of every tracked face; its calibrated confidence then also "
                       "decides when to re-run the detector (default: none)")
    group = parser.add_argument_group("smoothing")
    group.add_argument("--smooth", choices=SMOOTH_MODES, default=None,
                       help="One-Euro smoothing of landmarks, pose and mesh: causal (no delay) or offline "
                       "(also looks ahead; default for files), none; default: offline for files, causal "
                       "for webcams")
    group.add_argument("--smooth-strength", type=float, default=smooth.strength, metavar="S",
                       help="2 smooths twice as much, 0.5 half as much (default: 1)")
    group.add_argument("--min-cutoff", type=float, default=smooth.min_cutoff, metavar="HZ",
                       help=f"cut-off of a still face in Hz (default: {smooth.min_cutoff:g})")
    group.add_argument("--beta", type=float, default=smooth.beta,
                       help=f"cut-off increase per face size/s of motion (default: {smooth.beta:g})")
    group.add_argument("--lookahead", type=int, default=smooth.lookahead, metavar="N",
                       help=f"future frames used by --smooth offline (default: {smooth.lookahead})")
    group = parser.add_argument_group("input/output")
    group.add_argument("--codec", choices=CODECS, default="auto",
                       help="output codec: auto (MJPG for .avi, else mp4v), or h264 via imageio-ffmpeg")
    group.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    group.add_argument("--fps", type=float, default=None,
                       help="frame rate for the frame times and the output (default: the input's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--sequential", action="store_true",
                        help="each frame decoded, tracked, drawn and written in turn (default: decoding, tracking, "
                        "drawing and writing overlap in four threads; the same results)")
    add_common_model_options(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..pipeline import FaceAligner
    from ..video.io import VideoSource
    from ..video.options import SmoothingOptions, SmoothMode, TrackerOptions, VideoOptions
    from ..video.process import process_video

    outputs = [] if args.outputs.strip() in ("", "none") else [s.strip() for s in args.outputs.split(",") if s.strip()]
    if args.output is None and (args.records is None or args.no_records):
        raise InputError("nothing to write: give --output OUT.mp4 and/or --records PATH")
    if args.max_frames is not None and args.max_frames < 1:
        raise InputError(f"--max-frames must be at least 1, got {args.max_frames}")
    if args.no_records:
        records = None
    else:
        records = args.records if args.records is not None else "auto"
    _check_outputs(args.output, None if records is None else
                   (Path(args.output).with_suffix(".jsonl") if records == "auto" and args.output else records))
    tracker = TrackerOptions(detect_every=args.detect_every, max_faces=args.max_faces)
    smoothing = SmoothingOptions(min_cutoff=args.min_cutoff, beta=args.beta, strength=args.smooth_strength,
                                 lookahead=args.lookahead)
    options = VideoOptions(outputs=tuple(outputs), smoothing=smoothing, tracker=tracker, draw_ids=not args.no_ids,
                           codec=args.codec, progress=not args.quiet, sequential=args.sequential)
    source = VideoSource(args.input, fps=args.fps, max_frames=args.max_frames)
    mode: SmoothMode = args.smooth or ("causal" if source.kind == "camera" else "offline")
    options = replace(options, smoothing=replace(smoothing, mode=mode))
    from ..render.visibility import load_compiled_kernels_in_background
    from .main import detector_options_from_args

    load_compiled_kernels_in_background()  # a video's many faces: landmark visibility on numba's kernels
    aligner = FaceAligner(model=args.model, detector=args.detector, assets=args.assets, device=args.device,
                          backend=args.backend, detector_options=detector_options_from_args(args),
                          refine=args.refine)
    summary = process_video(source, args.output, records=records, aligner=aligner, options=options)
    written = [str(p) for p in (summary.output, summary.records) if p is not None and Path(p).is_file()]
    if summary.output is not None and summary.frames == 0 and str(summary.output) in written:
        written.remove(str(summary.output))  # an empty container: no video
        Path(summary.output).unlink(missing_ok=True)
    ids = [t["track_id"] for t in summary.tracks]
    print(f"ddfa video: {summary.frames} frame(s), {len(ids)} track(s)"
          + (f" (ids {ids[0]}-{ids[-1]})" if ids else "")
          + f", detector on {summary.detector_runs} frame(s), {summary.fps:.1f} frames/s; "
          + (f"wrote {', '.join(written)}" if written else "wrote nothing"))
    if summary.interrupted:
        print(f"ddfa video: interrupted {summary.stopped_at()}; kept {summary.frames} frame(s)", file=sys.stderr)
        return 130
    if summary.problem:
        print(one_line(f"ddfa video: {source.name}: stopped {summary.stopped_at()}: {summary.problem}; "
                       f"kept {summary.frames} frame(s)"), file=sys.stderr)
        return 1
    if summary.frames == 0:
        print(one_line(f"ddfa video: {source.name}: no frame was processed"), file=sys.stderr)
        return 1
    return 0


#: containers the video writers can create (OpenCV's mp4v/MJPG, or libx264 through ffmpeg)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")


def _check_outputs(output: str | None, records: str | os.PathLike | None) -> None:
    """Refuse, before anything is computed, outputs that cannot be written.

    Raises:
        InputError: an output video of an unknown container.
        OutputError: a path that is a folder, under a file, or in a folder that cannot be
            created or written.
    """
    from ..errors import InputError, OutputError
    from ..io.atomic import ensure_folder

    for path, what in ((output, "output video"), (records, "records file")):
        if path is None:
            continue
        text = str(path)
        path = Path(path)
        if text.endswith(("/", os.sep)) or path.is_dir():
            raise OutputError(f"{text}: the {what} is a folder; give a file name, e.g. {path / 'out.mp4'}"
                              if what == "output video" else f"{text}: the {what} is a folder; give a file name")
        if what == "output video" and path.suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(f"{text}: unknown video container {path.suffix or '(no suffix)'!r}; use one of "
                             f"{', '.join(VIDEO_SUFFIXES)}")
        ensure_folder(path.parent if str(path.parent) else Path("."), f"folder of the {what}")
